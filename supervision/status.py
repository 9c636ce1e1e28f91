"""Operator commands against a running bot: ``status [--json]``, ``stop [--mode]``, ``resume``.

The bot is found through ``<state_dir>/bot.json`` (written by the launcher). The admin port is
probed with a plain TCP connect *before* any ``ActorSystem`` handle is created: thespian would
otherwise start a new, empty actor system. With no bot: "gridbot CMD: no gridbot is running
(state dir …)" on stderr and exit code 1; ``status --json`` then still prints a JSON object
(``{"running": false, "state_dir": …}``) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from infra import statelock
from infra.cli_args import CliError
from infra.config_io import config_error_lines, load_config
from models.config import ConfigError
from models.messages import ResumeTrading, StatusReported, StatusRequested, TradingStateChanged
from supervision import launcher

EXIT_OK, EXIT_FAIL = 0, 1
ASK_TIMEOUT_S = 10.0
STOP_WAIT_S = 180.0


def _state_dir(args: argparse.Namespace) -> Path:
    """``--state-dir``, else the config's ``state_dir`` (a config that does not load is an
    error: guessing another directory would report on the wrong bot)."""
    if getattr(args, "state_dir", None):
        return Path(args.state_dir)

    try:
        return Path(load_config(getattr(args, "config", None)).state_dir)
    except ConfigError as e:
        raise CliError(*config_error_lines(e, getattr(args, "config", None))) from None


def _find_bot(args: argparse.Namespace, cmd: str) -> tuple[Path, dict[str, Any] | None]:
    state_dir = _state_dir(args)
    info = launcher.bot_is_running(state_dir)
    if info is None:
        pid = statelock.holder(state_dir)  # a launcher still starting its tree holds the lock
        if pid is not None:
            print(f"gridbot {cmd}: gridbot (pid {pid}) is starting with state dir {state_dir} "
                  "and not ready yet; try again in a few seconds", file=sys.stderr)
        else:
            print(f"gridbot {cmd}: no gridbot is running (state dir {state_dir})",
                  file=sys.stderr)
    return state_dir, info


def _connect(info: dict[str, Any]) -> tuple[Any, Any]:
    asys = launcher.connect_actor_system(int(info["admin_port"]), info.get("host", "127.0.0.1"))
    return asys, launcher.root_address(asys)


def fetch_status(info: dict[str, Any], timeout_s: float = ASK_TIMEOUT_S) -> dict[str, Any] | None:
    """The root's aggregated status tree (None if it did not answer)."""

    asys, root = _connect(info)
    reply = asys.ask(root, StatusRequested(), timeout_s)
    return dict(reply.data) if isinstance(reply, StatusReported) else None


# -- rendering ----------------------------------------------------------------------------------------
_DETAIL_KEYS = ("position_qty", "position", "entry_price", "realized_pnl", "unrealized_pnl",
                "pnl", "fees", "funding", "open_orders", "trading_state", "equity",
                "leverage", "leverage_cap", "drawdown")


def _age(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1f}s"


def _details(status: dict[str, Any]) -> str:
    return "  ".join(f"{k}={status[k]}" for k in _DETAIL_KEYS if k in status)


def render_status(info: dict[str, Any], data: dict[str, Any]) -> str:
    """Human-readable status tree."""
    lines: list[str] = []
    root = data.get("root", {})
    lines.append(f"gridbot pid {info.get('pid')}  admin {info.get('host', '127.0.0.1')}:"
                 f"{info.get('admin_port')}  root pid {root.get('pid')}  "
                 f"up {root.get('uptime_s', 0):.0f}s  state dir {info.get('state_dir', '')}")
    header = f"  {'ACTOR':<12}{'PID':>8}  {'STATE':<10}{'RESTARTS':>8}  {'SNAPSHOT':>9}" \
             f"  {'HEARTBEAT':>9}"
    pf = data.get("portfolio")
    if pf:
        st = pf.get("status", {})
        lines.append("portfolio")
        lines.append(header)
        lines.append(f"  {'portfolio':<12}{pf.get('pid', 0):>8}  {pf.get('state', ''):<10}"
                     f"{pf.get('restarts', 0):>8}  {_age(pf.get('snapshot_age_s')):>9}"
                     f"  {_age(pf.get('heartbeat_age_s')):>9}")
        if st.get("leverage") is not None and st.get("leverage_cap") is not None:
            lines.append(f"  leverage {st['leverage']} / cap {st['leverage_cap']}")
        if _details(st):
            lines.append("  " + _details(st))
    for sym, s in data.get("symbols", {}).items():
        sup = s.get("supervisor", {})
        tree = s.get("tree", {})
        lines.append(f"{sym}  {s.get('state', '?')}  supervisor pid {sup.get('pid')}  "
                     f"restarts {tree.get('restarts_total', 0)} "
                     f"({tree.get('restarts_in_window', 0)} in window)")
        if s.get("stop_reason"):
            lines.append(f"  stopped: {s['stop_reason']}")
        lines.append(header)
        for a in tree.get("actors", []):
            lines.append(f"  {a['name']:<12}{a.get('pid', 0):>8}  {a.get('state', ''):<10}"
                         f"{a.get('restarts', 0):>8}  {_age(a.get('snapshot_age_s')):>9}"
                         f"  {_age(a.get('heartbeat_age_s')):>9}")
            d = _details(a.get("status", {}))
            if d:
                lines.append(f"    {d}")
    if data.get("no_status_from"):
        lines.append(f"(no answer from: {', '.join(data['no_status_from'])})")
    return "\n".join(lines)


