"""Binance request authentication: the docs' HMAC example, signature placement, timestamps."""

import pytest

from exchange_sim.auth import ApiError, check_api_key, check_timestamp, sign, verify

DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
             "&recvWindow=5000&timestamp=1499827319559")
DOC_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_docs_example_signature() -> None:
    assert sign(DOC_SECRET, DOC_QUERY) == DOC_SIG


def test_docs_example_verifies_in_query_body_and_mixed() -> None:
    verify(DOC_SECRET, f"{DOC_QUERY}&signature={DOC_SIG}", "")
    verify(DOC_SECRET, "", f"{DOC_QUERY}&signature={DOC_SIG}")
    # docs example 3: part in the query, part in the body, concatenated without '&'
    q = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    b = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    verify(DOC_SECRET, q, f"{b}&signature={sign(DOC_SECRET, q + b)}")


def test_bad_or_missing_signature() -> None:
    with pytest.raises(ApiError) as e:
        verify(DOC_SECRET, f"{DOC_QUERY}&signature={'0' * 64}", "")
    assert (e.value.http_status, e.value.code) == (400, -1022)
    with pytest.raises(ApiError) as e:
        verify(DOC_SECRET, DOC_QUERY, "")
    assert e.value.code == -1102
    # tampering with a parameter invalidates the signature
    with pytest.raises(ApiError):
        verify(DOC_SECRET, DOC_QUERY.replace("price=0.1", "price=0.2") + f"&signature={DOC_SIG}",
               "")


def test_percent_encoded_values_accept_unencoded_signature() -> None:
    # python-binance signs values unencoded but the form encoder sends them encoded
    raw = "newClientOrderId=a:b&timestamp=1"
    sent = "newClientOrderId=a%3Ab&timestamp=1"
    verify("s", "", f"{sent}&signature={sign('s', raw)}")


def test_api_key_lookup() -> None:
    keys = {"k" * 64: "secret"}
    assert check_api_key(keys, "k" * 64) == "secret"
    with pytest.raises(ApiError) as e:
        check_api_key(keys, "x" * 64)
    assert (e.value.http_status, e.value.code) == (401, -2015)
    with pytest.raises(ApiError) as e:
        check_api_key(keys, None)
    assert (e.value.http_status, e.value.code) == (401, -2014)


@pytest.mark.parametrize(
    ("ts", "rw", "code", "msg"),
    [
        (10_000, None, None, None),
        (11_001, None, -1021, "ahead of the server's time"),
        (4_999, None, -1021, "outside of the recvWindow"),
        (5_000, None, None, None),
        (1_000, "9000", None, None),
        (999, "9000", -1021, "outside of the recvWindow"),
        (10_000, "70000", -1131, "recvWindow"),
    ],
)
def test_timestamp_window(ts: int, rw: str | None, code: int | None, msg: str | None) -> None:
    params = {"timestamp": str(ts)}
    if rw is not None:
        params["recvWindow"] = rw
    if code is None:
        check_timestamp(params, 10_000)
        return
    with pytest.raises(ApiError) as e:
        check_timestamp(params, 10_000)
    assert e.value.code == code and msg in e.value.msg


def test_missing_timestamp() -> None:
    with pytest.raises(ApiError) as e:
        check_timestamp({}, 10_000)
    assert e.value.code == -1102


def test_timestamp_window_scales_with_replay_speed() -> None:
    from exchange_sim.auth import ApiError, check_timestamp

    params = {"timestamp": "1000000", "recvWindow": "5000"}
    with pytest.raises(ApiError):
        check_timestamp(params, 1_000_000 + 5_001)  # speed 1: Binance's rule
    check_timestamp(params, 1_000_000 + 5_001, time_scale=60.0)  # 60x: 300 s of sim time
    with pytest.raises(ApiError):
        check_timestamp(params, 1_000_000 + 300_001, time_scale=60.0)
    check_timestamp(params, 1_000_000 + 10**9, time_scale=None)  # speed max: not checked
