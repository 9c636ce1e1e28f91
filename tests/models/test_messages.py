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


def test_msg_ids_differ_across_forked_processes() -> None:
    import os

    from models.messages import new_msg_id

    new_msg_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: same counter state as the parent
        os.write(w, new_msg_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 200).decode()
    parent = new_msg_id()
    assert child.split("-")[0] != parent.split("-")[0]
    assert child.split("-")[1] == "1"
