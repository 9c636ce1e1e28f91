"""Market-data benchmark: prints one JSON line.

Figures: cold load time of the three futures 5m series (BTC/ETH/SOL; SOL merges two files) and
the cached reload time, ``iter_rows`` throughput, and synthetic generation throughput.
Run: ``python -m bench.marketdata_bench``. Load figures are null when there is no data dir.
"""

from __future__ import annotations

import json
import os
import time

from exchange_sim import marketdata as md
from exchange_sim.klinecsv import parse_ohlc_cached
from exchange_sim.synthetic import generate
from models.timeframes import parse_time

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _best(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    """Measure and print the figures as one JSON line."""
    out: dict = {"bench": "marketdata"}
    d = md.default_data_dir()
    if d is not None and (d / "klines").is_dir():
        def cold() -> None:
            os.environ["GRIDBOT_CACHE_DIR"] = "off"  # parse the files, not the disk cache
            parse_ohlc_cached.cache_clear()
            md._merged.cache_clear()
            for s in SYMBOLS:
                md.load_klines(s, "futures", "5m", data_dir=d)

        out["load_3x5m_cold_s"] = round(_best(cold, 2), 4)
        os.environ.pop("GRIDBOT_CACHE_DIR", None)

        def disk() -> None:
            parse_ohlc_cached.cache_clear()
            md._merged.cache_clear()
            for s in SYMBOLS:
                md.load_klines(s, "futures", "5m", data_dir=d)

        disk()  # fills the disk cache
        out["load_3x5m_disk_cache_s"] = round(_best(disk, 3), 4)
        series = [md.load_klines(s, "futures", "5m", data_dir=d) for s in SYMBOLS]
        out["load_3x5m_rows"] = sum(len(b) for b in series)
        out["load_3x5m_cached_s"] = round(
            _best(lambda: [md.load_klines(s, "futures", "5m", data_dir=d) for s in SYMBOLS]), 6
        )
        rows = sum(len(b) for b in series)

        def iterate() -> None:
            for b in series:
                for _row in b.iter_rows():
                    pass

        out["iter_rows_per_s"] = int(rows / _best(iterate))
    else:
        out.update(load_3x5m_cold_s=None, load_3x5m_rows=None, load_3x5m_cached_s=None,
                   iter_rows_per_s=None, note="no market data directory")
    n = 300_000
    start = parse_time("2025-01-06")
    t = _best(lambda: generate("BTCUSDT", "gbm", start_ms=start, n_bars=n, interval="1m"), 2)
    out["synthetic_bars_per_s"] = int(n / t)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
