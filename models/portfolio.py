"""Portfolio leverage cap: a reservation book across all symbols. Pure and single-threaded:
the portfolio actor owns one ``ReservationBook`` and handles requests one at a time, which is
what makes concurrent requests from several symbols safe.

Exposure model (quote notionals, ``Decimal``), per symbol:

* ``P`` = signed position notional; ``B`` / ``S`` = remaining notional of resting
  non-reduce-only buy / sell orders holding a reservation;
* worst case = ``max(|P + B|, |P - S|)``: every resting buy fills, or every resting sell does;
* gross = sum of the symbols' worst cases; worst-case leverage = gross / equity.

A request is granted when it does not raise its symbol's worst case, or when, after it,

1. gross <= equity x leverage_cap                       (global cap: LEVERAGE_CAP)
2. worst case <= equity x weight x leverage_cap         (symbol budget: SYMBOL_BUDGET)
3. resting notional of that side <= equity x weight x leverage_cap x utilization
   (utilization = the fraction of the symbol's margin budget resting orders may tie up;
   with 6x, 0.45 and 0.3 that is 0.81 x equity of BTC buys, and as much of sells: UTILIZATION)

``leverage_cap`` is the configured cap or the brake-reduced one (``set_cap``). Reduce-only
requests are always granted and not counted (they can only shrink a position). Fills move
reserved notional into the position, which never raises the worst case. Every answer is
remembered by ``reservation_id``: a re-delivered request gets the same answer and changes
nothing. If the portfolio does not answer, the risk actor fails closed
(``models.risk.fail_closed``).

Trading state (commanded by the operator/brake; ``REDUCING`` is also implied while the
worst-case exposure is above the cap, e.g. after an equity drop)::

    command \\ state   ACTIVE     REDUCING   HALTED
    HALT              HALTED     HALTED     HALTED
    REDUCE            REDUCING   REDUCING   X (leave HALTED with RESUME)
    RESUME            ACTIVE     ACTIVE     ACTIVE

ACTIVE grants new exposure; REDUCING grants only requests that do not raise a worst case;
HALTED grants only reduce-only requests.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from enum import Enum
from typing import Union

import msgspec

from models.enums import Side, TradingState

ZERO = Decimal(0)
#: Closed reservations whose answers are remembered for idempotency.
MAX_REMEMBERED = 20_000


class TradingCommand(str, Enum):
    """Operator / brake commands on the portfolio trading state."""

    HALT = "HALT"
    REDUCE = "REDUCE"
    RESUME = "RESUME"


_A, _R, _H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
TRADING_TRANSITIONS: dict[tuple[TradingState, TradingCommand], TradingState] = {
    (_A, TradingCommand.HALT): _H, (_R, TradingCommand.HALT): _H, (_H, TradingCommand.HALT): _H,
    (_A, TradingCommand.REDUCE): _R, (_R, TradingCommand.REDUCE): _R,
    (_A, TradingCommand.RESUME): _A, (_R, TradingCommand.RESUME): _A,
    (_H, TradingCommand.RESUME): _A,
}


class IllegalTradingTransition(Exception):
    """A command not allowed in the current trading state."""


class Grant(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A granted reservation."""

    reservation_id: str
    symbol: str
    side: Side
    notional: Decimal
    reduce_only: bool = False


