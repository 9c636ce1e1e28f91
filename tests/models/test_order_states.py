"""Order state machine: the exhaustive transition table (code and documentation agree)."""

from __future__ import annotations

import pytest

import models.order_states as osm
from models.order_states import (
    IGNORED,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    OrderState,
    Trigger,
    next_state,
)

S, T = OrderState, Trigger
FILL_TRIGGERS = {T.FILL, T.PARTIAL_FILL}


# -- the table ---------------------------------------------------------------------------------
def _doc_table() -> dict[tuple[OrderState, Trigger], str]:
    """Parse the table in the module docstring (the documentation must match the code)."""
    abbrev = {"PEND_NEW": S.PENDING_NEW, "NEW": S.NEW, "PART": S.PARTIALLY_FILLED,
              "PEND_CXL": S.PENDING_CANCEL, "PEND_MOD": S.PENDING_MODIFY, "FILLED": S.FILLED,
              "CANCELED": S.CANCELED, "EXPIRED": S.EXPIRED, "REJECTED": S.REJECTED}
    lines = osm.__doc__.splitlines()
    start = next(i for i, ln in enumerate(lines) if "trigger \\ state" in ln)
    header = lines[start].split()[3:]
    cols = [abbrev[h] for h in header]
    by_prefix = {t.value[:16]: t for t in Trigger}
    out: dict[tuple[OrderState, Trigger], str] = {}
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        name, *cells = ln.split()
        trig = by_prefix.get(name[:16]) or next(t for t in Trigger
                                                 if t.value.startswith(name.rstrip(".")))
        assert len(cells) == len(cols), ln
        for s, c in zip(cols, cells, strict=True):
            out[(s, trig)] = c
    return out


def test_every_pair_is_exactly_one_of_move_ignore_or_illegal() -> None:
    assert not set(TRANSITIONS) & IGNORED
    doc = _doc_table()
    assert len(doc) == len(OrderState) * len(Trigger)
    abbrev = {"PEND_NEW": S.PENDING_NEW, "NEW": S.NEW, "PART": S.PARTIALLY_FILLED,
              "PEND_CXL": S.PENDING_CANCEL, "PEND_MOD": S.PENDING_MODIFY, "FILLED": S.FILLED,
              "CANCELED": S.CANCELED, "EXPIRED": S.EXPIRED, "REJECTED": S.REJECTED,
              "N*": S.NEW}
    for s in OrderState:
        for t in Trigger:
            cell = doc[(s, t)]
            if cell == "X":
                with pytest.raises(IllegalTransition):
                    next_state(s, t)
            elif cell in (".", ".f"):
                assert next_state(s, t) is None, (s, t)
                assert (cell == ".f") == (t in FILL_TRIGGERS), (s, t)
            else:
                assert next_state(s, t) is abbrev[cell], (s, t)


def test_terminal_states_never_move() -> None:
    for (s, _t), _target in TRANSITIONS.items():
        assert s not in TERMINAL
