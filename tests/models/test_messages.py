"""Every message type round-trips through msgspec JSON, msgpack and pickle unchanged."""

from __future__ import annotations

import pickle
import typing
from decimal import Decimal
from enum import Enum

import msgspec
import pytest

from models import messages as m


def _sample(tp: object, name: str) -> object:
    """A non-default sample value for a field type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        non_none = [a for a in args if a is not type(None)]
        return _sample(non_none[0], name)
    if origin is list:
        return [_sample(args[0], name)]
    if origin is dict:
        return {"k": _sample(args[1], name)}
    if tp is typing.Any:
        return {"nested": [1, "x", 2.5]}
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return list(tp)[-1]
        if tp is bool:
            return True
        if tp is int:
            return 12345
        if tp is float:
            return 0.125
        if tp is str:
            return f"{name}-value"
        if tp is bytes:
            return b"\x00\x01pickled"
        if tp is Decimal:
            return Decimal("123.456")
        if issubclass(tp, msgspec.Struct):
            return _build(tp)
    raise AssertionError(f"no sample for {tp!r} ({name})")


def _build(cls: type[msgspec.Struct]) -> msgspec.Struct:
    hints = typing.get_type_hints(cls, vars(m))
    kwargs = {f.name: _sample(hints[f.name], f.name) for f in msgspec.structs.fields(cls)}
    return cls(**kwargs)


@pytest.mark.parametrize("cls", m.ALL_MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_round_trip(cls: type[m.Message]) -> None:
    msg = _build(cls)
    assert m.decode_json(m.encode_json(msg)) == msg
    assert m.decode_msgpack(m.encode_msgpack(msg)) == msg
    assert pickle.loads(pickle.dumps(msg)) == msg
    assert type(m.decode_json(m.encode_json(msg))) is cls


def test_messages_are_frozen_and_tagged() -> None:
    msg = m.CancelOrder(symbol="BTCUSDT", client_order_id="x")
    with pytest.raises(AttributeError):
        msg.client_order_id = "y"  # type: ignore[misc]
    assert b'"type":"CancelOrder"' in m.encode_json(msg)


def test_class_names_unique_project_wide() -> None:
    names = [c.__name__ for c in m.ALL_MESSAGE_TYPES]
    assert len(names) == len(set(names))
    declared = {
        n for n, v in vars(m).items()
        if isinstance(v, type) and issubclass(v, m.Message) and v is not m.Message
    }
    assert declared == set(names), "every Message subclass must be in AnyMessage"


def test_header_fields_present() -> None:
    header = {"msg_id", "correlation_id", "symbol", "ts_event_ns", "ts_init_ns"}
    for cls in m.ALL_MESSAGE_TYPES:
        assert header <= {f.name for f in msgspec.structs.fields(cls)}, cls


def test_decoding_type_checks() -> None:
    with pytest.raises(msgspec.ValidationError):
        m.decode_json(b'{"type":"CancelOrder","client_order_id":5}')
    with pytest.raises(msgspec.ValidationError):
        m.decode_json(b'{"type":"NoSuchMessage"}')


def test_msg_ids_unique() -> None:
    ids = {m.Heartbeat(seq=i).msg_id for i in range(1000)}
    assert len(ids) == 1000


@pytest.fixture
def default_sources() -> typing.Iterator[None]:
    """The deterministic defaults (another test may have installed the shell's sources)."""
    saved = m._new_id, m._now_ns
    m.set_sources(None, None)
    yield
    m._new_id, m._now_ns = saved


def test_default_sources_are_deterministic_and_read_no_clock(default_sources: None) -> None:
    assert [m.new_msg_id() for _ in range(3)] == ["0-1", "0-2", "0-3"]
    hb = m.Heartbeat(seq=1)
    assert hb.msg_id == "0-4" and hb.ts_init_ns == 0
    m.set_sources(None, None)  # a reset starts the sequence again
    assert m.Heartbeat(seq=2).msg_id == "0-1"


def test_installed_sources_fill_the_header_defaults(default_sources: None) -> None:
    ids = iter(["a", "b"])
    m.set_sources(lambda: next(ids), lambda: 42)
    first, second = m.Heartbeat(seq=1), m.Heartbeat(seq=2)
    assert (first.msg_id, first.ts_init_ns, second.msg_id) == ("a", 42, "b")
    explicit = m.Heartbeat(seq=3, msg_id="x", ts_init_ns=7)  # explicit values win
    assert (explicit.msg_id, explicit.ts_init_ns) == ("x", 7)
