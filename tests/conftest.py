"""Test-session settings: the parsed-kline disk cache goes to a temporary directory (tests
never write into the user's ~/.cache)."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("GRIDBOT_CACHE_DIR", tempfile.mkdtemp(prefix="gridbot-test-cache-"))
