"""Every use of a private thespian name, in one place (written for thespian 4.0.1).

The bot needs three things thespian's public API does not offer:

* **binding actor sockets to loopback** — thespian 4.0.1's ``IPActorAddress.__init__``
  (``thespian.system.transport.IPBase``) sets ``bindname = ('', port)`` for every "external"
  address, i.e. binds the admin, the logger, each actor and the launcher's own handle to all
  interfaces. ``bind_external_to(host)`` wraps that constructor so such addresses bind ``host``;
  ``add_local_addr(host)`` tells thespian's ``IPBase.thisSystem`` that ``host`` is this machine;
* **the TCP port of an actor address** (``ActorAddress.addressDetails.sockname``), so a
  supervisor can find the pid of a child that never reported one (``address_port``);
* **probing what an external address binds** (``external_binding``), so the patch can be
  verified after installing it and by the tests;
* **vetting each accepted connection before thespian reads from it** (``guard_accept``):
  thespian 4.0.1's ``TCPTransport._acceptNewIncoming`` accepts through
  ``TCPTransport.new_socket(self.socket.accept)``; the wrapper runs a check on the new socket
  and, when the check refuses, closes it unread and hands thespian an already-ended
  connection in its place — nothing is unpickled from a refused peer.

``check()`` verifies that the names and signatures these rely on are there and raises
``ThespianCompatError`` naming the installed and the expected thespian version otherwise;
``supervision.netsec.install`` runs it before patching. tests/supervision/test_thespian_compat.py
fails on any thespian other than ``WRITTEN_FOR``: upgrading thespian means re-verifying this
module (and only this module) and bumping ``WRITTEN_FOR`` with the pin in setup.cfg.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Callable
from importlib import metadata
from typing import Any

from thespian.actors import ActorAddress

#: The thespian release this module was written for and verified against.
WRITTEN_FOR = "4.0.1"
#: Environment variable thespian's IP transport reads as this host's address (module import and
#: every new address).
BASE_IPADDR_ENV = "THESPIAN_BASE_IPADDR"

#: Parameters of the private constructors we wrap or call, as thespian 4.0.1 has them.
_IP_INIT_PARAMS = ("self", "af", "socktype", "proto", "baseaddr", "port", "external")
_TCP4_INIT_PARAMS = ("self", "initialIPAddr", "initialIPPort", "external")
_NEW_SOCKET_PARAMS = ("self", "op", "args", "kw")
_state: dict[str, Any] = {"orig": None, "host": None, "accept_orig": None, "accept_check": None}


class ThespianCompatError(RuntimeError):
    """The installed thespian lacks a private name or signature this adapter relies on."""


def installed_version() -> str:
    """The installed thespian distribution's version ("unknown" if it has no metadata)."""
    try:
        return metadata.version("thespian")
    except metadata.PackageNotFoundError:
        return "unknown"


def _ipbase() -> Any:
    try:
        from thespian.system.transport import IPBase  # private module: this file only
    except ImportError as e:
        raise _incompatible(f"no thespian.system.transport.IPBase ({e})") from e
    return IPBase


def _incompatible(what: str) -> ThespianCompatError:
    return ThespianCompatError(
        f"thespian {installed_version()} is installed but supervision/thespian_compat.py was "
        f"written for thespian {WRITTEN_FOR}: {what}. Install thespian=={WRITTEN_FOR} "
        "(setup.cfg) or re-verify the adapter for the new version")


def _params(fn: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(fn).parameters)


def check() -> None:
    """Raise ``ThespianCompatError`` unless every private name used here is present with the
    signature and attributes this module expects."""
    ipb = _ipbase()
    cls = getattr(ipb, "IPActorAddress", None)
    tcp4 = getattr(ipb, "TCPv4ActorAddress", None)
    system = getattr(ipb, "thisSystem", None)
    if not isinstance(cls, type) or not isinstance(tcp4, type) or not issubclass(tcp4, cls):
        raise _incompatible("IPBase.IPActorAddress / TCPv4ActorAddress are missing")
    init = _state["orig"] if _state["orig"] is not None else cls.__init__
    if _params(init) != _IP_INIT_PARAMS:
        raise _incompatible(f"IPActorAddress.__init__{inspect.signature(init)} is not "
                            f"({', '.join(_IP_INIT_PARAMS)})")
    if _params(tcp4.__init__) != _TCP4_INIT_PARAMS:
        raise _incompatible(f"TCPv4ActorAddress.__init__{inspect.signature(tcp4.__init__)} is "
                            f"not ({', '.join(_TCP4_INIT_PARAMS)})")
    if not callable(getattr(system, "add_local_addr", None)):
        raise _incompatible("IPBase.thisSystem.add_local_addr is missing")
    probe = tcp4("127.0.0.1", 0)
    for attr in ("bindname", "sockname"):
        value = getattr(probe, attr, None)
        if not isinstance(value, tuple) or len(value) < 2:
            raise _incompatible(f"a TCPv4ActorAddress has no ({attr} host, port) tuple")
    if not hasattr(ActorAddress(probe), "addressDetails"):
        raise _incompatible("ActorAddress has no addressDetails")
    tcp = _tcp_transport()
    new_socket = _state["accept_orig"] or getattr(tcp, "new_socket", None)
    if new_socket is None or _params(new_socket) != _NEW_SOCKET_PARAMS:
        raise _incompatible("TCPTransport.new_socket(self, op, *args, **kw) is missing")
    if "new_socket(self.socket.accept)" not in inspect.getsource(tcp._acceptNewIncoming):
        raise _incompatible("TCPTransport._acceptNewIncoming no longer accepts through "
                            "new_socket(self.socket.accept)")


