"""Where a venue lives: base URLs of the embedded exchange, the testnet or live Binance.

python-binance reads its URLs from class attributes (the constructor pings, and
``ThreadedWebsocketManager`` builds its own client), so ``client_class`` makes a ``Client``
subclass that carries them; ``tld``/``base_endpoint`` cannot point at a loopback server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from binance import Client


@dataclass(frozen=True)
class VenueEndpoints:
    """Base URLs in python-binance's conventions (``rest`` ends in ``/api``, ``fapi`` in
    ``/fapi``, ``ws``/``fws`` end in ``/``)."""

    rest: str
    fapi: str
    ws: str
    fws: str
    ws_api: str
    testnet: bool = False

    @classmethod
    def from_sim_urls(cls, urls: Mapping[str, Any] | Any) -> VenueEndpoints:
        """From the embedded exchange's ``SimUrls`` (or its JSON dict)."""
        def get(k: str) -> str:
            return str(urls[k] if isinstance(urls, Mapping) else getattr(urls, k))
        return cls(rest=get("rest"), fapi=get("fapi"), ws=get("ws"), fws=get("fws"),
                   ws_api=get("ws_api"))

    @classmethod
    def for_venue(cls, name: str, overrides: Mapping[str, str] | None = None
                  ) -> VenueEndpoints:
        """Binance's real URLs: ``"live"`` or ``"testnet"`` (``overrides`` replaces fields,
        e.g. the config's ``gateway.testnet_urls``)."""
        if name == "live":
            base = cls(rest="https://api.binance.com/api", fapi="https://fapi.binance.com/fapi",
                       ws="wss://stream.binance.com:9443/", fws="wss://fstream.binance.com/",
                       ws_api="wss://ws-api.binance.com:443/ws-api/v3")
        elif name == "testnet":
            base = cls(rest="https://testnet.binance.vision/api",
                       fapi="https://testnet.binancefuture.com/fapi",
                       ws="wss://stream.testnet.binance.vision/",
                       fws="wss://fstream.binancefuture.com/",
                       ws_api="wss://ws-api.testnet.binance.vision/ws-api/v3", testnet=True)
        else:
            raise ValueError(f"unknown venue {name!r}: 'live' or 'testnet'")
        if overrides:
            fields = {k: v for k, v in overrides.items() if k in ("rest", "fapi", "ws", "fws",
                                                                  "ws_api")}
            base = cls(**{**base.__dict__, **fields})
        return base


def client_class(endpoints: VenueEndpoints) -> type[Client]:
    """A python-binance ``Client`` subclass whose URL class attributes point at ``endpoints``
    (testnet and live alike: we never pass ``testnet=True``, the URLs say it all)."""
    attrs = {"API_URL": endpoints.rest, "API_TESTNET_URL": endpoints.rest,
             "FUTURES_URL": endpoints.fapi, "FUTURES_TESTNET_URL": endpoints.fapi,
             "WS_API_URL": endpoints.ws_api, "WS_API_TESTNET_URL": endpoints.ws_api}
    return type("VenueBinanceClient", (Client,), attrs)
