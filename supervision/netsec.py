"""Loopback-only networking for thespian's TCP transport, and socket inspection helpers.

thespian 4.0.1 binds every actor socket (admin, logger, each actor, and even the external
``ActorSystem`` handle of the launcher or a status CLI) to all interfaces
(``IPActorAddress.__init__`` sets ``bindname = ('', port)`` for "external" addresses) and
unpickles whatever arrives: on a host with a public address anyone could run code in the bot.

``install()`` patches that constructor so such sockets bind ``bind_host`` (127.0.0.1 by default)
and sets ``THESPIAN_BASE_IPADDR`` so the advertised addresses are loopback too. Call it *before*
the ``ActorSystem`` starts: thespian forks the admin and every actor from this process, so they
inherit the patch and the environment.

Joining actor systems across hosts (``allow_remote=true`` with a private ``bind_host``) is opt-in;
even then the transport is unauthenticated pickle: only on a private network/VPN with a firewall
that admits the peer hosts alone.

The helpers ``listening_sockets(pid)`` / ``session_pids(sid)`` read ``/proc`` (Linux; no psutil)
so tests and the launcher can check every listener and find leftover processes.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_state: dict[str, Any] = {"orig": None, "host": None}


class InsecureBindingRefused(RuntimeError):
    """A non-loopback bind address was requested without ``allow_remote``."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ``localhost`` and ``::1``."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def install(bind_host: str = "127.0.0.1", allow_remote: bool = False) -> str:
    """Make every thespian TCP socket of this process (and its future forks) bind ``bind_host``.

    Returns the effective host. Idempotent; a second call with another host re-targets the patch.
    """
    from thespian.system.transport import IPBase

    if bind_host == "localhost":
        bind_host = "127.0.0.1"
    if not is_loopback(bind_host) and not allow_remote:
        raise InsecureBindingRefused(
            f"bind_host {bind_host!r} is not loopback; set supervision.allow_remote=true only on "
            "a private, firewalled network (the actor transport unpickles what it receives)")
    if bind_host not in ("0.0.0.0", "", "::"):
        os.environ["THESPIAN_BASE_IPADDR"] = bind_host
        IPBase.thisSystem.add_local_addr(bind_host)
    cls = IPBase.IPActorAddress
    if _state["orig"] is None:
        _state["orig"] = cls.__init__
    orig: Callable[..., None] = _state["orig"]
    _state["host"] = bind_host

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig(self, *args, **kwargs)
        host = _state["host"]
        if host and self.bindname and self.bindname[0] in ("", "0.0.0.0"):
            self.bindname = (host,) + tuple(self.bindname[1:])

    __init__.__wrapped__ = orig  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]
    return bind_host


def uninstall() -> None:
    """Undo ``install()`` (tests only)."""
    from thespian.system.transport import IPBase

    if _state["orig"] is not None:
        IPBase.IPActorAddress.__init__ = _state["orig"]  # type: ignore[method-assign]
        _state["orig"] = None
    _state["host"] = None
    os.environ.pop("THESPIAN_BASE_IPADDR", None)


def installed_host() -> str | None:
    """The host the patch binds to, or None when not installed."""
    return _state["host"] if _state["orig"] is not None else None


def free_port(host: str = "127.0.0.1") -> int:
    """A currently unused TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if something accepts a TCP connection on ``host:port`` (no data is sent)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# -- /proc inspection ------------------------------------------------------------------------
def _parse_addr(hexaddr: str, v6: bool) -> tuple[str, int]:
    ip_hex, port_hex = hexaddr.split(":")
    port = int(port_hex, 16)
    raw = bytes.fromhex(ip_hex)
    if not v6:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), port
    # /proc prints IPv6 as four host-order 32-bit words
    words = struct.unpack("<4I", raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words)), port


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for fd in entries:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """``(ip, port)`` of every TCP socket in LISTEN state owned by ``pid``."""
    inodes = _socket_inodes(pid)
    out: list[tuple[str, int]] = []
    for name, v6 in (("tcp", False), ("tcp6", True)):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and f[9] in inodes:
                out.append(_parse_addr(f[1], v6))
    return out


def proc_stat(pid: int) -> dict[str, int] | None:
    """``ppid``, ``pgid``, ``sid`` and ``rss_kb`` of ``pid`` (None if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None  # a zombie is dead for every purpose here
    rss = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return {"ppid": int(fields[1]), "pgid": int(fields[2]), "sid": int(fields[3]),
            "rss_kb": rss}


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the thespian admin starts its own session, so this
    is every process of one actor system)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = proc_stat(int(entry.name))
        if st is not None and st["sid"] == sid:
            out.append(int(entry.name))
    return sorted(out)


def children_of(pid: int) -> list[int]:
    """Live direct children of ``pid``."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None and st["ppid"] == pid:
                out.append(int(entry.name))
    return sorted(out)


def pid_listening_on(port: int, candidates: list[int]) -> int | None:
    """Which of ``candidates`` listens on TCP ``port``."""
    for pid in candidates:
        if any(p == port for _, p in listening_sockets(pid)):
            return pid
    return None
