"""Make the helper actor module importable as a top-level module (thespian imports actor classes
by ``module.Class`` in processes forked from the test process)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)
