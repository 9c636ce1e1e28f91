"""No port of the bot accepts connections from another host: every listener is on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from treeutil import running_tree

from supervision import netsec


def test_unpatched_thespian_binds_all_interfaces_and_the_patch_binds_loopback() -> None:
    from thespian.system.transport.IPBase import TCPv4ActorAddress

    netsec.uninstall()
    try:
        assert TCPv4ActorAddress(None, 0, external=True).bindname[0] == ""  # thespian default
        netsec.install()
        addr = TCPv4ActorAddress(None, 0, external=True)
        assert addr.bindname[0] == "127.0.0.1"
        assert addr.sockname[0] == "127.0.0.1"  # advertised address is loopback too
        assert os.environ["THESPIAN_BASE_IPADDR"] == "127.0.0.1"
    finally:
        netsec.install()


def test_non_loopback_bind_requires_allow_remote() -> None:
    with pytest.raises(netsec.InsecureBindingRefused):
        netsec.install("0.0.0.0")
    assert netsec.installed_host() == "127.0.0.1"


def test_proc_parser_sees_a_known_listener() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert ("127.0.0.1", port) in netsec.listening_sockets(os.getpid())
        assert netsec.pid_listening_on(port, [os.getpid()]) == os.getpid()
        assert netsec.port_answers(port)


def test_every_listening_socket_of_every_bot_process_is_loopback(tmp_path: Path) -> None:
    with running_tree(tmp_path, symbols=("BTCUSDT",)) as t:
        pids = netsec.session_pids(t.sid)
        assert t.root_pid in pids and len(pids) >= 7
        listeners = {pid: netsec.listening_sockets(pid) for pid in pids + [os.getpid()]}
        # every actor process listens (so the check is not vacuous) ...
        assert all(listeners[pid] for pid in pids)
        # ... and only on loopback
        bad = {pid: [a for a in socks if a[0] != "127.0.0.1"] for pid, socks in listeners.items()}
        assert not any(bad.values()), bad
