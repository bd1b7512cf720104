"""The paper executor: gated signals in; orders, fills, rejections and positions out.

Pure logic, no Kafka (each tick partition's SignalPipeline runs one, ``on_ticks``). Design
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

import numpy as np

from spark.errors import SparkError
from spark.execution.risk import LIMIT_NAMES, ExecutionSettings, Limits

SIDES = {"BUY": 1, "SELL": -1, "FLAT": 0}
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


class Quotes:
    """One symbol's recent quotes: event times and (ts, bid, ask, mid) rows; inside
    ``on_ticks`` also where the batch's quotes start and the batch tick of each."""

    __slots__ = ("ts", "rows", "batch_start", "batch_ticks")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.rows: list[tuple] = []
        self.batch_start: int | None = None
        self.batch_ticks: list[int] | None = None


def _nones(values: np.ndarray) -> list:
    """NaN -> None (a side never quoted)."""
    return [None if v != v else v for v in values.tolist()]


class PaperExecutor:
    def __init__(self, settings: ExecutionSettings, limits: Limits) -> None:
        self.settings = settings
        self.base_limits = limits  # configured (environment)
        self.limits = limits  # configured + operator overrides
        self.overrides: dict[str, float] = {}  # set_limit commands, kept across restarts
        self.positions: dict[str, Position] = {}
        # the positions not flat, and the realized PnL of all of them: risk checks and
        # equity look at these, so their cost does not grow with every symbol ever traded
        self.held: dict[str, Position] = {}
        self.realized = 0.0
        self.kill: dict | None = None  # {"reason", "ts"} while the kill switch is engaged
        self.order_times: deque[int] = deque()  # event times of accepted orders, last minute
        self.day: str | None = None
        self._day_end = 0  # event time the current UTC day ends (µs); not saved
        self.day_peak = 0.0
        self.applied: dict[str, int] = {}  # "topic:partition" -> last offset applied
        self.quotes: dict[str, Quotes] = {}
        self._now: int | None = None  # inside on_ticks: the tick being processed
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
        quotes = self.quotes.get(symbol)
        if quotes is None:
            quotes = self.quotes[symbol] = Quotes()
        quotes.ts.append(ts)
        quotes.rows.append((ts, bid, ask, mid))
        self._retain(symbol, quotes)
        position = self.positions.get(symbol)
        if position is not None:
            position.mark = mid
        out: list[tuple[str, dict]] = []
        waiting = self.pending.get(symbol)
        while waiting and self._due(waiting[0]["ts"], ts):
            out += self._execute(waiting.popleft(), quotes.rows[-1])
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
            quotes = self.quotes.get(symbol)
            if quotes is not None:
                end = self._end(quotes)
                for i in range(bisect.bisect_right(quotes.ts, ts, 0, end), end):
                    if self._due(ts, quotes.ts[i]):
                        return self._execute(signal, quotes.rows[i])
        waiting.append(
            {k: signal.get(k) for k in ("symbol", "ts", "side", "model_version", "strength")}
        )
        return []

    def on_ticks(self, symbols, slot_of, slot, ts, bid, ask, mid, valid, signals) -> list[tuple]:
        """A batch of quotes (arrays; ``symbols[slot[i]]`` is tick i's symbol and
        ``slot_of`` its inverse, NaN = no side) with the gated signals made at some of them
        (``signals``: (tick, signal) in tick order), as if each tick's quote and then its
        signal were given one by one; returns (tick, kind, record) of every output, kind
        as in ``on_quote``.

        Only the symbols that can act are touched: those with signals waiting or arriving
        and those with an open position (their marks count in risk checks). A signal's
        fill is the first later quote of its symbol past the latency, so fills are found
        by search and made in tick order; marks and risk checks see quotes up to the tick
        being processed, never later ones, so the outputs do not depend on where a batch
        is cut.
        """
        self.quotes_read += int(valid.sum())
        active = {symbols[slot[i]] for i, _ in signals}
        active |= {s for s, q in self.pending.items() if q}
        active |= self.held.keys()
        codes = [slot_of[s] for s in active if s in slot_of]
        if not codes:
            return []
        ticks = np.flatnonzero(valid & np.isin(slot, codes))
        order = ticks[np.argsort(slot[ticks], kind="stable")]
        groups = np.split(order, np.flatnonzero(np.diff(slot[order])) + 1) if len(order) else []
        batch: list[Quotes] = []
        for idx in groups:
            symbol = symbols[slot[idx[0]]]
            quotes = self.quotes.get(symbol)
            if quotes is None:
                quotes = self.quotes[symbol] = Quotes()
            quotes.batch_start, quotes.batch_ticks = len(quotes.ts), idx.tolist()
            times = ts[idx].tolist()
            quotes.ts += times
            quotes.rows += zip(
                times, _nones(bid[idx]), _nones(ask[idx]), mid[idx].tolist(), strict=True
            )
            batch.append(quotes)
        out: list[tuple] = []
        heap: list[tuple[int, str]] = []

        def wait_for_fill(symbol: str, after: int) -> None:
            """Schedule the head of ``symbol``'s queue at its fill tick in this batch."""
            quotes = self.quotes.get(symbol)
            if quotes is None or quotes.batch_ticks is None:
                return
            head = self.pending[symbol][0]["ts"]
            ticks_, base = quotes.batch_ticks, quotes.batch_start
            for k in range(bisect.bisect_right(ticks_, after), len(ticks_)):
                if self._due(head, quotes.ts[base + k]):
                    heapq.heappush(heap, (ticks_[k], symbol))
                    return

        def fills_until(limit: int) -> None:
            while heap and heap[0][0] <= limit:
                j, symbol = heapq.heappop(heap)
                self._now = j
                quotes = self.quotes[symbol]
                quote = quotes.rows[quotes.batch_start + bisect.bisect_left(quotes.batch_ticks, j)]
                waiting = self.pending[symbol]
                while waiting and self._due(waiting[0]["ts"], quote[0]):
                    out.extend((j, k, r) for k, r in self._execute(waiting.popleft(), quote))
                if waiting:
                    wait_for_fill(symbol, j)

        try:
            for symbol in sorted(s for s, q in self.pending.items() if q):
                wait_for_fill(symbol, -1)
            for i, signal in signals:
                fills_until(i)
                self._now = i
                symbol = signal["symbol"]
                waited = bool(self.pending.get(symbol))
                out.extend((i, k, r) for k, r in self.on_signal(signal))
                if not waited and self.pending.get(symbol):
                    wait_for_fill(symbol, i)
            fills_until(len(slot))
        finally:
            self._now = None
            for quotes in batch:
                quotes.batch_start = quotes.batch_ticks = None
        for symbol, position in self.held.items():
            quotes = self.quotes.get(symbol)
            if quotes is not None and quotes.rows:
                position.mark = quotes.rows[-1][3]
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
        for symbol, quotes in self.quotes.items():
            # the quotes from the oldest waiting signal on, and the one before it
            first = 0 if oldest is None else bisect.bisect_left(quotes.ts, oldest)
            keep = len(quotes.ts) - first + 1 if oldest is not None else 1
            self._drop(symbol, quotes, len(quotes.ts) - max(keep, 1))

    def _retain(self, symbol: str, quotes: Quotes) -> None:
        """At most ``retain_quotes`` quotes a symbol (dropped in chunks, not one by one)."""
        limit = self.settings.retain_quotes
        if len(quotes.ts) > limit + max(limit // 8, 1):
            self._drop(symbol, quotes, len(quotes.ts) - limit)

    def _drop(self, symbol: str, quotes: Quotes, k: int) -> None:
        if k > 0:
            self.dropped[symbol] = quotes.rows[k - 1]
            del quotes.ts[:k], quotes.rows[:k]

    def _end(self, quotes: Quotes) -> int:
        """How many of a symbol's quotes are known at the tick being processed."""
        if self._now is None or quotes.batch_ticks is None:
            return len(quotes.ts)
        return quotes.batch_start + bisect.bisect_right(quotes.batch_ticks, self._now)

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
        quotes = self.quotes.get(symbol)
        if quotes is not None:
            i = bisect.bisect_right(quotes.ts, ts, 0, self._end(quotes))
            if i > 0:
                return quotes.rows[i - 1][3]
        return self.positions[symbol].mark

    def _equity_at(self, ts: int) -> float:
        """Equity as of event time ``ts``: positions marked at that time's quotes, not at the
        latest quote read (the executor may have read quotes far ahead of its signals)."""
        total = self.realized
        for s, p in self.held.items():
            total += p.quantity * (self._mark_at(s, ts) - p.avg_price)
        return total

    def _roll_day(self, ts: int) -> None:
        """Start a new day's high-water mark at the first event of a later UTC day."""
        if ts < self._day_end:
            return
        day = datetime.fromtimestamp(ts / 1e6, UTC).date()
        if self.day is None or day.isoformat() > self.day:
            self.day, self.day_peak = day.isoformat(), self._equity_at(ts)
        self._day_end = (ts // DAY_US + 1) * DAY_US

    def _mark_before(self, symbol: str, ts: int, fallback: float) -> float:
        quotes = self.quotes.get(symbol)
        if quotes is not None:
            i = bisect.bisect_right(quotes.ts, ts, 0, self._end(quotes))
            if i > 0:
                return quotes.rows[i - 1][3]
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
        number = sum(self.rejections.values())
        return (
            "rejection",
            {
                # unique (the partition's count; a symbol lives on one partition) and the
                # same when a batch is processed again (the count is in the checkpoint)
                "order_id": f"{signal['symbol']}-{signal['ts']}-r{number}",
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
        equity = self._equity_at(signal_ts)
        self.day_peak = max(self.day_peak, equity)
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
        if quote is None:
            refused = ("stale_signal", self._stale(signal, self.dropped[symbol]))
        else:
            refused = self._check(symbol, position.quantity, delta, mid, signal_ts, equity)
        if refused is not None:
            return [self._reject(signal, side, abs(delta), *refused)]
        quote_ts, bid, ask, quote_mid = quote
        self.order_times.append(signal_ts)
        self.orders += 1
        # two signals of one symbol at one time (ticks share timestamps) no longer share an
        # id: the partition's order count makes it unique, and re-processing gives the same
        order_id = f"{symbol}-{signal_ts}-{self.orders}"
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
        before = position.realized
        position.apply(delta, price, fee)
        self.realized += position.realized - before
        if position.quantity:
            self.held[symbol] = position
        else:
            self.held.pop(symbol, None)
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
        self, symbol: str, q0: float, delta: float, mid: float, ts: int, equity: float
    ) -> tuple[str, str] | None:
        """(limit, reason) of the first limit the order breaches, or None (``equity``: as of
        ``ts``)."""
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
        others = 0.0
        for s, p in self.held.items():
            if s != symbol:
                others += abs(p.quantity) * self._mark_at(s, ts)
        if others + notional > limits.max_gross_notional:
            return (
                "max_gross_notional",
                f"gross notional after the order {others + notional:,.2f} > limit "
                f"{limits.max_gross_notional:,.2f}",
            )
        drawdown = self.day_peak - equity
        if drawdown >= limits.max_daily_drawdown:
            return (
                "max_daily_drawdown",
                f"drawdown today {drawdown:,.2f} >= limit {limits.max_daily_drawdown:,.2f}",
            )
        return None

    # --- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        """JSON-able state a restarted worker continues from, the quotes it holds included."""
        return {
            "positions": {s: vars(p).copy() for s, p in self.positions.items()},
            "held": list(self.held),
            "realized": self.realized,
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
            "quotes": {s: [list(r) for r in q.rows] for s, q in self.quotes.items()},
            "dropped": {s: list(r) for s, r in self.dropped.items()},
        }

    def load(self, saved: dict) -> None:
        self.positions = {s: Position(**p) for s, p in saved.get("positions", {}).items()}
        held = saved.get("held", [s for s, p in self.positions.items() if p.quantity])
        self.held = {s: self.positions[s] for s in held}
        self.realized = float(
            saved.get("realized", sum(p.realized for p in self.positions.values()))
        )
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
        self.quotes = {}
        for symbol, rows in saved.get("quotes", {}).items():
            quotes = self.quotes[symbol] = Quotes()
            quotes.rows = [tuple(r) for r in rows]
            quotes.ts = [r[0] for r in rows]
        self.dropped = {s: tuple(r) for s, r in saved.get("dropped", {}).items()}


def summary(executor: PaperExecutor) -> dict:
    """What GET /executor and `spark risk status` show."""
    return {
        "kill_switch": executor.kill,
        "limits": executor.limits.as_dict(),
        "limit_overrides": dict(executor.overrides),
        "orders": executor.orders,
        "signals_without_order": executor.unchanged,
        "rejections": dict(executor.rejections),
        "equity": executor.equity(),
        "daily_drawdown": executor.drawdown(),
        "gross_notional": executor.gross_notional(),
        "positions": {
            s: {
                "quantity": p.quantity,
                "avg_price": p.avg_price,
                "realized_pnl": p.realized,
                "unrealized_pnl": p.unrealized,
                "fees": p.fees,
                "mark": p.mark,
            }
            for s, p in sorted(executor.positions.items())
        },
        "pending_signals": sum(len(q) for q in executor.pending.values()),
        "quotes_read": executor.quotes_read,
        "signals_read": executor.signals_read,
    }


def combined(views: dict[str, dict]) -> dict:
    """One view of several executors (one per tick partition): sums, the kill switch if any
    is engaged, each partition's own view under ``partitions``."""
    parts = list(views.values())
    engaged = [v["kill_switch"] for v in parts if v["kill_switch"]]
    rejections: dict[str, int] = {}
    for v in parts:
        for name, count in v["rejections"].items():
            rejections[name] = rejections.get(name, 0) + count
    return {
        "kill_switch": engaged[0] if engaged else None,
        "limits": parts[0]["limits"],
        "limit_overrides": {k: val for v in parts for k, val in v["limit_overrides"].items()},
        "orders": sum(v["orders"] for v in parts),
        "signals_without_order": sum(v["signals_without_order"] for v in parts),
        "rejections": rejections,
        "equity": sum(v["equity"] for v in parts),
        "daily_drawdown": max(v["daily_drawdown"] for v in parts),
        "gross_notional": sum(v["gross_notional"] for v in parts),
        "positions": {s: p for v in parts for s, p in v["positions"].items()},
        "pending_signals": sum(v["pending_signals"] for v in parts),
        "quotes_read": sum(v["quotes_read"] for v in parts),
        "signals_read": sum(v["signals_read"] for v in parts),
        "partitions": views,
    }


def saved_view(settings) -> dict:
    """What ``spark risk status`` shows: every partition's executor as it last saved itself
    (``executor_state``), combined. SparkError when no worker has saved one yet."""
    from spark.kafka import clients
    from spark.kafka.state import latest_json
    from spark.topics import catalog

    clients.ensure_reachable()
    saved = latest_json(catalog()["executor_state"].name, [0])
    views, acks = {}, {}
    for key, state in sorted(saved.items()):
        if key.startswith("partition:"):
            executor = PaperExecutor(settings.execution, settings.limits)
            executor.load(state)
            views[key.removeprefix("partition:")] = summary(executor)
        elif key.startswith("commands:"):  # what each partition's worker took of the commands
            acks[key.removeprefix("commands:")] = state
    if not views:
        raise SparkError("no executor state yet: start a worker (spark up) and send ticks")
    return combined(views) | {"commands": acks}
