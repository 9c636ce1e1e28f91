"""Loopback-only networking for thespian's TCP transport, and process/socket inspection helpers.

thespian 4.0.1 binds every actor socket (admin, logger, each actor, and even the external
``ActorSystem`` handle of the launcher or a status CLI) to all interfaces and unpickles whatever
arrives: on a host with a public address anyone could run code in the bot.

``install()`` makes such sockets bind ``bind_host`` (127.0.0.1 by default) and sets
``THESPIAN_BASE_IPADDR`` so the advertised addresses are loopback too (the private thespian
names this takes live in ``supervision.thespian_compat``). Call it *before* the ``ActorSystem``
starts: thespian forks the admin and every actor from this process, so they inherit the patch
and the environment.

Binding loopback keeps other machines out, not other users of this one: ``install()`` also has
every accepted connection vetted before thespian unpickles anything from it (``peer_refusal``):
a connection from this machine is admitted only when the peer socket belongs to this process's
uid (read from ``/proc/net/tcp``/``tcp6``), so another local user can neither run code in the
bot nor stop, resume or query it through the actor transport (the state dir is 0700 too).

Joining actor systems across hosts (``allow_remote=true`` with a private ``bind_host``) is opt-in;
connections from other hosts are then admitted without authentication (the transport is
pickle): only on a private network/VPN with a firewall that admits the peer hosts alone.

The helpers ``listening_sockets(pid)``, ``proc_stat(pid)``, ``session_pids(sid)`` and
``children_of(pid)`` (psutil) let tests and the launcher check every listener and find leftover
processes.
"""

from __future__ import annotations

import os
import socket

import psutil

from supervision import thespian_compat

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class InsecureBindingRefused(RuntimeError):
    """A non-loopback bind address was requested without ``allow_remote``."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ``localhost`` and ``::1``."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def install(bind_host: str = "127.0.0.1", allow_remote: bool = False) -> str:
    """Make every thespian TCP socket of this process (and its future forks) bind ``bind_host``.

    Returns the effective host. Idempotent; a second call with another host re-targets the patch.
    Raises ``thespian_compat.ThespianCompatError`` when the installed thespian is not one the
    patch was written for, and ``RuntimeError`` if a loopback patch did not take effect.
    """
    if bind_host == "localhost":
        bind_host = "127.0.0.1"
    if bind_host in ("0.0.0.0", "", "::", "*"):
        raise InsecureBindingRefused(
            f"bind_host {bind_host!r} binds every interface; name the one private address to "
            "bind (allow_remote never allows a wildcard)")
    if not is_loopback(bind_host) and not allow_remote:
        raise InsecureBindingRefused(
            f"bind_host {bind_host!r} is not loopback; set supervision.allow_remote=true only on "
            "a private, firewalled network (the actor transport unpickles what it receives)")
    thespian_compat.check()
    thespian_compat.base_ipaddr(bind_host)
    thespian_compat.add_local_addr(bind_host)
    thespian_compat.bind_external_to(bind_host)
    _guard["uid"], _guard["remote"] = os.getuid(), allow_remote
    thespian_compat.guard_accept(_vet)
    if is_loopback(bind_host) and thespian_compat.external_binding() != (bind_host, bind_host):
        raise RuntimeError(f"thespian sockets would not bind {bind_host}: "
                           f"{thespian_compat.external_binding()} (see supervision/netsec.py)")
    return bind_host


_guard: dict[str, object] = {"uid": None, "remote": False}


def _vet(sock: socket.socket) -> str | None:
    try:
        peer, local = sock.getpeername(), sock.getsockname()
    except OSError as e:
        return f"connection refused: no peer address ({e})"
    return peer_refusal(peer, local, int(_guard["uid"] or 0), bool(_guard["remote"]))


def _proc_net_text(ipv6: bool) -> str:
    try:
        with open("/proc/net/tcp6" if ipv6 else "/proc/net/tcp") as fh:
            return fh.read()
    except OSError:
        return ""


def _hex_addr(host: str, port: int) -> str:
    """``host:port`` as /proc/net/tcp{,6} prints it (addresses in host byte order words)."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    words = [packed[i:i + 4] for i in range(0, len(packed), 4)]
    return "".join(w[::-1].hex().upper() for w in words) + f":{port:04X}"


