"""Generic exact state capture for ``__slots__`` objects, encoded as msgpack.

Every stateful strategy component derives from ``Stateful``. ``get_state`` walks its slots (all
classes in the MRO) and returns plain msgpack-able data; ``set_state`` writes it back into an
object built from the same parameters. Floats travel as IEEE doubles, so a restored object
behaves bit-identically. Slots named in ``_transient`` are caches: they are not captured and
``_after_restore`` rebuilds them.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()


def _slots_of(cls: type) -> list[str]:
    out: list[str] = []
    for c in reversed(cls.__mro__):
        for s in getattr(c, "__slots__", ()):
            if s not in out:
                out.append(s)
    return out


class Stateful:
    """Mixin: exact state capture/restore through ``__slots__``."""

    __slots__ = ()
    _transient: ClassVar[tuple[str, ...]] = ()

    def get_state(self) -> dict[str, Any]:
        """Plain data (msgpack-able) holding every non-transient slot."""
        skip = self._transient
        return {s: _enc(getattr(self, s)) for s in _slots_of(type(self)) if s not in skip}

    def set_state(self, st: dict[str, Any]) -> None:
        """Overwrite this object's state with ``st`` (from ``get_state``)."""
        for s, v in st.items():
            setattr(self, s, _restore_into(getattr(self, s, None), v))
        self._after_restore()

    def _after_restore(self) -> None:
        """Hook: rebuild transient caches."""


def _enc(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, Stateful):
        return {"__o": v.get_state()}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, tuple):
        return {"__t": [_enc(x) for x in v]}
    if isinstance(v, deque):
        return {"__q": [_enc(x) for x in v], "m": v.maxlen}
    if isinstance(v, Decimal):
        return {"__D": str(v)}
    if isinstance(v, dict):
        return {"__d": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if hasattr(v, "value") and isinstance(v.value, str):  # str enums
        return v.value
    raise TypeError(f"cannot snapshot {type(v).__name__}")


def _restore_into(cur: Any, v: Any) -> Any:
    """Decode ``v``, writing nested objects into the existing ``cur`` objects."""
    if isinstance(v, dict) and "__o" in v:
        if not isinstance(cur, Stateful):
            raise ValueError("snapshot holds an object where the strategy has none")
        cur.set_state(v["__o"])
        return cur
    if isinstance(v, list) and isinstance(cur, list) and len(cur) == len(v) and any(
            isinstance(x, dict) and "__o" in x for x in v):
        return [_restore_into(c, x) for c, x in zip(cur, v, strict=True)]
    return _dec(v)


def _dec(v: Any) -> Any:
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if isinstance(v, dict):
        if "__t" in v:
            return tuple(_dec(x) for x in v["__t"])
        if "__q" in v:
            return deque((_dec(x) for x in v["__q"]), maxlen=v["m"])
        if "__D" in v:
            return Decimal(v["__D"])
        if "__d" in v:
            return {_dec(k): _dec(x) for k, x in v["__d"]}
        raise ValueError("unexpected nested object in snapshot")
    return v


def dumps(obj: Stateful) -> bytes:
    """msgpack bytes of ``obj.get_state()``."""
    return _ENC.encode(obj.get_state())


def loads_into(obj: Stateful, blob: bytes) -> None:
    """Restore ``obj`` from ``dumps`` output."""
    obj.set_state(_DEC.decode(blob))
