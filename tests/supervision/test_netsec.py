"""No port of the bot accepts connections from another host: every listener is on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from treeutil import running_tree

from supervision import netsec, thespian_compat


def test_unpatched_thespian_binds_all_interfaces_and_the_patch_binds_loopback() -> None:
    netsec.uninstall()
    try:
        assert thespian_compat.external_binding()[0] == ""  # thespian default
        netsec.install()
        bind, advertised = thespian_compat.external_binding()
        assert bind == "127.0.0.1"
        assert advertised == "127.0.0.1"  # advertised address is loopback too
        assert os.environ["THESPIAN_BASE_IPADDR"] == "127.0.0.1"
    finally:
        netsec.install()


def test_non_loopback_bind_requires_allow_remote_and_never_a_wildcard() -> None:
    with pytest.raises(netsec.InsecureBindingRefused, match="allow_remote"):
        netsec.install("10.1.2.3")
    for wild in ("0.0.0.0", "", "::"):
        with pytest.raises(netsec.InsecureBindingRefused, match="every interface"):
            netsec.install(wild, allow_remote=True)
    assert netsec.installed_host() == "127.0.0.1"


def _proc_line(local: str, remote: str, uid: int) -> str:
    return (f"   0: {local} {remote} 01 00000000:00000000 00:00000000 00000000 {uid:5d}"
            "        0 12345 1 0000000000000000 20 4 30 10 -1")


def test_a_local_peer_of_another_uid_is_refused() -> None:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
    # the peer 127.0.0.1:40000 -> our 127.0.0.1:5000, as /proc/net/tcp prints them
    ours, theirs = "0100007F:9C40", "0100007F:1388"
    peer, local = ("127.0.0.1", 40000), ("127.0.0.1", 5000)
    assert netsec.socket_owner("\n".join([head, _proc_line(ours, theirs, 1000)]),
                               peer, local) == 1000
    assert netsec.peer_refusal(peer, local, 1000, False,
                               "\n".join([head, _proc_line(ours, theirs, 1000)])) is None
    why = netsec.peer_refusal(peer, local, 0, False,
                              "\n".join([head, _proc_line(ours, theirs, 1000)]))
    assert why is not None and "uid 1000" in why
    # our own accepted end (local/remote the other way round) must not be taken for the peer
    why = netsec.peer_refusal(peer, local, 1000, False,
                              "\n".join([head, _proc_line(theirs, ours, 1000)]))
    assert why is not None and "cannot be verified" in why
    # a peer from another host: only with allow_remote
    far = ("10.0.0.9", 40000)
    assert netsec.peer_refusal(far, ("10.0.0.5", 5000), 0, True, head) is None
    assert "allow_remote" in (netsec.peer_refusal(far, ("10.0.0.5", 5000), 0, False, head) or "")


def test_the_real_proc_table_names_our_uid() -> None:
    import socket

    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        with socket.create_connection(ls.getsockname()) as c:
            a, _ = ls.accept()
            with a:
                assert netsec.peer_refusal(a.getpeername(), a.getsockname(), os.getuid(),
                                           False) is None
                assert "uid" in (netsec.peer_refusal(a.getpeername(), a.getsockname(),
                                                     os.getuid() + 1, False) or "")
            assert c


def test_proc_parser_sees_a_known_listener() -> None:
    import socket

    with socket.socket() as s, socket.socket(socket.AF_INET6) as s6:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        s6.bind(("::1", 0))
        s6.listen(1)
        port6 = s6.getsockname()[1]
        socks = netsec.listening_sockets(os.getpid())
        assert ("127.0.0.1", port) in socks
        assert ("::1", port6) in socks
        assert netsec.pid_listening_on(port, [os.getpid()]) == os.getpid()
        assert netsec.port_answers(port)
    assert ("127.0.0.1", port) not in netsec.listening_sockets(os.getpid())  # closed


def test_process_helpers_see_children_sessions_and_no_zombies() -> None:
    import subprocess
    import time

    me = os.getpid()
    st = netsec.proc_stat(me)
    assert st is not None
    assert (st["ppid"], st["pgid"], st["sid"]) == (os.getppid(), os.getpgid(0), os.getsid(0))
    assert st["rss_kb"] > 1000
    assert netsec.proc_stat(0) is None and netsec.proc_stat(-1) is None
    live = subprocess.Popen(["sleep", "30"])
    dead = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while netsec.proc_stat(dead.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert netsec.proc_stat(dead.pid) is None  # a zombie (not reaped yet) counts as gone
        kids = netsec.children_of(me)  # (earlier tests may have left children of their own)
        assert live.pid in kids and dead.pid not in kids
        assert all((netsec.proc_stat(k) or {"ppid": me})["ppid"] == me for k in kids)
        assert {me, live.pid} <= set(netsec.session_pids(os.getsid(0)))
        assert dead.pid not in netsec.session_pids(os.getsid(0))
        assert netsec.listening_sockets(live.pid) == []
    finally:
        live.kill()
        live.wait()
        dead.wait()
    assert netsec.proc_stat(live.pid) is None
    assert netsec.children_of(live.pid) == [] and netsec.listening_sockets(live.pid) == []


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
