"""Start and stop the bot: config, logging, state check, loopback actor system, supervision tree,
``bot.json`` discovery file, signals and graceful shutdown.

``run_bot(args)`` is ``python run.py run``. Shutdown (SIGINT, SIGTERM or ``run.py stop``): the root
gets ``StopTrading(mode)`` (no new orders from that instant; the order actors cancel and close per
mode) and the launcher waits for ``TradingStopped`` from every symbol up to ``shutdown_timeout_s``;
a second SIGINT sends ``StopTrading("cancel-only")`` and stops waiting for flattening. Then the
actor system shuts down (every actor persists on ``ActorExitRequest``), leftover processes of the
bot's session are killed, ``bot.json`` is removed and the exit code is 0.

The thespian admin runs in its own session (it calls ``setsid``), so "every process of the bot" is
the launcher plus that session; ``bot.json`` records both ids.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.gateway import SIM_URLS_FILE
from exchange_sim.embedded import sim_config_for_bot, start_for_bot
from infra.cli_args import (
    CliError,
    check_input_file,
    check_output_dir,
    parse_duration,
    parse_speed,
)
from infra.config_io import MissingCredentials, config_error_lines, load_config, load_credentials
from infra.console import verbosity_from
from infra.logs import JSON_FILE, add_append_sink, configure_logging, log_event, thespian_log_defs
from infra.statelock import StateDirLocked
from infra.statelock import acquire as acquire_state_lock
from infra.store import CorruptStateError, StateStoreError, check_database_file
from models.config import Config, ConfigError, config_to_json
from models.enums import Venue
from models.messages import ActorReady, StopTrading, TradingStopped
from supervision import netsec
from supervision.terminal import SessionConsole
from supervision.tree import (
    ROOT_CLASS,
    ROOT_GLOBAL_NAME,
    ChildSpec,
    StartRootTree,
    SupervisorSettings,
    TreePing,
    TreePong,
    build_portfolio_spec,
    build_tree_specs,
)

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
BOT_FILE = "bot.json"
STOP_REQUEST_FILE = "stop_request.json"
SYSTEM_BASE = "multiprocTCPBase"


# -- small pure helpers ---------------------------------------------------------------------------
def duration_wall_seconds(duration: str | None, speed: str | float | None) -> float | None:
    """Wall-clock seconds for ``--duration`` at ``--speed`` (None: run until stopped; no
    speed: wall time). On the bot's embedded exchange ``run_bot`` measures the duration on the
    exchange's own clock instead."""
    if not duration:
        return None
    secs = parse_duration(duration)
    if speed in (None, ""):
        return secs
    try:
        factor = parse_speed(speed)
    except ValueError:
        raise ValueError(f"--duration {duration} cannot be timed at replay speed {speed!r} "
                         "(needs a speed > 0)") from None
    return secs / factor


