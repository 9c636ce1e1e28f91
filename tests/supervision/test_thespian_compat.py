"""The thespian adapter: the private names it relies on are there, with the signatures it
expects, on exactly the thespian release it was written for (anything else fails here, loudly)."""

from __future__ import annotations

import configparser
import inspect
from pathlib import Path

import pytest

from supervision import netsec, thespian_compat

ROOT = Path(__file__).resolve().parents[2]


def test_installed_thespian_is_the_release_the_adapter_was_written_for() -> None:
    installed = thespian_compat.installed_version()
    assert installed == thespian_compat.WRITTEN_FOR, (
        f"thespian {installed} is installed; supervision/thespian_compat.py was written for "
        f"{thespian_compat.WRITTEN_FOR}: re-verify every private name it uses, then bump "
        "WRITTEN_FOR and the pin in setup.cfg together")
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = cfg["options"]["install_requires"].split()
    assert f"thespian=={thespian_compat.WRITTEN_FOR}" in requires


def test_private_names_have_the_signatures_the_adapter_expects() -> None:
    thespian_compat.check()
    from thespian.system.transport import IPBase

    # the wrapped constructor is checked through __wrapped__ while the patch is installed
    init = inspect.unwrap(IPBase.IPActorAddress.__init__)
    assert tuple(inspect.signature(init).parameters) == (
        "self", "af", "socktype", "proto", "baseaddr", "port", "external")
    assert tuple(inspect.signature(IPBase.TCPv4ActorAddress.__init__).parameters) == (
        "self", "initialIPAddr", "initialIPPort", "external")
    assert tuple(inspect.signature(IPBase.thisSystem.add_local_addr).parameters) == ("newaddr",)


def test_a_missing_private_name_names_both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    from thespian.system.transport import IPBase

    monkeypatch.delattr(IPBase, "TCPv4ActorAddress")
    with pytest.raises(thespian_compat.ThespianCompatError) as e:
        thespian_compat.check()
    text = str(e.value)
    assert f"thespian {thespian_compat.installed_version()} is installed" in text
    assert f"written for thespian {thespian_compat.WRITTEN_FOR}" in text
    assert "TCPv4ActorAddress" in text
    with pytest.raises(thespian_compat.ThespianCompatError):
        netsec.install()  # refuses to patch a thespian it does not know


def test_a_changed_signature_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from thespian.system.transport import IPBase

    netsec.uninstall()
    try:
        def changed(self: object, af: int, socktype: int, proto: int, baseaddr: str,
                    port: int, external: bool = False, bind_any: bool = True) -> None:
            """A constructor with one parameter more than 4.0.1's."""

        monkeypatch.setattr(IPBase.IPActorAddress, "__init__", changed)
        with pytest.raises(thespian_compat.ThespianCompatError, match="IPActorAddress.__init__"):
            thespian_compat.check()
    finally:
        monkeypatch.undo()
        netsec.install()


def test_bind_wrapper_retargets_and_unbinds() -> None:
    netsec.uninstall()
    try:
        assert thespian_compat.bound_host() is None
        thespian_compat.base_ipaddr("127.0.0.1")
        thespian_compat.bind_external_to("127.0.0.2")
        assert thespian_compat.bound_host() == "127.0.0.2"
        assert thespian_compat.external_binding()[0] == "127.0.0.2"
        thespian_compat.bind_external_to("127.0.0.1")
        assert thespian_compat.external_binding() == ("127.0.0.1", "127.0.0.1")
        thespian_compat.unbind()
        assert thespian_compat.bound_host() is None
        assert thespian_compat.external_binding()[0] == ""
    finally:
        netsec.install()


def test_address_port_reads_a_tcp_actor_address() -> None:
    from thespian.actors import ActorAddress
    from thespian.system.transport import IPBase

    assert thespian_compat.address_port(ActorAddress(IPBase.TCPv4ActorAddress(
        "127.0.0.1", 45678))) == 45678
    assert thespian_compat.address_port(ActorAddress("local-alias")) is None
