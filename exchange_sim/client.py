"""python-binance classes pointed at a running sim (URL class attributes, nothing else).

python-binance reads its URLs from class attributes (the constructor pings, and
``ThreadedWebsocketManager`` builds its own client inside its thread), so we subclass and set
them on the class rather than on instances.
"""

from __future__ import annotations

from typing import Any

from binance import AsyncClient, BinanceSocketManager, Client


def _get(urls: Any, name: str) -> str:
    return urls[name] if isinstance(urls, dict) else getattr(urls, name)


def client_classes(urls: Any) -> tuple[type[Client], type[AsyncClient],
                                       type[BinanceSocketManager]]:
    """(Client, AsyncClient, BinanceSocketManager) subclasses talking to the sim at ``urls``
    (a ``SimUrls`` or the CLI's JSON dict)."""
    rest, fapi = _get(urls, "rest"), _get(urls, "fapi")
    ws, fws, ws_api = _get(urls, "ws"), _get(urls, "fws"), _get(urls, "ws_api")
    attrs = {
        "API_URL": rest, "API_TESTNET_URL": rest, "FUTURES_URL": fapi,
        "FUTURES_TESTNET_URL": fapi, "WS_API_URL": ws_api, "WS_API_TESTNET_URL": ws_api,
    }
    sim_client = type("SimClient", (Client,), dict(attrs))
    sim_async = type("SimAsyncClient", (AsyncClient,), dict(attrs))
    sim_bsm = type("SimSocketManager", (BinanceSocketManager,), {
        "STREAM_URL": ws, "STREAM_TESTNET_URL": ws, "FSTREAM_URL": fws,
        "FSTREAM_TESTNET_URL": fws,
    })
    return sim_client, sim_async, sim_bsm