def read_bot_file(state_dir: Path) -> dict[str, Any] | None:
    """The running bot's discovery record, or None."""
    try:
        data = json.loads((state_dir / BOT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_bot_file(state_dir: Path, info: dict[str, Any]) -> Path:
    """Write ``bot.json`` atomically (tmp + rename)."""
    path = state_dir / BOT_FILE
    tmp = path.with_name(f".{BOT_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def remove_bot_file(state_dir: Path, pid: int | None = None) -> None:
    """Remove ``bot.json`` (only if it belongs to ``pid`` when given)."""
    info = read_bot_file(state_dir)
    if info is not None and pid is not None and info.get("pid") != pid:
        return
    try:
        (state_dir / BOT_FILE).unlink()
    except FileNotFoundError:
        pass


def bot_is_running(state_dir: Path) -> dict[str, Any] | None:
    """``bot.json`` contents if its admin port answers on loopback (plain TCP connect)."""
    info = read_bot_file(state_dir)
    if info is None or not isinstance(info.get("admin_port"), int):
        return None
    host = info.get("host", "127.0.0.1")
    return info if netsec.port_answers(info["admin_port"], host) else None


def check_state_files(state_dir: Path) -> list[str]:
    """Errors for every corrupt or incomplete state DB in ``state_dir`` (``integrity_check``
    and the schema of its version; files are opened read-only)."""

    errors: list[str] = []
    if not state_dir.exists():
        return errors
    for db in sorted(state_dir.glob("*.db")):
        try:
            check_database_file(db, full=True)
        except CorruptStateError as e:
            errors.append(str(e))
        except StateStoreError as e:  # e.g. a schema newer than this gridbot
            errors.append(f"{db}: {e}")
    return errors


# -- actor system -----------------------------------------------------------------------------------
def guard_transport(bind_host: str, allow_remote: bool = False) -> None:
    """``netsec.install`` (every thespian socket binds ``bind_host``), with a thespian it was
    not written for or a patch that did not take reported as one line (exit 1)."""
    try:
        netsec.install(bind_host, allow_remote)
    except RuntimeError as e:  # ThespianCompatError, InsecureBindingRefused, a failed patch
        raise CliError(str(e), code=EXIT_FAIL) from None


def start_actor_system(admin_port: int, log_dir: Path | None, *, bind_host: str = "127.0.0.1",
                       allow_remote: bool = False, rotation: str = "100 MB",
                       retention: int = 10) -> Any:
    """A new multiprocTCPBase system whose every socket binds ``bind_host`` (loopback)."""
    guard_transport(bind_host, allow_remote)
    from thespian.actors import ActorSystem

    log_defs: Any = (thespian_log_defs(log_dir, rotation, retention) if log_dir is not None
                     else False)
    return ActorSystem(SYSTEM_BASE, {"Admin Port": admin_port}, logDefs=log_defs,
                       transientUnique=True)


def connect_actor_system(admin_port: int, host: str = "127.0.0.1") -> Any:
    """A handle on an already running system. Callers must first check the port answers:
    thespian *starts* a new admin when none is running."""
    guard_transport(host if netsec.is_loopback(host) else "127.0.0.1")
    from thespian.actors import ActorSystem

    return ActorSystem(SYSTEM_BASE, {"Admin Port": admin_port}, logDefs=False,
                       transientUnique=True)


def root_address(asys: Any) -> Any:
    """The root supervisor's address (thespian global name ``gridbot-root``)."""
    return asys.createActor(ROOT_CLASS, globalName=ROOT_GLOBAL_NAME)


def start_tree(asys: Any, start: StartRootTree, timeout_s: float) -> tuple[Any, int]:
    """Create the root, send ``StartRootTree`` and wait for its ``ActorReady``."""

    root = root_address(asys)
    reply = asys.ask(root, start, timeout_s)
    deadline = time.monotonic() + timeout_s
    while not isinstance(reply, ActorReady) and time.monotonic() < deadline:
        reply = asys.listen(max(0.05, deadline - time.monotonic()))
    if not isinstance(reply, ActorReady):
        raise TimeoutError(f"supervision tree not ready within {timeout_s:g}s")
    return root, reply.pid


def session_of(pid: int) -> int | None:
    """Session id of ``pid`` (the actor system's session when ``pid`` is an actor)."""
    st = netsec.proc_stat(pid)
    return st["sid"] if st else None


def kill_session(sid: int | None, grace_s: float = 3.0) -> list[int]:
    """Wait up to ``grace_s`` for the session's processes to exit, then SIGKILL the rest.
    Returns the pids that had to be killed. Never touches our own session."""
    if not sid or sid == os.getsid(0):
        return []
    deadline = time.monotonic() + grace_s
    left = netsec.session_pids(sid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = netsec.session_pids(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def shutdown_actor_system(asys: Any, sid: int | None, grace_s: float = 5.0) -> list[int]:
    """``asys.shutdown()`` (ActorExitRequest to every actor: they persist), then make sure no
    process of the session is left. Returns pids that had to be SIGKILLed."""
    try:
        asys.shutdown()
    except Exception as e:  # noqa: BLE001 - still clean up the processes
        print(f"gridbot: actor system shutdown error: {e}", file=sys.stderr)
    return kill_session(sid, grace_s)


def ping_root(asys: Any, root: Any, timeout_s: float = 2.0) -> TreePong | None:
    """Ask the root for a ``TreePong`` (None if it does not answer)."""
    reply = asys.ask(root, TreePing(seq=int(time.monotonic())), timeout_s)
    return reply if isinstance(reply, TreePong) else None


def stop_trading(asys: Any, root: Any, mode: str, timeout_s: float,
                 interrupted: Callable[[], bool] = lambda: False) -> bool:
    """Send ``StopTrading(mode)`` and wait for the aggregated ``TradingStopped``."""

    asys.tell(root, StopTrading(mode=mode))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = asys.listen(min(0.2, max(0.01, deadline - time.monotonic())))
        if isinstance(reply, TradingStopped):
            return True
        if interrupted():
            return False
    return False


def build_start_message(cfg: Config, state_dir: Path,
                        classes: dict[str, str] | None = None,
                        trees: dict[str, list[ChildSpec]] | None = None,
                        portfolio: ChildSpec | None = None,
                        **settings: Any) -> StartRootTree:
    """The root's start message for ``cfg`` (child classes pluggable per role)."""
    return StartRootTree(
        trees=trees if trees is not None else build_tree_specs(cfg, classes),
        portfolio=portfolio if portfolio is not None else build_portfolio_spec(classes),
        config_json=config_to_json(cfg), state_dir=str(state_dir.resolve()),
        settings=SupervisorSettings.from_config(cfg.supervision, cfg.logging.level, **settings),
        launcher_pid=os.getpid())


# -- run ----------------------------------------------------------------------------------------------
class _Signals:
    """First SIGINT/SIGTERM: graceful stop; second SIGINT: skip flattening."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0

    def handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.last = signum

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.handler)
        signal.signal(signal.SIGTERM, self.handler)


def _start_venue(cfg: Config, args: argparse.Namespace, state_dir: Path
                 ) -> Callable[[], None] | None:
    """Venue URLs for the gateways: ``--sim-urls`` is copied to the state dir, where the
    gateway reads it; on ``venue: sim`` the embedded exchange is started (its stop handle is
    returned); testnet/live need nothing here."""
    sim_urls = getattr(args, "sim_urls", None)
    if sim_urls is not None:
        (state_dir / SIM_URLS_FILE).write_bytes(Path(sim_urls).read_bytes())
        return None
    return start_for_bot(cfg, args, state_dir)


def _await_orphan(state_dir: Path, info: dict[str, Any], wait_s: float = 30.0
                  ) -> dict[str, Any] | None:
    """The previous launcher was killed but its actor system still answers: its root notices
    and persists + exits by itself within seconds; wait for that, then kill what is left of
    that session (ours: recorded in bot.json). Returns the bot info if it is still running."""
    print(f"gridbot run: the previous run's actor system (launcher pid {info.get('pid')} is "
          "gone) is still shutting down; waiting for it", file=sys.stderr)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if bot_is_running(state_dir) is None:
            return None
        time.sleep(0.5)
    sid = info.get("session")
    if isinstance(sid, int) and sid > 1:
        kill_session(sid, grace_s=0.0)
    time.sleep(0.5)
    return bot_is_running(state_dir)


def _effective_speed(cfg: Config, args: argparse.Namespace) -> str | float | None:
    """The replay speed ``--duration`` is measured in (the embedded exchange's default when the
    bot starts it; ``--speed`` otherwise)."""
    speed = getattr(args, "speed", None)
    if speed is None and cfg.venue is Venue.SIM and getattr(args, "sim_urls", None) is None:

        return sim_config_for_bot(cfg, args, Path(".")).speed
    return speed


def run_command(args: argparse.Namespace) -> int:
    """``python run.py run``: check the files named on the command line (one line and exit 2
    for a bad one), then ``run_bot``."""
    for opt, p in (("--state-dir", args.state_dir), ("--log-dir", args.log_dir)):
        if p is not None:
            check_output_dir(p, opt)
    if args.sim_urls is not None:
        check_input_file(args.sim_urls, "--sim-urls")
        try:
            urls = json.loads(args.sim_urls.read_bytes())
        except ValueError:
            urls = None
        if not isinstance(urls, dict):
            raise CliError(f"--sim-urls {args.sim_urls}: not the JSON object 'sim --urls-file' "
                           "writes")
    return run_bot(args)


def run_bot(args: argparse.Namespace) -> int:
    """``python run.py run``: start the supervised bot and run until stopped."""

    try:
        cfg = load_config(getattr(args, "config", None))
    except ConfigError as e:
        for line in config_error_lines(e, getattr(args, "config", None)):
            print(f"gridbot run: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        load_credentials(cfg.venue)  # testnet/live: refuse to start without keys
    except MissingCredentials as e:
        print(f"gridbot run: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        wall_limit = duration_wall_seconds(getattr(args, "duration", None),
                                           _effective_speed(cfg, args))
    except ValueError as e:
        print(f"gridbot run: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    state_dir = Path(getattr(args, "state_dir", None) or cfg.state_dir)
    log_dir = Path(getattr(args, "log_dir", None) or cfg.log_dir)
    sup = cfg.supervision
    guard_transport(sup.bind_host, sup.allow_remote)  # before anything starts
    if not netsec.is_loopback(sup.bind_host):
        print(f"gridbot run: WARNING: the actor system listens on {sup.bind_host} "
              "(allow_remote): any host that can reach that address can run code as this bot; "
              "only on a private, firewalled network", file=sys.stderr)
    try:
        # one bot per state dir, decided atomically before anything starts (bot.json below is
        # written only once the tree is up: two launchers started together both miss it)
        lock = acquire_state_lock(state_dir)
    except StateDirLocked as e:
        print(f"gridbot run: {e}: a gridbot is already running or starting there",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"gridbot run: cannot lock state dir {state_dir}: {e.strerror or e}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return _run_locked(cfg, args, state_dir, log_dir, wall_limit)
    finally:
        lock.release()


def _run_locked(cfg: Config, args: argparse.Namespace, state_dir: Path, log_dir: Path,
                wall_limit: float | None) -> int:
    """``run_bot`` once this process holds the state directory's lock."""
    sup = cfg.supervision
    running = bot_is_running(state_dir)
    if running and netsec.proc_stat(int(running.get("pid") or 0)) is None:
        running = _await_orphan(state_dir, running)
    if running:
        print(f"gridbot run: a gridbot is already running with state dir {state_dir} "
              f"(pid {running.get('pid')}, admin port {running.get('admin_port')})",
              file=sys.stderr)
        return EXIT_FAIL
    errors = check_state_files(state_dir)
    if errors:
        for err in errors:
            print(f"gridbot run: {err}", file=sys.stderr)
        return EXIT_FAIL
    state_dir.mkdir(parents=True, exist_ok=True)
    remove_bot_file(state_dir)
    (state_dir / STOP_REQUEST_FILE).unlink(missing_ok=True)
    # the terminal shows the JSON log (every process's records, the launcher's too) as it is
    # written: supervision.terminal follows it from here, so no stderr sink of our own

    console = SessionConsole(
        log_dir / JSON_FILE, quote=cfg.portfolio.quote_asset, sim_venue=cfg.venue is Venue.SIM,
        verbosity=verbosity_from(getattr(args, "verbose", 0) or 0,
                                 bool(getattr(args, "quiet", False)), cfg.logging.level))
    configure_logging(None, stderr=False)
    add_append_sink(log_dir / JSON_FILE)  # launcher events in the same JSON log

    sigs = _Signals()
    sigs.install()
    venue_stop = _start_venue(cfg, args, state_dir)
    console.start(sim_clock=getattr(venue_stop, "sim_time_at", None))
    port = sup.admin_port or netsec.free_port(sup.bind_host)
    asys = start_actor_system(port, log_dir, bind_host=sup.bind_host,
                              allow_remote=sup.allow_remote, rotation=cfg.logging.rotation,
                              retention=cfg.logging.retention)
    sid: int | None = None
    code = EXIT_OK
    try:
        start = build_start_message(cfg, state_dir)
        try:
            root, root_pid = start_tree(asys, start, max(60.0, 4 * sup.heartbeat_timeout_s))
        except TimeoutError as e:
            print(f"gridbot run: {e}", file=sys.stderr)
            return EXIT_FAIL
        sid = session_of(root_pid)
        write_bot_file(state_dir, {
            "pid": os.getpid(), "admin_port": port, "host": sup.bind_host,
            "root_pid": root_pid, "session": sid, "started_at": time.time(),
            "state_dir": str(state_dir.resolve()), "log_dir": str(log_dir.resolve())})
        log_event("BOT_READY", f"gridbot running (admin port {port}, state {state_dir})",
                  venue=cfg.venue.value, symbols=list(cfg.portfolio.symbols),
                  weights=dict(cfg.portfolio.weights),
                  markets={k: v.value for k, v in cfg.portfolio.markets.items()},
                  leverage_cap=cfg.portfolio.leverage_cap, strategy=cfg.strategy.kind)
        sim_now = getattr(venue_stop, "sim_now_ms", None)
        sim_limit: tuple[Callable[[], int], int, int] | None = None
        if sim_now is not None and getattr(args, "duration", None):
            # the embedded exchange's own clock measures --duration (at any speed, 'max' too)
            sim_limit = (sim_now, sim_now(), int(parse_duration(args.duration) * 1000))
            wall_limit = None
        code = _run_until_stopped(asys, root, cfg, state_dir, sigs, wall_limit, sim_limit)
    finally:
        leftovers = shutdown_actor_system(asys, sid)
        if leftovers:
            print(f"gridbot: killed {len(leftovers)} leftover actor processes", file=sys.stderr)
        if venue_stop is not None:
            venue_stop()
        remove_bot_file(state_dir, os.getpid())
        (state_dir / STOP_REQUEST_FILE).unlink(missing_ok=True)
        console.stop()  # every process has written its last line by now
        if sid is not None:
            console.print_summary()
    return code


def _requested_mode(state_dir: Path, default: str) -> str:
    try:
        mode = json.loads((state_dir / STOP_REQUEST_FILE).read_text()).get("mode")
    except (OSError, ValueError, AttributeError):
        return default
    return mode if mode in ("flatten", "cancel-only", "leave") else default


def _run_until_stopped(asys: Any, root: Any, cfg: Config, state_dir: Path, sigs: _Signals,
                       wall_limit: float | None,
                       sim_limit: tuple[Callable[[], int], int, int] | None = None) -> int:
    """Main loop: watch signals, the duration (``wall_limit`` seconds of wall time, or
    ``sim_limit`` = (sim clock in ms, its value at the start, duration in ms)) and the root;
    then the graceful stop."""

    t0 = time.monotonic()
    next_ping = t0 + 5.0
    misses = 0
    code = EXIT_OK
    failed: set[str] = set()  # symbols that gave up: the exit code says so
    while sigs.count == 0:
        time.sleep(0.1)
        now = time.monotonic()
        if wall_limit is not None and now - t0 >= wall_limit:
            log_event("DURATION_REACHED", f"--duration reached after {now - t0:.1f}s")
            break
        if sim_limit is not None and sim_limit[0]() - sim_limit[1] >= sim_limit[2]:
            log_event("DURATION_REACHED", f"--duration reached: {sim_limit[2] / 3.6e6:g} h of "
                      f"sim time in {now - t0:.1f}s", sim_ms=sim_limit[2])
            break
        if now >= next_ping:
            next_ping = now + 5.0
            pong = ping_root(asys, root)
            misses = 0 if pong is not None else misses + 1
            if pong is not None:
                gone = sorted(s for s, st in pong.symbols.items() if st == "stopped")
                if gone and len(gone) == len(pong.symbols):
                    log_event("NO_SYMBOL_TRADING", f"every symbol has stopped ({', '.join(gone)})"
                              ": shutting down with exit code 1", level="CRITICAL",
                              symbols=gone)
                    failed.update(gone)
                    break
                failed.update(gone)
            if misses >= 3:
                log_event("ROOT_LOST", "root supervisor stopped answering; shutting down",
                          level="CRITICAL")
                code = EXIT_FAIL
                break
    mode = _requested_mode(state_dir, cfg.supervision.shutdown_mode)
    first_count = sigs.count
    log_event("SHUTDOWN", f"graceful shutdown (mode {mode})", mode=mode)
    ok = stop_trading(asys, root, mode, cfg.supervision.shutdown_timeout_s,
                      interrupted=lambda: sigs.count > max(first_count, 0)
                      and sigs.last == signal.SIGINT)
    if not ok and sigs.count > first_count:
        log_event("SHUTDOWN_FORCED", "second interrupt: cancel-only, then persist and exit",
                  level="WARNING")
        ok = stop_trading(asys, root, "cancel-only", min(5.0, cfg.supervision.shutdown_timeout_s))
    if not ok:
        log_event("SHUTDOWN_INCOMPLETE", "not every symbol confirmed TradingStopped in time",
                  level="WARNING")
    if failed and code == EXIT_OK:
        log_event("EXIT_SYMBOLS_FAILED", f"exit code 1: {', '.join(sorted(failed))} stopped "
                  "trading during the run (see SYMBOL_STOPPED)", level="ERROR",
                  symbols=sorted(failed))
        code = EXIT_FAIL
    return code
