"""The paper executor: gated signals in; orders, fills, rejections and positions out.

Pure logic, no Kafka (the agent in ``spark.agents.executor`` feeds it). Design
and rationale in docs/executor.md. In short, everything runs in event time:

* Sizing is target-position: BUY targets +N, SELL −N, FLAT 0, with N =
  round(order_notional / mid) from the last quote at or before the signal; the
  order is the difference to the current position (when that is zero, or a
  same-side re-size below a tenth of N, the outcome is ``no_change``, so
  every signal is accounted for).
* A signal is executed at the first quote of its symbol that is later than
  the signal and at least ``latency_ms`` after it: risk checks first, then a
  fill at that quote's opposite side (ask for a buy, bid for a sell) with a fee
  of ``fee_bp`` of the fill's notional. The last ``retain_quotes`` quotes of a
  symbol are kept and signals wait for their quote, so the result does not
  depend on whether the signal or the quotes reach the executor first. A
  signal older than the quotes kept cannot be filled honestly and is refused
  as ``stale_signal``.
* Positions are marked to mid on every quote; equity = realized (fees
  included) + unrealized, summed over symbols. Risk checks use marks as of
  the signal's event time (from the quote buffers) and a daily high-water
  mark sampled at decision times, so they too do not depend on how far ahead
  of the signals the quotes were read.

>>> ex = PaperExecutor(ExecutionSettings(order_notional=1000, fee_bp=1, latency_ms=0), Limits())
>>> ex.on_quote("EURUSD", 1_000_000, 0.99, 1.01, 1.00)
[]
>>> ex.on_signal({"symbol": "EURUSD", "ts": 1_000_000, "side": "BUY", "model_version": 1})
[]
>>> [kind for kind, _ in ex.on_quote("EURUSD", 2_000_000, 1.00, 1.02, 1.01)]
['order', 'fill', 'position']
>>> p = ex.positions["EURUSD"]; (p.quantity, p.avg_price, round(p.realized, 4))
(1000.0, 1.02, -0.102)
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter

import numpy as np

from spark.execution.risk import LIMIT_NAMES, ExecutionSettings, Limits

SIDES = {"BUY": 1, "SELL": -1, "FLAT": 0}
TS = itemgetter(0)
# every reason an order can be refused for (OrderRejection.limit_name)
REJECTION_REASONS = (*LIMIT_NAMES, "kill_switch", "stale_signal")
OUTCOMES = ("order", "rejected", "no_change")  # what becomes of a signal
MINUTE_US = 60_000_000
MIN_ORDER_FRACTION = 0.1  # no order to re-size a same-side position by less than this
DAY_US = 86_400_000_000


class InvalidSignal(ValueError):
    """A signal the executor cannot act on; ``reason`` goes into dead-letter headers."""

    reason = "invalid_signal"


@dataclass
class Position:
    """Signed quantity, average entry price, realized PnL (fees included), last mid."""

    quantity: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    mark: float = 0.0

    @property
    def unrealized(self) -> float:
        return self.quantity * (self.mark - self.avg_price) if self.quantity else 0.0

    def apply(self, quantity: float, price: float, fee: float) -> None:
        """Book a fill of signed ``quantity`` at ``price``; realize PnL on the closed part."""
        q0 = self.quantity
        self.realized -= fee
        self.fees += fee
        new = q0 + quantity
        if q0 == 0 or (q0 > 0) == (quantity > 0):  # opening or adding
            self.avg_price = (abs(q0) * self.avg_price + abs(quantity) * price) / abs(new)
        else:
            closed = min(abs(quantity), abs(q0))
            self.realized += closed * (price - self.avg_price) * (1 if q0 > 0 else -1)
            if new == 0:
                self.avg_price = 0.0
            elif (new > 0) != (q0 > 0):  # flipped: the rest opened at this price
                self.avg_price = price
        self.quantity = new

    def record(self, symbol: str, ts: int) -> dict:
        """The ``Position`` Avro record."""
        return {
            "symbol": symbol,
            "quantity": self.quantity,
            "avg_price": self.avg_price,
            "realized_pnl": self.realized,
            "unrealized_pnl": self.unrealized,
            "ts": ts,
        }


def check_signal(signal: dict) -> None:
    """Raise InvalidSignal unless ``signal`` has what the executor needs."""
    if signal.get("side") not in SIDES:
        raise InvalidSignal(f"side must be one of {', '.join(SIDES)}, not {signal.get('side')!r}")
    if not isinstance(signal.get("symbol"), str) or not signal["symbol"]:
        raise InvalidSignal("signal without a symbol")
    if not isinstance(signal.get("ts"), int):
        raise InvalidSignal(f"ts must be integer microseconds, not {signal.get('ts')!r}")


class PaperExecutor:
    def __init__(self, settings: ExecutionSettings, limits: Limits) -> None:
        self.settings = settings
        self.base_limits = limits  # configured (environment)
        self.limits = limits  # configured + operator overrides
        self.overrides: dict[str, float] = {}  # set_limit commands, kept across restarts
        self.positions: dict[str, Position] = {}
        self.kill: dict | None = None  # {"reason", "ts"} while the kill switch is engaged
        self.order_times: deque[int] = deque()  # event times of accepted orders, last minute
        self.day: str | None = None
        self._day_end = 0  # event time the current UTC day ends (µs); not saved
        self.day_peak = 0.0
        self.applied: dict[str, int] = {}  # "topic:partition" -> last offset applied
        self.quotes: dict[str, deque[tuple[int, float | None, float | None, float]]] = {}
        self.pending: dict[str, deque[dict]] = {}
        self.dropped: dict[str, tuple] = {}  # the last quote pushed out of each buffer
        self.rejections: dict[str, int] = {}
        self.orders = 0
        self.unchanged = 0  # signals whose target was already held: no order
        self.quotes_read = 0
        self.signals_read = 0

    # --- inputs -------------------------------------------------------------------------
    def fresh(self, topic: str, partition: int, offset: int) -> bool:
        """True the first time an offset is seen; False for one applied before (redelivery)."""
        key = f"{topic}:{partition}"
        if offset <= self.applied.get(key, -1):
            return False
        self.applied[key] = offset
        return True

    def on_quote(
        self, symbol: str, ts: int, bid: float | None, ask: float | None, mid: float
    ) -> list[tuple[str, dict]]:
        """A quote of ``symbol``: mark its position, execute the signals that waited for it."""
        self.quotes_read += 1
        buffer = self.quotes.setdefault(symbol, deque())
        buffer.append((ts, bid, ask, mid))
        if len(buffer) > self.settings.retain_quotes:
            self.dropped[symbol] = buffer.popleft()
        position = self.positions.get(symbol)
        if position is not None:
            position.mark = mid
        out: list[tuple[str, dict]] = []
        waiting = self.pending.get(symbol)
        while waiting and self._due(waiting[0]["ts"], ts):
            out += self._execute(waiting.popleft(), buffer[-1])
        return out

    def on_signal(self, signal: dict) -> list[tuple[str, dict]]:
        """A gated signal: executed now if its fill quote is already here, else queued."""
        self.signals_read += 1
        check_signal(signal)
        symbol, ts = signal["symbol"], signal["ts"]
        waiting = self.pending.setdefault(symbol, deque())
        if not waiting:  # signals of a symbol execute in order
            dropped = self.dropped.get(symbol)
            if dropped is not None and dropped[0] > ts:
                return self._execute(signal, None)
            buffer = self.quotes.get(symbol, ())
            for i in range(bisect.bisect_right(buffer, ts, key=TS), len(buffer)):
                if self._due(ts, buffer[i][0]):
                    return self._execute(signal, buffer[i])
        waiting.append(
            {k: signal.get(k) for k in ("symbol", "ts", "side", "model_version", "strength")}
        )
        return []

    def on_ticks(self, symbols, slot_of, slot, ts, bid, ask, mid, valid, signals) -> list[tuple]:
        """A batch of quotes (arrays; ``symbols[slot[i]]`` is tick i's symbol and
        ``slot_of`` its inverse, NaN = no side) with the gated signals made at some of them
        (``signals``: (tick, signal) in tick order), as if each tick's quote and then its
        signal were given one by one;
        returns (tick, kind, record) of every output, kind as in ``on_quote``.

        Only the symbols that can act are touched: those with signals waiting or arriving
        and those with an open position (their marks count in risk checks). A signal's
        fill is the first later quote of its symbol past the latency, so fills are found
        by search and made in tick order; marks and risk checks see quotes up to the tick
        being processed, never later ones, so the outputs do not depend on where a batch
        is cut.
        """
        n_valid = int(valid.sum())
        self.quotes_read += n_valid
        arriving = {symbols[slot[i]] for i, _ in signals}
        active = {s for s, q in self.pending.items() if q} | arriving
        active |= {s for s, p in self.positions.items() if p.quantity}
        if not active:
            return []
        codes = {slot_of[s] for s in active if s in slot_of}
        mine = valid & np.isin(slot, list(codes))
        ticks = np.flatnonzero(mine)
        by_symbol = {c: ticks[slot[ticks] == c] for c in codes}
        fed = dict.fromkeys(by_symbol, 0)  # quotes of each active symbol given so far
        out: list[tuple] = []
        nan_none = lambda v: None if v != v else float(v)  # noqa: E731

        def feed(upto: int) -> None:
            for c, idx in by_symbol.items():
                k = int(np.searchsorted(idx, upto, side="right"))
                if k == fed[c]:
                    continue
                symbol = symbols[c]
                buffer = self.quotes.setdefault(symbol, deque())
                for i in idx[fed[c] : k].tolist():
                    buffer.append((int(ts[i]), nan_none(bid[i]), nan_none(ask[i]), float(mid[i])))
                while len(buffer) > self.settings.retain_quotes:
                    self.dropped[symbol] = buffer.popleft()
                fed[c] = k
                position = self.positions.get(symbol)
                if position is not None:
                    position.mark = buffer[-1][3]

        def due_tick(symbol: str, after: int) -> int | None:
            c = slot_of.get(symbol)
            if c is None or c not in by_symbol:
                return None
            idx = by_symbol[c]
            head = self.pending[symbol][0]["ts"]
            for i in idx[int(np.searchsorted(idx, after, side="right")) :].tolist():
                if self._due(head, int(ts[i])):
                    return i
            return None

        heap: list[tuple[int, str]] = []
        for symbol in sorted(s for s, q in self.pending.items() if q):
            due = due_tick(symbol, -1)
            if due is not None:
                heapq.heappush(heap, (due, symbol))

        def fills_until(limit: int) -> None:
            while heap and heap[0][0] <= limit:
                j, symbol = heapq.heappop(heap)
                feed(j)
                quote = self.quotes[symbol][-1]
                waiting = self.pending[symbol]
                while waiting and self._due(waiting[0]["ts"], quote[0]):
                    out.extend(
                        (j, kind, record)
                        for kind, record in self._execute(waiting.popleft(), quote)
                    )
                if waiting:
                    due = due_tick(symbol, j)
                    if due is not None:
                        heapq.heappush(heap, (due, symbol))

        for i, signal in signals:
            fills_until(i)
            feed(i)
            symbol = signal["symbol"]
            waiting_before = bool(self.pending.get(symbol))
            out.extend((i, kind, record) for kind, record in self.on_signal(signal))
            if not waiting_before and self.pending.get(symbol):
                due = due_tick(symbol, i)
                if due is not None:
                    heapq.heappush(heap, (due, symbol))
        fills_until(len(slot))
        feed(len(slot))
        self._trim()
        return out

    def forget(self, symbol: str) -> None:
        """Drop a quiet symbol's quotes (its position, if any, and its PnL stay)."""
        self.quotes.pop(symbol, None)
        self.dropped.pop(symbol, None)
        self.pending.pop(symbol, None)

    def _trim(self) -> None:
        """Keep each symbol's quotes back to the oldest signal still waiting (and one before
        it), the only ones a later decision can ask about."""
        waiting = [q[0]["ts"] for q in self.pending.values() if q]
        oldest = min(waiting) if waiting else None
        for symbol, buffer in self.quotes.items():
            while len(buffer) > 1 and (oldest is None or buffer[1][0] <= oldest):
                self.dropped[symbol] = buffer.popleft()

    def command(
        self, action: str, limit_name: str | None, value: float | None, reason: str, ts: int
    ) -> str:
        """Apply a RiskCommand; returns what changed, raises ValueError for a bad command."""
        if action == "kill":
            self.kill = {"reason": reason, "ts": ts}
            return f"kill switch engaged: {reason}"
        if action == "clear":
            was = self.kill
            self.kill = None
            return "kill switch cleared" if was else "kill switch was not engaged"
        if action == "set_limit":
            if limit_name is None or value is None:
                raise ValueError("set_limit needs limit_name and value")
            self.limits = self.limits.set(limit_name, value)
            self.overrides[limit_name] = float(value)
            return f"{limit_name} set to {value}"
        raise ValueError(f"action must be kill, clear or set_limit, not {action!r}")

    # --- derived --------------------------------------------------------------------------
    def equity(self) -> float:
        return sum(p.realized + p.unrealized for p in self.positions.values())

    def gross_notional(self) -> float:
        return sum(abs(p.quantity) * p.mark for p in self.positions.values())

    def drawdown(self) -> float:
        return max(self.day_peak - self.equity(), 0.0)

    # --- internals ------------------------------------------------------------------------
    def _due(self, signal_ts: int, quote_ts: int) -> bool:
        return quote_ts > signal_ts and quote_ts >= signal_ts + self.settings.latency_ms * 1000

    def _mark_at(self, symbol: str, ts: int) -> float:
        """Mid of ``symbol``'s last quote at or before event time ``ts`` (else its last mark)."""
        buffer = self.quotes.get(symbol, ())
        i = bisect.bisect_right(buffer, ts, key=TS)
        return buffer[i - 1][3] if i > 0 else self.positions[symbol].mark

    def _equity_at(self, ts: int) -> float:
        """Equity as of event time ``ts``: positions marked at that time's quotes, not at the
        latest quote read (the executor may have read quotes far ahead of its signals)."""
        return sum(
            p.realized + (p.quantity * (self._mark_at(s, ts) - p.avg_price) if p.quantity else 0)
            for s, p in self.positions.items()
        )

    def _roll_day(self, ts: int) -> None:
        """Start a new day's high-water mark at the first event of a later UTC day."""
        if ts < self._day_end:
            return
        day = datetime.fromtimestamp(ts / 1e6, UTC).date()
        if self.day is None or day.isoformat() > self.day:
            self.day, self.day_peak = day.isoformat(), self._equity_at(ts)
        self._day_end = (ts // DAY_US + 1) * DAY_US

    def _mark_before(self, symbol: str, ts: int, fallback: float) -> float:
        buffer = self.quotes.get(symbol, ())
        i = bisect.bisect_right(buffer, ts, key=TS)
        if i > 0:
            return buffer[i - 1][3]
        dropped = self.dropped.get(symbol)
        return dropped[3] if dropped is not None else fallback

    @staticmethod
    def _stale(signal: dict, dropped: tuple) -> str:
        return (
            f"signal at {signal['ts']} is older than the quotes the executor still holds "
            f"(from after {dropped[0]}); raise retain_quotes or let the executor catch up"
        )

    def _reject(self, signal: dict, side: str, quantity: float, limit: str, reason: str) -> tuple:
        self.rejections[limit] = self.rejections.get(limit, 0) + 1
        return (
            "rejection",
            {
                "order_id": f"{signal['symbol']}-{signal['ts']}",
                "symbol": signal["symbol"],
                "side": side,
                "quantity": quantity,
                "limit_name": limit,
                "reason": reason,
                "ts": signal["ts"],
            },
        )

    def _execute(self, signal: dict, quote: tuple | None) -> list[tuple[str, dict]]:
        """Risk-check and fill ``signal`` at ``quote``; None: its quote is no longer known."""
        symbol, signal_ts = signal["symbol"], signal["ts"]
        # the day's high-water mark is sampled at decision times, in event time, so risk
        # decisions do not depend on how far ahead of the signals the quotes were read
        self._roll_day(signal_ts)
        self.day_peak = max(self.day_peak, self._equity_at(signal_ts))
        fallback = quote[3] if quote is not None else self.dropped[symbol][3]
        mid = self._mark_before(symbol, signal_ts, fallback)
        size = max(1.0, float(round(self.settings.order_notional / mid)))
        position = self.positions.setdefault(symbol, Position(mark=mid))
        target = SIDES[signal["side"]] * size
        delta = target - position.quantity
        # the target is already held, or only re-sized by a moved mid (e.g. after a
        # refused FLAT): no order smaller than a tenth of the size to top up a position
        if delta == 0 or (
            target
            and (target > 0) == (position.quantity > 0)
            and abs(delta) < MIN_ORDER_FRACTION * size
        ):
            self.unchanged += 1
            return [("no_change", {"symbol": symbol, "ts": signal_ts})]
        side = "BUY" if delta > 0 else "SELL"
        order_id = f"{symbol}-{signal_ts}"
        if quote is None:
            refused = ("stale_signal", self._stale(signal, self.dropped[symbol]))
        else:
            refused = self._check(symbol, position.quantity, delta, mid, signal_ts)
        if refused is not None:
            return [self._reject(signal, side, abs(delta), *refused)]
        quote_ts, bid, ask, quote_mid = quote
        self.order_times.append(signal_ts)
        self.orders += 1
        order = {
            "order_id": order_id,
            "symbol": symbol,
            "side": side,
            "quantity": abs(delta),
            "limit_price": None,
            "signal_ts": signal_ts,
            "ts": signal_ts,
            "model_version": int(signal.get("model_version") or 0),
        }
        price = (ask if delta > 0 else bid) or quote_mid  # trade-only data: the trade price
        fee = self.settings.fee_bp * 1e-4 * abs(delta) * price
        position.apply(delta, price, fee)
        position.mark = quote_mid
        fill = {
            "order_id": order_id,
            "symbol": symbol,
            "side": side,
            "quantity": abs(delta),
            "price": price,
            "fee": fee,
            "latency_ms": (quote_ts - signal_ts) / 1000.0,
            "ts": quote_ts,
        }
        return [("order", order), ("fill", fill), ("position", position.record(symbol, quote_ts))]

    def _check(
        self, symbol: str, q0: float, delta: float, mid: float, ts: int
    ) -> tuple[str, str] | None:
        """(limit, reason) of the first limit the order breaches, or None."""
        limits = self.limits
        if self.kill is not None:
            return "kill_switch", f"kill switch engaged: {self.kill['reason']}"
        while self.order_times and self.order_times[0] <= ts - MINUTE_US:
            self.order_times.popleft()
        if len(self.order_times) >= limits.max_orders_per_minute:
            return (
                "max_orders_per_minute",
                f"{len(self.order_times)} orders in the last 60 s, limit "
                f"{limits.max_orders_per_minute:g}",
            )
        new = q0 + delta
        reduces = abs(new) < abs(q0) and (new == 0 or (new > 0) == (q0 > 0))
        if reduces:
            return None
        notional = abs(new) * mid
        if notional > limits.max_position_notional:
            return (
                "max_position_notional",
                f"{symbol} position notional after the order {notional:,.2f} > limit "
                f"{limits.max_position_notional:,.2f}",
            )
        others = sum(
            abs(p.quantity) * self._mark_at(s, ts)
            for s, p in self.positions.items()
            if s != symbol and p.quantity
        )
        if others + notional > limits.max_gross_notional:
            return (
                "max_gross_notional",
                f"gross notional after the order {others + notional:,.2f} > limit "
                f"{limits.max_gross_notional:,.2f}",
            )
        drawdown = self.day_peak - self._equity_at(ts)
        if drawdown >= limits.max_daily_drawdown:
            return (
                "max_daily_drawdown",
                f"drawdown today {drawdown:,.2f} >= limit {limits.max_daily_drawdown:,.2f}",
            )
        return None

    # --- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        """JSON-able state a restarted worker continues from (quotes are not kept)."""
        return {
            "positions": {s: vars(p).copy() for s, p in self.positions.items()},
            "kill": self.kill,
            "limit_overrides": dict(self.overrides),
            "order_times": list(self.order_times),
            "day": self.day,
            "day_peak": self.day_peak,
            "applied": dict(self.applied),
            "pending": {s: list(q) for s, q in self.pending.items() if q},
            "rejections": dict(self.rejections),
            "orders": self.orders,
            "unchanged": self.unchanged,
            "quotes_read": self.quotes_read,
            "signals_read": self.signals_read,
        }

    def load(self, saved: dict) -> None:
        self.positions = {s: Position(**p) for s, p in saved.get("positions", {}).items()}
        self.kill = saved.get("kill")
        self.overrides = dict(saved.get("limit_overrides", {}))
        self.limits = self.base_limits
        for name, value in self.overrides.items():
            self.limits = self.limits.set(name, value)
        self.order_times = deque(saved.get("order_times", []))
        self.day = saved.get("day")
        self.day_peak = float(saved.get("day_peak", 0.0))
        self.applied = dict(saved.get("applied", {}))
        self.pending = {s: deque(q) for s, q in saved.get("pending", {}).items()}
        self.rejections = dict(saved.get("rejections", {}))
        self.orders = int(saved.get("orders", 0))
        self.unchanged = int(saved.get("unchanged", 0))
        self.quotes_read = int(saved.get("quotes_read", 0))
        self.signals_read = int(saved.get("signals_read", 0))
