"""Reading the config file and credentials from the environment (the I/O side of ``models.config``)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from infra.cli_args import EXIT_BAD_INPUT, EXIT_OK, CliError
from infra.logs import register_secret
from models.config import Config, ConfigError, parse_config
from models.enums import Venue

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "conf" / "default.json"


class ConfigFileError(ConfigError):
    """The config file cannot be read at all (missing, a directory, no permission)."""


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a config file; raise ``ConfigError`` listing every problem
    (``ConfigFileError`` when the file cannot be read)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigFileError([f"cannot read {p}: {e.strerror or e}"], str(p)) from e
    cfg, errors = parse_config(data)
    if errors:
        raise ConfigError(errors, str(p))
    assert cfg is not None
    return cfg


def config_error_lines(e: ConfigError, path: str | Path | None = None) -> list[str]:
    """One line per problem for a command's stderr: ``FILE: $.path: message``, or the single
    ``cannot read FILE: reason``."""
    if isinstance(e, ConfigFileError):
        return list(e.errors)
    p = Path(path) if path is not None else DEFAULT_CONFIG
    return [f"{p}: {err}" for err in e.errors]


@dataclass(frozen=True)
class Credentials:
    """API credentials; ``repr`` never shows the secret."""

    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key[:4]}…, api_secret=***)"

    __str__ = __repr__


class MissingCredentials(RuntimeError):
    """Testnet/live need ``BINANCE_API_KEY`` and ``BINANCE_API_SECRET`` in the environment."""


def load_credentials(venue: Venue, environ: dict[str, str] | None = None) -> Credentials | None:
    """Credentials for ``venue`` from the environment only (None for the embedded exchange)."""
    if venue is Venue.SIM:
        return None
    env = os.environ if environ is None else environ
    key, secret = env.get("BINANCE_API_KEY", ""), env.get("BINANCE_API_SECRET", "")
    if not key or not secret:
        raise MissingCredentials(
            f"venue {venue.value!r} needs BINANCE_API_KEY and BINANCE_API_SECRET in the "
            "environment (keys are never read from files)")

    register_secret(key)
    register_secret(secret)
    return Credentials(key, secret)


def config_check_command(args: argparse.Namespace) -> int:
    """``config check FILE``: print ``ok`` or every error with its JSON path; exit 2 on errors
    (an unreadable file: one line on stderr)."""
    try:
        load_config(args.file)
    except ConfigFileError as e:
        raise CliError(*e.errors) from None
    except ConfigError as e:
        for err in e.errors:
            print(err)
        return EXIT_BAD_INPUT
    print("ok")
    return EXIT_OK