def _tcp_transport() -> Any:
    try:
        from thespian.system.transport.TCPTransport import TCPTransport  # private: here only
    except ImportError as e:
        raise _incompatible(f"no thespian.system.transport.TCPTransport ({e})") from e
    return TCPTransport


#: the last refusals of ``guard_accept`` in this process (tests, diagnostics)
_refused: list[str] = []


def _ended_connection() -> socket.socket:
    """A connected loopback TCP socket whose peer has already closed (reads give EOF)."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = socket.create_connection(ls.getsockname(), timeout=2)
        a, _ = ls.accept()
        c.close()
        return a
    finally:
        ls.close()


def guard_accept(check: Callable[[Any], str | None] | None) -> None:
    """Run ``check(sock)`` on every connection a thespian TCP transport of this process (and
    of its future forks) accepts, before anything is read from it; a returned reason closes
    the socket and the accept fails (``PermissionError``, logged by thespian). None removes
    the check."""
    tcp = _tcp_transport()
    if _state["accept_orig"] is None:
        _state["accept_orig"] = tcp.new_socket
    orig: Callable[..., Any] = _state["accept_orig"]
    _state["accept_check"] = check

    def new_socket(self: Any, op: Any, *args: Any, **kw: Any) -> Any:
        result = orig(self, op, *args, **kw)
        chk = _state["accept_check"]
        if chk is not None and getattr(op, "__name__", "") == "accept":
            sock, peer = result
            reason = chk(sock)
            if reason is not None:
                sock.close()  # nothing was read from it
                _refused.append(reason)
                del _refused[:-20]
                # a failed accept would make thespian 4.0.1 queue an UpdateWork envelope that
                # its admin cannot handle (it crashes); hand it an already-ended connection
                # instead, which it reads as a peer that hung up
                return _ended_connection(), peer
        return result

    new_socket.__wrapped__ = orig  # type: ignore[attr-defined]
    tcp.new_socket = new_socket


def add_local_addr(host: str) -> None:
    """Tell thespian's transport that ``host`` is an address of this machine."""
    _ipbase().thisSystem.add_local_addr(host)


def bind_external_to(host: str) -> None:
    """Make every new "external" thespian IP address of this process (and of its future forks)
    bind ``host`` instead of all interfaces. Idempotent; a second call re-targets the wrapper.
    ``host`` "" leaves thespian's choice alone (the wrapper stays installed)."""
    cls = _ipbase().IPActorAddress
    if _state["orig"] is None:
        _state["orig"] = cls.__init__
    orig: Callable[..., None] = _state["orig"]
    _state["host"] = host

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig(self, *args, **kwargs)
        bind = _state["host"]
        if bind and self.bindname and self.bindname[0] in ("", "0.0.0.0"):
            self.bindname = (bind,) + tuple(self.bindname[1:])

    __init__.__wrapped__ = orig  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]


def unbind() -> None:
    """Restore thespian's own constructor (undo ``bind_external_to``)."""
    if _state["orig"] is not None:
        _ipbase().IPActorAddress.__init__ = _state["orig"]  # type: ignore[method-assign]
        _state["orig"] = None
    _state["host"] = None


def bound_host() -> str | None:
    """The host ``bind_external_to`` installed, or None when thespian's constructor is bare."""
    return _state["host"] if _state["orig"] is not None else None


def external_binding() -> tuple[str, str]:
    """(bind host, advertised host) of a new external TCP address, as an actor's socket would
    get it now (thespian unpatched: ``""`` for the bind host, i.e. all interfaces)."""
    addr = _ipbase().TCPv4ActorAddress(None, 0, external=True)
    return str(addr.bindname[0]), str(addr.sockname[0])


def address_port(addr: ActorAddress) -> int | None:
    """The TCP port of a thespian actor address (None when it has none, e.g. a local alias of a
    child that has not started yet)."""
    return getattr(addr.addressDetails, "sockname", (None, None))[1]


def base_ipaddr(host: str | None) -> None:
    """Set (or with None, clear) the address thespian's transport advertises for this host."""
    if host is None:
        os.environ.pop(BASE_IPADDR_ENV, None)
    else:
        os.environ[BASE_IPADDR_ENV] = host