def socket_owner(text: str, local: tuple, remote: tuple) -> int | None:
    """The uid owning the TCP socket whose local end is ``local`` and remote end ``remote``
    in a /proc/net/tcp{,6} listing (None when there is no such socket)."""
    want_l, want_r = _hex_addr(local[0], local[1]), _hex_addr(remote[0], remote[1])
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) > 7 and f[1] == want_l and f[2] == want_r:
            return int(f[7])
    return None


def peer_refusal(peer: tuple, local: tuple, uid: int, allow_remote: bool,
                 proc_text: str | None = None) -> str | None:
    """Why a connection from ``peer`` to our ``local`` end must be refused, or None.

    A peer socket on this machine must belong to ``uid``; a peer from another host is
    admitted only with ``allow_remote``. ``proc_text`` (tests): the /proc/net listing."""
    text = proc_text if proc_text is not None else _proc_net_text(":" in peer[0])
    owner = socket_owner(text, peer, local)
    if owner is not None:
        return None if owner == uid else (f"connection from {peer[0]}:{peer[1]} refused: "
                                          f"its socket belongs to uid {owner}, not {uid}")
    if is_loopback(peer[0]) or peer[0] == local[0]:
        return f"connection from {peer[0]}:{peer[1]} refused: its owner cannot be verified"
    if allow_remote:
        return None
    return f"connection from {peer[0]}:{peer[1]} refused: remote peers need allow_remote"


def uninstall() -> None:
    """Undo ``install()`` (tests only)."""
    thespian_compat.guard_accept(None)
    thespian_compat.unbind()
    thespian_compat.base_ipaddr(None)


def installed_host() -> str | None:
    """The host the patch binds to, or None when not installed."""
    return thespian_compat.bound_host()


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


# -- process and socket inspection (psutil) ------------------------------------------------------
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError)


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """``(ip, port)`` of every TCP socket in LISTEN state owned by ``pid`` (IPv4 and IPv6;
    empty when the process is gone or not ours to inspect)."""
    try:
        proc = psutil.Process(pid)
        conns = (proc.net_connections(kind="tcp") if hasattr(proc, "net_connections")
                 else proc.connections(kind="tcp"))  # psutil < 6
    except (*_GONE, psutil.AccessDenied):
        return []
    return [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]


def proc_stat(pid: int) -> dict[str, int] | None:
    """``ppid``, ``pgid``, ``sid`` and ``rss_kb`` of ``pid`` (None if it is gone or a zombie)."""
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None  # a zombie is dead for every purpose here
            ppid = proc.ppid()
            rss = proc.memory_info().rss // 1024
        return {"ppid": ppid, "pgid": os.getpgid(pid), "sid": os.getsid(pid), "rss_kb": rss}
    except (*_GONE, psutil.AccessDenied, OSError):
        return None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except (*_GONE, psutil.AccessDenied):
        return False


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the thespian admin starts its own session, so this
    is every process of one actor system)."""
    out: list[int] = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == sid and _alive(psutil.Process(pid)):
                out.append(pid)
        except (*_GONE, OSError):
            continue
    return sorted(out)


def children_of(pid: int) -> list[int]:
    """Live direct children of ``pid``."""
    try:
        kids = psutil.Process(pid).children()
    except (*_GONE, psutil.AccessDenied):
        return []
    return sorted(k.pid for k in kids if _alive(k))


def pid_listening_on(port: int, candidates: list[int]) -> int | None:
    """Which of ``candidates`` listens on TCP ``port``."""
    for pid in candidates:
        if any(p == port for _, p in listening_sockets(pid)):
            return pid
    return None
