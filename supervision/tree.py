"""Declarative supervision trees: child specs and the supervision-internal messages.

A symbol tree is a list of ``ChildSpec`` in start order (gateway → order → risk → strategy by
default); the ``SymbolSupervisor`` starts them one at a time, waiting for each ``ActorReady``,
then sends ``Wire`` to all. Which class plays each role is a class path string, so the domain
actors plug in without this module importing them (``build_child_specs``).

The messages below travel only between the launcher and the supervisors; they are frozen msgspec
structs (picklable; class names are unique project-wide because thespian dispatches on them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from models.config import Config, SupervisionConfig
from supervision.policy import RESTART_TYPES

ROOT_GLOBAL_NAME = "gridbot-root"
ROOT_CLASS = "supervision.root_supervisor.RootSupervisor"
SYMBOL_SUPERVISOR_CLASS = "supervision.symbol_supervisor.SymbolSupervisor"

#: Default class per role (the lead's domain actors).
DEFAULT_ROLE_CLASSES: dict[str, str] = {
    "gateway": "actors.gateway.GatewayActor",
    "order": "actors.order.OrderActor",
    "risk": "actors.risk.RiskActor",
    "strategy": "actors.strategy.StrategyActor",
    "portfolio": "actors.portfolio.PortfolioActor",
}
SYMBOL_ROLES: tuple[str, ...] = ("gateway", "order", "risk", "strategy")
#: Development/test hook: JSON object ``{role: "module.Class"}`` overriding the defaults.
ACTOR_CLASSES_ENV = "GRIDBOT_ACTOR_CLASSES"


class SpecError(ValueError):
    """A list of child specs is inconsistent."""


class ChildSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How a supervisor runs one child.

    ``restart``: permanent (always restarted), transient (restarted after an abnormal exit; an
    exit the supervisor did not request always counts as abnormal) or temporary (never).
    ``shutdown_timeout_s``: grace after ``ActorExitRequest`` before SIGKILL.
    ``depends_on``: roles this child needs; they must start earlier (rest_for_one restarts
    every child started after a failed one). ``acks_stop``: the child answers ``StopTrading``
    with ``TradingStopped`` (the order actor cancels/flattens) and the supervisor waits for it.
    """

    role: str
    actor_class_path: str
    restart: str = "permanent"
    shutdown_timeout_s: float = 5.0
    depends_on: tuple[str, ...] = ()
    acks_stop: bool = False


def validate_specs(specs: Sequence[ChildSpec]) -> None:
    """Raise ``SpecError`` unless roles are unique, restart types known, class paths dotted and
    every dependency starts before its dependent."""
    seen: list[str] = []
    for s in specs:
        if s.role in seen:
            raise SpecError(f"duplicate role {s.role!r}")
        if s.restart not in RESTART_TYPES:
            raise SpecError(f"{s.role}: unknown restart type {s.restart!r}")
        if "." not in s.actor_class_path:
            raise SpecError(f"{s.role}: class path {s.actor_class_path!r} is not 'module.Class'")
        if s.shutdown_timeout_s <= 0:
            raise SpecError(f"{s.role}: shutdown_timeout_s must be > 0")
        for dep in s.depends_on:
            if dep not in seen:
                raise SpecError(f"{s.role}: depends on {dep!r}, which does not start before it")
        seen.append(s.role)


