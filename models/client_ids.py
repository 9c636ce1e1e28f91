"""Deterministic client order ids: ``client_order_id`` and its inverses. Pure."""

from __future__ import annotations

import hashlib
import re

import msgspec

_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,6}\Z")
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,30}\Z")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
MAX_ID_LEN = 36


def _base36(n: int) -> str:
    if n < 0:
        raise ValueError("generation must be >= 0")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def _symbol_code(symbol: str) -> str:
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(f"symbol {symbol!r} must be 1-30 upper-case letters/digits")
    # USDT pairs drop the suffix; others get "_" so that "XUSDT" and "X" never collide
    return symbol[:-4] if symbol.endswith("USDT") and len(symbol) > 4 else symbol + "_"


def _digest(text: str, n: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:n]


def client_order_id(prefix: str, symbol: str, key: str, generation: int) -> str:
    """Deterministic clientOrderId (<= 36 chars of ``[A-Za-z0-9_.-]``), injective in
    (symbol, key, generation) for a given prefix. Three disjoint shapes:

    * ``{prefix}-{sym}-{key}-{gen36}`` (>= 3 dashes) when the key is plain and it fits;
    * ``{prefix}-{sym}.{hash12(key)}.{gen36}`` (exactly one dash) otherwise;
    * ``{prefix}.{hash16(symbol, key)}.{gen36}`` (no dash) if even that is too long.

    ``sym`` is the symbol without its USDT suffix. Only the hashed shapes can collide, with
    probability ~2^-48 per pair of keys.
    """
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix {prefix!r} must be 1-6 letters or digits")
    if not key:
        raise ValueError("key must not be empty")
    sym, gen = _symbol_code(symbol), _base36(generation)
    if _KEY_RE.match(key):
        cid = f"{prefix}-{sym}-{key}-{gen}"
        if len(cid) <= MAX_ID_LEN:
            return cid
    cid = f"{prefix}-{sym}.{_digest(key, 12)}.{gen}"
    if len(cid) <= MAX_ID_LEN:
        return cid
    cid = f"{prefix}.{_digest(symbol + chr(0) + key, 16)}.{gen}"
    if len(cid) > MAX_ID_LEN:
        raise ValueError("generation too large for a 36-character client order id")
    return cid


class ParsedClientId(msgspec.Struct, frozen=True):
    """Parts of a plain-shape client order id."""

    prefix: str
    symbol_code: str
    key: str
    generation: int


def parse_client_order_id(cid: str, prefix: str) -> ParsedClientId | None:
    """Inverse of the plain shape of ``client_order_id`` (None for other ids; for hashed ids
    only the generation is recoverable via ``generation_of``)."""
    if not cid.startswith(prefix + "-") or cid.count("-") < 3:
        return None
    _, sym, rest = cid.split("-", 2)
    key, _, gen = rest.rpartition("-")
    try:
        return ParsedClientId(prefix, sym, key, int(gen, 36))
    except ValueError:
        return None


def generation_of(cid: str) -> int | None:
    """The base-36 generation suffix of any of our id shapes (None if not parseable)."""
    tail = re.split(r"[-.]", cid)[-1]
    try:
        return int(tail, 36)
    except ValueError:
        return None