# -- commands -----------------------------------------------------------------------------------------
def status_command(args: argparse.Namespace) -> int:
    """``run.py status [--json]``: the live supervision tree, positions, PnL, leverage."""
    as_json = bool(getattr(args, "json", False))
    state_dir, info = _find_bot(args, "status")
    if info is None:
        pid = statelock.holder(state_dir)
        if as_json:
            out: dict[str, Any] = {"running": False, "state_dir": str(state_dir.resolve())}
            if pid is not None:
                out["starting_pid"] = pid
            print(json.dumps(out, indent=1, sort_keys=True))
        return EXIT_FAIL
    data = fetch_status(info)
    if data is None:
        print(f"gridbot status: gridbot (pid {info.get('pid')}) did not answer a status request "
              f"within {ASK_TIMEOUT_S:g}s", file=sys.stderr)
        if as_json:
            print(json.dumps({"running": True, "answered": False, "bot": info}, default=str,
                             indent=1, sort_keys=True))
        return EXIT_FAIL
    if as_json:
        print(json.dumps({"running": True, "answered": True, "bot": info, **data}, default=str,
                         indent=1, sort_keys=True))
    else:
        print(render_status(info, data))
    return EXIT_OK


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return launcher.netsec.proc_stat(pid) is not None


def stop_command(args: argparse.Namespace) -> int:
    """``run.py stop [--mode]``: graceful shutdown through the launcher (SIGTERM), or directly
    through the actor system when the launcher process is gone."""
    state_dir, info = _find_bot(args, "stop")
    if info is None:
        return EXIT_FAIL
    mode = getattr(args, "mode", None)
    if mode:
        (state_dir / launcher.STOP_REQUEST_FILE).write_text(json.dumps({"mode": mode}))
    pid = int(info.get("pid", 0))
    if pid and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        print(f"stopping gridbot (pid {pid}, mode {mode or 'from config'})...", file=sys.stderr)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            print(f"gridbot stop: gridbot (pid {pid}) is still shutting down after "
                  f"{STOP_WAIT_S:g}s", file=sys.stderr)
            return EXIT_FAIL
        print("gridbot stopped", file=sys.stderr)
        return EXIT_OK
    # The launcher died (e.g. kill -9) but the actor system still runs: stop it ourselves.
    print(f"launcher pid {pid} is gone; stopping the actor system directly", file=sys.stderr)
    asys, root = _connect(info)
    ok = launcher.stop_trading(asys, root, mode or "flatten", 60.0)
    launcher.shutdown_actor_system(asys, info.get("session"))
    launcher.remove_bot_file(state_dir)
    print("gridbot stopped" + ("" if ok else " (not every symbol confirmed TradingStopped)"),
          file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAIL


def resume_command(args: argparse.Namespace) -> int:
    """``run.py resume [--safe-mode]``: lift a drawdown halt (the portfolio decides)."""

    _, info = _find_bot(args, "resume")
    if info is None:
        return EXIT_FAIL
    asys, root = _connect(info)
    safe = bool(getattr(args, "safe_mode", False))
    reply = asys.ask(root, ResumeTrading(reason="operator", safe_mode=safe), ASK_TIMEOUT_S)
    if isinstance(reply, TradingStateChanged):
        print(f"trading state: {reply.state.value}" + (f" ({reply.reason})" if reply.reason
                                                        else ""))
        return EXIT_OK
    detail = reply.data.get("resume") if isinstance(reply, StatusReported) else "no answer"
    print(f"gridbot resume: {detail}", file=sys.stderr)
    return EXIT_FAIL