class Denial(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A refused reservation; ``reason`` is a code (LEVERAGE_CAP, SYMBOL_BUDGET, ...)."""

    reservation_id: str
    symbol: str
    reason: str
    detail: str = ""


Answer = Union[Grant, Denial]  # noqa: UP007 - msgspec needs a runtime Union


class Reservation(msgspec.Struct, kw_only=True):
    """An open reservation (a resting order's claim on exposure)."""

    reservation_id: str
    symbol: str
    side: Side
    remaining: Decimal
    reduce_only: bool = False
    filled: Decimal = ZERO


class StateChange(msgspec.Struct, frozen=True, kw_only=True):
    """The effective trading state changed (log / broadcast TradingStateChanged)."""

    state: TradingState
    previous: TradingState
    reason: str


class BookState(msgspec.Struct, kw_only=True):
    """Persistent form of a ``ReservationBook``."""

    leverage_cap: Decimal
    base_cap: Decimal
    weights: dict[str, Decimal]
    utilization: Decimal
    equity: Decimal
    positions: dict[str, Decimal]
    open: list[Reservation]
    answers: list[Answer]
    commanded: TradingState
    reported: TradingState
    reason: str = ""


def _dec(x: float | Decimal | str) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


class ReservationBook:
    """Global leverage-cap enforcement by reservations (see the module docstring)."""

    def __init__(self, leverage_cap: float | Decimal, weights: dict[str, float],
                 utilization: float | Decimal, equity: Decimal = ZERO) -> None:
        self.base_cap = _dec(leverage_cap)
        self.leverage_cap = self.base_cap
        self.weights = {s: _dec(w) for s, w in weights.items()}
        self.utilization = _dec(utilization)
        self.equity = equity
        self.positions: dict[str, Decimal] = {s: ZERO for s in self.weights}
        self._open: dict[str, Reservation] = {}
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._commanded = TradingState.ACTIVE
        self._reported = TradingState.ACTIVE
        self._reason = ""
        #: resting notional by (symbol, side), rebuilt lazily after any reservation change;
        #: gross worst-case exposure, recomputed after any reservation or position change
        self._rest: dict[tuple[str, Side], Decimal] | None = None
        self._gross: Decimal | None = None
        #: sum of |position notional|, recomputed after any position change
        self._pexp: Decimal | None = None

    # -- exposure -----------------------------------------------------------------------------
    def resting(self, symbol: str, side: Side) -> Decimal:
        """Reserved, unfilled notional of non-reduce-only orders on one side."""
        c = self._rest
        if c is None:  # exact Decimal sums, so caching them changes nothing
            c = {}
            for r in self._open.values():
                if not r.reduce_only:
                    k = (r.symbol, r.side)
                    c[k] = c.get(k, ZERO) + r.remaining
            self._rest = c
        return c.get((symbol, side), ZERO)

    def worst_case(self, symbol: str, extra_buy: Decimal = ZERO,
                   extra_sell: Decimal = ZERO) -> Decimal:
        """max(|P + B|, |P - S|) of one symbol."""
        p = self.positions.get(symbol, ZERO)
        b = self.resting(symbol, Side.BUY) + extra_buy
        s = self.resting(symbol, Side.SELL) + extra_sell
        return max(abs(p + b), abs(p - s))

    def gross_exposure(self) -> Decimal:
        """Sum of the symbols' worst-case exposures."""
        g = self._gross
        if g is None:
            g = self._gross = sum((self.worst_case(s) for s in self.positions), ZERO)
        return g

    def position_exposure(self) -> Decimal:
        """Sum of |position notional|."""
        x = self._pexp
        if x is None:
            x = self._pexp = sum((abs(p) for p in self.positions.values()), ZERO)
        return x

    def leverage(self) -> float:
        """Position leverage: sum |P| / equity (inf with no equity and a position)."""
        return self._ratio(self.position_exposure())

    def worst_case_leverage(self) -> float:
        """Worst-case leverage: gross / equity."""
        return self._ratio(self.gross_exposure())

    def _ratio(self, x: Decimal) -> float:
        if self.equity > ZERO:
            return float(x / self.equity)
        return 0.0 if x == ZERO else float("inf")

    def cap_notional(self) -> Decimal:
        """equity x leverage cap."""
        return max(self.equity, ZERO) * self.leverage_cap

    def symbol_budget(self, symbol: str) -> Decimal:
        """equity x weight x leverage cap."""
        return self.cap_notional() * self.weights.get(symbol, ZERO)

    def resting_budget(self, symbol: str) -> Decimal:
        """equity x weight x leverage cap x utilization (per side)."""
        return self.symbol_budget(symbol) * self.utilization

    def over_cap(self) -> bool:
        """Worst-case exposure above the cap (equity dropped, cap cut, marks moved)."""
        return self.gross_exposure() > self.cap_notional()

    # -- trading state --------------------------------------------------------------------------
    @property
    def trading_state(self) -> TradingState:
        """Effective state: the commanded one, or REDUCING while over the cap."""
        if self._commanded is TradingState.ACTIVE and self.over_cap():
            return TradingState.REDUCING
        return self._commanded

    def command(self, cmd: TradingCommand, reason: str = "") -> StateChange | None:
        """Apply an operator/brake command; returns the change (None if none)."""
        try:
            self._commanded = TRADING_TRANSITIONS[(self._commanded, cmd)]
        except KeyError:
            raise IllegalTradingTransition(
                f"{cmd.value} is illegal in {self._commanded.value}") from None
        self._reason = reason or cmd.value.lower()
        return self.poll_state_change()

    def poll_state_change(self) -> StateChange | None:
        """Call after each update: the effective state change since the last call, if any."""
        now = self.trading_state
        if now is self._reported:
            return None
        prev, self._reported = self._reported, now
        reason = self._reason if now is self._commanded else "worst-case exposure above cap"
        return StateChange(state=now, previous=prev, reason=reason)

    # -- updates --------------------------------------------------------------------------------
    def set_equity(self, equity: Decimal) -> None:
        """New portfolio equity."""
        self.equity = equity

    def set_cap(self, leverage_cap: float | Decimal) -> None:
        """Brake-reduced cap (never above the configured one)."""
        self.leverage_cap = min(self.base_cap, _dec(leverage_cap))

    def update_positions(self, symbol: str, position_notional: Decimal) -> None:
        """The symbol's signed position notional at the current mark."""
        self._known(symbol)
        self.positions[symbol] = position_notional
        self._gross = self._pexp = None

    def _known(self, symbol: str) -> None:
        if symbol not in self.weights:
            raise KeyError(f"unknown symbol {symbol!r}")

    # -- reservations -----------------------------------------------------------------------------
    def reserve(self, reservation_id: str, symbol: str, side: Side, notional: Decimal,
                reduce_only: bool = False) -> Answer:
        """Grant or deny exposure for one order (idempotent by ``reservation_id``)."""
        if reservation_id in self._answers:
            return self._answers[reservation_id]
        ans = self._decide(reservation_id, symbol, side, notional, reduce_only)
        if isinstance(ans, Grant):
            self._open[reservation_id] = Reservation(reservation_id=reservation_id,
                                                     symbol=symbol, side=side,
                                                     remaining=notional,
                                                     reduce_only=reduce_only)
            self._rest = self._gross = None
        self._remember(reservation_id, ans)
        return ans

    def _decide(self, rid: str, symbol: str, side: Side, notional: Decimal,
                reduce_only: bool) -> Answer:
        def deny(reason: str, detail: str = "") -> Denial:
            return Denial(reservation_id=rid, symbol=symbol, reason=reason, detail=detail)

        if symbol not in self.weights:
            return deny("UNKNOWN_SYMBOL")
        if not notional > ZERO:
            return deny("BAD_NOTIONAL", f"notional {notional}")
        grant = Grant(reservation_id=rid, symbol=symbol, side=side, notional=notional,
                      reduce_only=reduce_only)
        if reduce_only:
            return grant
        if self._commanded is TradingState.HALTED:
            return deny("HALTED", self._reason)
        buy = side is Side.BUY
        wc = self.worst_case(symbol)
        wc_after = self.worst_case(symbol, notional if buy else ZERO, ZERO if buy else notional)
        if wc_after <= wc:
            return grant
        if self.trading_state is TradingState.REDUCING:
            return deny("REDUCING", "only exposure-reducing orders")
        if self.equity <= ZERO:
            return deny("NO_EQUITY")
        gross_after = self.gross_exposure() - wc + wc_after
        if gross_after > self.cap_notional():
            return deny("LEVERAGE_CAP", f"gross {gross_after} > {self.cap_notional()}")
        if wc_after > self.symbol_budget(symbol):
            return deny("SYMBOL_BUDGET", f"{wc_after} > {self.symbol_budget(symbol)}")
        resting_after = self.resting(symbol, side) + notional
        if resting_after > self.resting_budget(symbol):
            return deny("UTILIZATION", f"{resting_after} > {self.resting_budget(symbol)}")
        return grant

    def headroom(self, symbol: str, side: Side) -> Decimal:
        """Largest notional a new ``side`` order of ``symbol`` could reserve right now (for
        the strategy's ``RiskInputs.max_long/short_notional``)."""
        self._known(symbol)
        if self._commanded is TradingState.HALTED:
            return ZERO
        p = self.positions[symbol]
        b, s = self.resting(symbol, Side.BUY), self.resting(symbol, Side.SELL)
        wc = max(abs(p + b), abs(p - s))
        x = p + b if side is Side.BUY else s - p
        free = wc - x  # what can be added without raising the worst case
        if self.trading_state is TradingState.REDUCING or self.equity <= ZERO:
            return max(ZERO, free)
        limit = min(self.cap_notional() - self.gross_exposure() + wc, self.symbol_budget(symbol))
        rest = self.resting_budget(symbol) - (b if side is Side.BUY else s)
        hi, lo = min(limit - x, rest), max(ZERO, -limit - x)
        return max(ZERO, free, hi) if hi >= lo else max(ZERO, free)

    def on_fill(self, reservation_id: str, filled_notional: Decimal) -> None:
        """A fill of a reserved order: the reserved notional becomes position notional."""
        r = self._open.get(reservation_id)
        if r is None or filled_notional <= ZERO:
            return
        used = min(filled_notional, r.remaining)
        r.remaining -= used
        self._rest = self._gross = self._pexp = None
        r.filled += filled_notional
        self.positions[r.symbol] = self.positions[r.symbol] + r.side.sign * filled_notional
        if r.remaining == ZERO:
            del self._open[reservation_id]

    def release(self, reservation_id: str) -> bool:
        """The order ended: return its unfilled notional. False if nothing was open."""
        if self._open.pop(reservation_id, None) is None:
            return False
        self._rest = self._gross = None
        return True

    def reservation(self, reservation_id: str) -> Reservation | None:
        """An open reservation."""
        return self._open.get(reservation_id)

    def _remember(self, rid: str, ans: Answer) -> None:
        self._answers[rid] = ans
        while len(self._answers) > MAX_REMEMBERED:
            # forget the oldest closed reservation; an open one's answer is always kept
            victim = next((k for k in self._answers if k not in self._open), None)
            if victim is None:
                break
            del self._answers[victim]

    # -- persistence ----------------------------------------------------------------------------
    def to_state(self) -> BookState:
        """Snapshot (msgpack/JSON-encodable)."""
        return BookState(leverage_cap=self.leverage_cap, base_cap=self.base_cap,
                         weights=dict(self.weights), utilization=self.utilization,
                         equity=self.equity, positions=dict(self.positions),
                         open=[msgspec.structs.replace(r) for r in self._open.values()],
                         answers=list(self._answers.values()), commanded=self._commanded,
                         reported=self._reported, reason=self._reason)

    @classmethod
    def from_state(cls, st: BookState) -> ReservationBook:
        """Restore a snapshot."""
        book = cls(st.base_cap, {}, st.utilization, st.equity)
        book.weights = dict(st.weights)
        book.leverage_cap = st.leverage_cap
        book.positions = dict(st.positions)
        book._open = {r.reservation_id: msgspec.structs.replace(r) for r in st.open}
        book._rest = book._gross = book._pexp = None
        book._answers = OrderedDict((a.reservation_id, a) for a in st.answers)
        book._commanded, book._reported, book._reason = st.commanded, st.reported, st.reason
        return book
