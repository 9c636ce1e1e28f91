"""Repository layout rules that CI must keep."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_test_module_basenames_are_unique() -> None:
    # tests/ has no __init__.py files (pytest "prepend" import mode): two test modules with
    # the same basename in different folders cannot both be collected.
    names = Counter(p.name for p in (ROOT / "tests").rglob("*.py")
                    if p.name != "conftest.py" and p.name != "__init__.py")
    assert [n for n, c in names.items() if c > 1] == []


def test_fixed_top_level_layout() -> None:
    for name in ("actors", "supervision", "models", "conf", "tests", "exchange_sim", "bench",
                 "run.py", "setup.cfg", "README.md"):
        assert (ROOT / name).exists(), name