def role_classes(overrides: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Class path per role: defaults, then ``$GRIDBOT_ACTOR_CLASSES``, then ``overrides``."""
    out = dict(DEFAULT_ROLE_CLASSES)
    env = os.environ if environ is None else environ
    raw = env.get(ACTOR_CLASSES_ENV, "")
    if raw:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise SpecError(f"${ACTOR_CLASSES_ENV} must be a JSON object")
        out.update({str(k): str(v) for k, v in data.items()})
    if overrides:
        out.update(overrides)
    return out


def build_child_specs(cfg: Config | None = None, classes: Mapping[str, str] | None = None,
                      shutdown_timeout_s: float | None = None) -> list[ChildSpec]:
    """The symbol tree: gateway → order → risk → strategy (rest_for_one in this order)."""
    cls = role_classes(classes)
    t = shutdown_timeout_s
    if t is None:
        t = min(10.0, cfg.supervision.shutdown_timeout_s) if cfg is not None else 5.0
    specs = [
        ChildSpec(role="gateway", actor_class_path=cls["gateway"], shutdown_timeout_s=t),
        ChildSpec(role="order", actor_class_path=cls["order"], shutdown_timeout_s=t,
                  depends_on=("gateway",), acks_stop=True),
        ChildSpec(role="risk", actor_class_path=cls["risk"], shutdown_timeout_s=t,
                  depends_on=("gateway", "order")),
        ChildSpec(role="strategy", actor_class_path=cls["strategy"], shutdown_timeout_s=t,
                  depends_on=("gateway", "order", "risk")),
    ]
    validate_specs(specs)
    return specs


def build_portfolio_spec(classes: Mapping[str, str] | None = None) -> ChildSpec:
    """The root's portfolio child."""
    return ChildSpec(role="portfolio", actor_class_path=role_classes(classes)["portfolio"])


def build_tree_specs(cfg: Config, classes: Mapping[str, str] | None = None
                     ) -> dict[str, list[ChildSpec]]:
    """One child-spec list per configured symbol (identical by default)."""
    specs = build_child_specs(cfg, classes)
    return {sym: list(specs) for sym in cfg.portfolio.symbols}


# ----------------------------------------------------------------------------------------------
# Supervision-internal messages
# ----------------------------------------------------------------------------------------------
class SupervisorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The timing knobs of ``SupervisionConfig`` a supervisor needs (plus a start timeout)."""

    max_restarts: int = 5
    restart_window_s: float = 60.0
    restart_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 10.0
    start_timeout_s: float = 30.0
    status_interval_s: float = 60.0
    shutdown_timeout_s: float = 30.0
    give_up_mode: str = "flatten"
    log_level: str = "INFO"
    multiprocess: bool = True

    @classmethod
    def from_config(cls, s: SupervisionConfig, log_level: str = "INFO",
                    **overrides: Any) -> SupervisorSettings:
        """Settings from the config's ``supervision`` section."""
        base: dict[str, Any] = {
            "max_restarts": s.max_restarts, "restart_window_s": s.restart_window_s,
            "restart_backoff_s": s.restart_backoff_s,
            "heartbeat_interval_s": s.heartbeat_interval_s,
            "heartbeat_timeout_s": s.heartbeat_timeout_s,
            "start_timeout_s": max(30.0, s.heartbeat_timeout_s),
            "status_interval_s": s.status_interval_s,
            "shutdown_timeout_s": s.shutdown_timeout_s, "log_level": log_level,
            "give_up_mode": s.give_up_mode,
        }
        base.update(overrides)
        return cls(**base)


class StartSymbolTree(msgspec.Struct, frozen=True, kw_only=True):
    """Root → SymbolSupervisor: start this symbol's children (answered by ``ActorReady``)."""

    symbol: str
    specs: list[ChildSpec]
    config_json: bytes
    state_dir: str
    settings: SupervisorSettings
    peers: dict[str, bytes] = {}   # extra peers for Wire (portfolio, supervisor of the root…)


class StartRootTree(msgspec.Struct, frozen=True, kw_only=True):
    """Launcher → RootSupervisor: start the portfolio and one tree per symbol."""

    trees: dict[str, list[ChildSpec]]
    portfolio: ChildSpec | None
    config_json: bytes
    state_dir: str
    settings: SupervisorSettings
    symbol_supervisor_class: str = SYMBOL_SUPERVISOR_CLASS
    #: The launcher's pid: when it disappears (kill -9), the root takes the actor system down
    #: so nothing trades unattended and a restart can recover (0: not watched).
    launcher_pid: int = 0


class UpdatePeers(msgspec.Struct, frozen=True, kw_only=True):
    """Root → SymbolSupervisor: a shared peer (the portfolio) moved; re-wire the children."""

    peers: dict[str, bytes]


class TreeWired(msgspec.Struct, frozen=True, kw_only=True):
    """SymbolSupervisor → root after every (re)wiring: peer addresses and process ids."""

    symbol: str
    peers: dict[str, bytes]
    pids: dict[str, int]


class TreePing(msgspec.Struct, frozen=True, kw_only=True):
    """Launcher → root liveness probe; answered with ``TreePong``."""

    seq: int = 0


class TreePong(msgspec.Struct, frozen=True, kw_only=True):
    """Answer to ``TreePing``."""

    seq: int
    pid: int
    symbols: dict[str, str] = {}
