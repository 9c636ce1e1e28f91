"""The installed gridbot version (``setup.cfg``), for logs, status and the state store."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("gridbot")
except PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "unknown"
