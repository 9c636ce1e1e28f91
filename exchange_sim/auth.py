"""Binance request authentication: API key lookup, HMAC-SHA256 signature, timestamp window.

Pure functions (the caller passes the sim time in). Binance signs ``totalParams`` = the query
string followed by the request body, both as sent, without the ``signature`` parameter.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import unquote_plus


class ApiError(Exception):
    """An error answered as Binance does: HTTP status plus ``{"code": .., "msg": ..}``."""

    def __init__(self, http_status: int, code: int, msg: str, headers: dict | None = None,
                 data: object = None):
        super().__init__(msg)
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.headers = headers or {}
        self.data = data


INVALID_KEY = (401, -2015, "Invalid API-key, IP, or permissions for action.")
BAD_KEY_FORMAT = (401, -2014, "API-key format invalid.")
BAD_SIGNATURE = (400, -1022, "Signature for this request is not valid.")
MISSING_PARAM = -1102


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 hex digest of ``payload`` with ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def strip_signature(raw: str) -> tuple[str, str | None]:
    """Split ``signature=...`` out of a raw ``a=1&b=2`` string; return (rest, signature)."""
    if not raw:
        return "", None
    kept, sig = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = part[len("signature="):]
        elif part:
            kept.append(part)
    return "&".join(kept), sig


def signed_payloads(raw_query: str, raw_body: str) -> tuple[str | None, list[str]]:
    """The signature and the candidate payloads it may have been computed over.

    Candidates: totalParams exactly as sent, then its percent-decoded form (python-binance
    signs values unencoded but sends them form-encoded)."""
    q, sig_q = strip_signature(raw_query)
    b, sig_b = strip_signature(raw_body)
    sig = sig_q or sig_b
    total = q + b  # Binance concatenates query and body with no separator
    cands = [total]
    dec = unquote_plus(total)
    if dec != total:
        cands.append(dec)
    return (unquote_plus(sig) if sig else None), cands


def verify(secret: str, raw_query: str, raw_body: str) -> None:
    """Raise ``ApiError`` -1022 unless the request carries a valid signature."""
    sig, cands = signed_payloads(raw_query, raw_body)
    if not sig:
        raise ApiError(400, MISSING_PARAM,
                       "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    sig = sig.lower()
    for c in cands:
        if hmac.compare_digest(sign(secret, c), sig):
            return
    raise ApiError(*BAD_SIGNATURE)


def check_api_key(keys: dict[str, str], api_key: str | None) -> str:
    """Return the secret of ``api_key`` or raise 401 -2014/-2015."""
    if not api_key:
        raise ApiError(401, -2014, "API-key format invalid.")
    secret = keys.get(api_key)
    if secret is None:
        if len(api_key) < 8 or not api_key.isalnum():
            raise ApiError(*BAD_KEY_FORMAT)
        raise ApiError(*INVALID_KEY)
    return secret


def check_timestamp(params: dict[str, str], now_ms: int, max_recv_window_ms: int = 60000,
                    time_scale: float | None = 1.0) -> None:
    """Enforce Binance's timestamp/recvWindow rule against the (sim) server time.

    ``time_scale`` is the replay speed when sim time runs faster than the wall clock: a client
    that synced its offset once cannot follow a clock running 60x, so both tolerances are
    widened by that factor (1 or paused: exactly Binance's rule; None, speed "max": sim time
    only moves with the replay, the window is not checked)."""
    ts_raw = params.get("timestamp")
    if ts_raw is None or ts_raw == "":
        raise ApiError(400, MISSING_PARAM,
                       "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    try:
        ts = int(ts_raw)
    except ValueError:
        raise ApiError(400, -1100,
                       "Illegal characters found in parameter 'timestamp'; legal range is "
                       "'^[0-9]{1,20}$'.") from None
    rw_raw = params.get("recvWindow", "5000")
    try:
        rw = int(float(rw_raw))
    except ValueError:
        raise ApiError(400, -1100, "Illegal characters found in parameter 'recvWindow'.") from None
    if rw <= 0 or rw > max_recv_window_ms:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    if time_scale is None:
        return
    k = max(1.0, time_scale)
    if ts - now_ms > 1000 * k:
        raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's "
                                   "time.")
    if now_ms - ts > rw * k:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
