"""Child specs and supervisor settings of the supervision tree (no actors)."""

from __future__ import annotations

import pytest

from models.config import SupervisionConfig
from supervision.tree import (
    ACTOR_CLASSES_ENV,
    ChildSpec,
    SpecError,
    SupervisorSettings,
    build_child_specs,
    role_classes,
    validate_specs,
)

ORDER = ["gateway", "order", "risk", "strategy"]


def test_default_specs_start_in_dependency_order() -> None:
    specs = build_child_specs(classes={})
    assert [s.role for s in specs] == ORDER
    assert specs[0].actor_class_path == "actors.gateway.GatewayActor"
    assert [s.role for s in specs if s.acks_stop] == ["order"]
    validate_specs(specs)


def test_validate_specs_rejects_bad_lists() -> None:
    gw = ChildSpec(role="gateway", actor_class_path="a.B")
    with pytest.raises(SpecError, match="duplicate"):
        validate_specs([gw, gw])
    with pytest.raises(SpecError, match="does not start before"):
        validate_specs([ChildSpec(role="order", actor_class_path="a.B", depends_on=("gateway",)),
                        gw])
    with pytest.raises(SpecError, match="restart type"):
        validate_specs([ChildSpec(role="x", actor_class_path="a.B", restart="always")])
    with pytest.raises(SpecError, match="module.Class"):
        validate_specs([ChildSpec(role="x", actor_class_path="Nope")])


def test_role_classes_are_pluggable() -> None:
    env = {ACTOR_CLASSES_ENV: '{"gateway": "x.Gw"}'}
    got = role_classes({"risk": "y.Risk"}, environ=env)
    assert got["gateway"] == "x.Gw" and got["risk"] == "y.Risk"
    assert got["order"] == "actors.order.OrderActor"


def test_settings_from_config() -> None:
    s = SupervisorSettings.from_config(SupervisionConfig(max_restarts=2), "DEBUG",
                                       heartbeat_interval_s=0.1)
    assert s.max_restarts == 2 and s.log_level == "DEBUG" and s.heartbeat_interval_s == 0.1
