"""The paper executor: gated signals in; orders, fills, rejections and positions out.

Pure logic, no Kafka (each tick partition's SignalPipeline runs one, ``on_ticks``). Design
and rationale in docs/executor.md. In short, everything runs in event time:

* Sizing is target-position: BUY targets +N, SELL −N, FLAT 0, with N =
  round(order_notional / mid) from the last quote at or before the signal; the
  order is the difference to the current position (when that is zero, or a
  same-side re-size below a tenth of N, the outcome is ``no_change``, so
  every signal is accounted for).
* A signal is executed at the first quote of its symbol that is later than
  the signal and at least ``latency_ms`` after it: risk checks first, then, with taker
  fills, a fill at that quote's opposite side (ask for a buy, bid for a sell) with a fee
  of ``fee_bp`` of the fill's notional. With passive fills (the default since session
  22) the order rests at its own side and fills by queue position (docs/costs.md).
  The last ``retain_quotes`` quotes of a symbol are kept and signals wait for
  their quote, so the result does not depend on whether the signal or the
  quotes reach the executor first. A signal older than the quotes kept cannot
  be filled honestly and is refused as ``stale_signal``; one that reaches its fill quote
  more than ``signal_ttl_ms`` after it was made because earlier orders of its symbol held it
  back (a passive order rests up to its timeout) is refused as ``signal_expired``.
* Positions are marked to mid on every quote; equity = realized (fees
  included) + unrealized, summed over symbols. Risk checks use marks as of
  the signal's event time (from the quote buffers) and a daily high-water
  mark sampled at decision times, so they too do not depend on how far ahead
  of the signals the quotes were read.

>>> taker = ExecutionSettings(order_notional=1000, fee_bp=1, latency_ms=0, fill_model="taker")
>>> ex = PaperExecutor(taker, Limits())
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
import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from spark.errors import SparkError
from spark.execution.costs import CostModels, QueueOrder
from spark.execution.risk import LIMIT_NAMES, ExecutionSettings, Limits

SIDES = {"BUY": 1, "SELL": -1, "FLAT": 0}
# every reason an order can be refused for (OrderRejection.limit_name)
# (passive_unfilled: a passive order cancelled unfilled at its timeout, docs/costs.md;
# signal_expired: a signal held back by earlier orders of its symbol that reached its fill
# quote later than signal_ttl_ms after it was made, docs/executor.md)
REJECTION_REASONS = (
    *LIMIT_NAMES, "kill_switch", "stale_signal", "passive_unfilled", "signal_expired"
)  # fmt: skip
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
    """One symbol's recent quotes: event times and (ts, bid, ask, mid, bid_size, ask_size,
    last, last_size) rows (None: not on the tick); ``base``: rows dropped so far (a row's
    id is base + its index); inside ``on_ticks`` also where the batch's quotes start and
    the batch tick of each."""

    __slots__ = ("ts", "rows", "base", "batch_start", "batch_ticks")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.rows: list[tuple] = []
        self.base = 0
        self.batch_start: int | None = None
        self.batch_ticks: list[int] | None = None


NO_BOOK = (None, None, None, None)


def _num(v) -> float:
    return math.nan if v is None else v


@dataclass
class Resting:
    """A passive order waiting in the queue (docs/costs.md): its order record, signed
    quantity, queue position, the id of the next row of its symbol it has to look at,
    and, once known, how it ends (``fill`` or ``timeout``) and at which row id."""

    order: dict
    delta: float
    queue: QueueOrder
    next_row: int
    deadline: int  # event time (µs) of the timeout
    resolved: tuple[str, int] | None = None

    def state(self) -> dict:
        return {
            "order": self.order,
            "delta": self.delta,
            "queue": self.queue.state(),
            "next_row": self.next_row,
            "deadline": self.deadline,
            "resolved": list(self.resolved) if self.resolved else None,
        }

    @classmethod
    def load(cls, saved: dict) -> Resting:
        resolved = saved.get("resolved")
        return cls(
            saved["order"],
            float(saved["delta"]),
            QueueOrder.load(saved["queue"]),
            int(saved["next_row"]),
            int(saved["deadline"]),
            (resolved[0], int(resolved[1])) if resolved else None,
        )


def _nones(values: np.ndarray) -> list:
    """NaN -> None (a side never quoted)."""
    return [None if v != v else v for v in values.tolist()]


class PaperExecutor:
    def __init__(self, settings: ExecutionSettings, limits: Limits) -> None:
        self.settings = settings
        self.costs = CostModels.from_settings(settings)
        self.resting: dict[str, Resting] = {}  # passive orders in the queue, per symbol
        # per symbol, the quote row (counted from the first quote ever) its last resting order
        # ended at: a signal read later but made before it would have waited for it
        self.free_row: dict[str, int] = {}
        self.cancelled = 0  # passive orders cancelled unfilled
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
        self,
        symbol: str,
        ts: int,
        bid: float | None,
        ask: float | None,
        mid: float,
        book: tuple = NO_BOOK,
    ) -> list[tuple[str, dict]]:
        """A quote of ``symbol``: mark its position, settle a resting passive order it
        fills, execute the signals that waited for it. ``book``: (bid_size, ask_size, last,
        last_size) of the tick, None where not given."""
        self.quotes_read += 1
        quotes = self.quotes.get(symbol)
        if quotes is None:
            quotes = self.quotes[symbol] = Quotes()
        quotes.ts.append(ts)
        quotes.rows.append((ts, bid, ask, mid, *book))
        self._retain(symbol, quotes)
        position = self.positions.get(symbol)
        if position is not None:
            position.mark = mid
        out: list[tuple[str, dict]] = []
        if symbol in self.resting:
            k = self._scan(symbol, quotes, len(quotes.rows))
            if k is not None:
                out += self._settle(symbol, quotes.rows[k], quotes.base + k)
        waiting = self.pending.get(symbol)
        row = quotes.base + len(quotes.rows) - 1
        while waiting and symbol not in self.resting and self._due(symbol, waiting[0]["ts"], ts):
            out += self._execute(waiting.popleft(), quotes.rows[-1], row)
        return out

    def on_signal(self, signal: dict) -> list[tuple[str, dict]]:
        """A gated signal: executed now if its fill quote is already here, else queued."""
        self.signals_read += 1
        check_signal(signal)
        symbol, ts = signal["symbol"], signal["ts"]
        waiting = self.pending.setdefault(symbol, deque())
        if not waiting and symbol not in self.resting:  # signals of a symbol execute in order
            dropped = self.dropped.get(symbol)
            if dropped is not None and dropped[0] > ts:
                return self._execute(signal, None)
            quotes = self.quotes.get(symbol)
            if quotes is not None:
                end = self._end(quotes)
                start = bisect.bisect_right(quotes.ts, ts, 0, end)
                # read after quotes past it: the symbol's last resting order may have ended
                # after the signal was made, and in event order the signal waited for that
                start = max(start, self.free_row.get(symbol, 0) - quotes.base)
                for i in range(start, end):
                    if self._due(symbol, ts, quotes.ts[i]):
                        out = self._execute(signal, quotes.rows[i], quotes.base + i)
                        if symbol in self.resting:  # posted passive: the known rows since
                            k = self._scan(symbol, quotes, end)
                            if k is not None:
                                out += self._settle(symbol, quotes.rows[k], quotes.base + k)
                        return out
        waiting.append(
            {k: signal.get(k) for k in ("symbol", "ts", "side", "model_version", "strength")}
        )
        return []

    def on_ticks(
        self, symbols, slot_of, slot, ts, bid, ask, mid, valid, signals, book=None
    ) -> list[tuple]:
        """A batch of quotes (arrays; ``symbols[slot[i]]`` is tick i's symbol and
        ``slot_of`` its inverse, NaN = no side) with the gated signals made at some of them
        (``signals``: (tick, signal) in tick order), as if each tick's quote and then its
        signal were given one by one; returns (tick, kind, record) of every output, kind
        as in ``on_quote``. ``book``: the ticks' (bid_size, ask_size, last, last_size)
        arrays (NaN: not given), for the slippage and passive fill models.

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
        active |= self.resting.keys()
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
            columns = [_nones(bid[idx]), _nones(ask[idx]), mid[idx].tolist()]
            if book is None:
                columns += [[None] * len(idx)] * 4
            else:
                columns += [_nones(column[idx]) for column in book]
            quotes.rows += zip(times, *columns, strict=True)
            batch.append(quotes)
        out: list[tuple] = []
        heap: list[tuple[int, str]] = []

        def wait_for_fill(symbol: str, after: int) -> None:
            """Schedule ``symbol`` at the tick of this batch where its resting order ends,
            else where the head of its queue of signals fills."""
            quotes = self.quotes.get(symbol)
            if quotes is None or quotes.batch_ticks is None:
                return
            ticks_, base = quotes.batch_ticks, quotes.batch_start
            if symbol in self.resting:
                k = self._scan(symbol, quotes, base + len(ticks_))
                if k is not None:
                    heapq.heappush(heap, (ticks_[k - base], symbol))
                return
            head = self.pending[symbol][0]["ts"]
            for k in range(bisect.bisect_right(ticks_, after), len(ticks_)):
                if self._due(symbol, head, quotes.ts[base + k]):
                    heapq.heappush(heap, (ticks_[k], symbol))
                    return

        def fills_until(limit: int) -> None:
            while heap and heap[0][0] <= limit:
                j, symbol = heapq.heappop(heap)
                self._now = j
                quotes = self.quotes[symbol]
                at = quotes.batch_start + bisect.bisect_left(quotes.batch_ticks, j)
                quote = quotes.rows[at]
                resting = self.resting.get(symbol)
                if resting is not None and resting.resolved is not None:
                    settled = self._settle(symbol, quote, quotes.base + at)
                    out.extend((j, k, r) for k, r in settled)
                waiting = self.pending.get(symbol)
                while (
                    waiting
                    and symbol not in self.resting
                    and self._due(symbol, waiting[0]["ts"], quote[0])
                ):
                    executed = self._execute(waiting.popleft(), quote, quotes.base + at)
                    out.extend((j, k, r) for k, r in executed)
                if waiting or symbol in self.resting:
                    wait_for_fill(symbol, j)

        try:
            for symbol in sorted(s for s, q in self.pending.items() if q) + sorted(
                s for s in self.resting if not self.pending.get(s)
            ):
                wait_for_fill(symbol, -1)
            for i, signal in signals:
                fills_until(i)
                self._now = i
                symbol = signal["symbol"]
                waited = bool(self.pending.get(symbol)) or symbol in self.resting
                out.extend((i, k, r) for k, r in self.on_signal(signal))
                if not waited and (self.pending.get(symbol) or symbol in self.resting):
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
        self.resting.pop(symbol, None)
        self.free_row.pop(symbol, None)

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
        resting = self.resting.get(symbol)
        if resting is not None:  # never drop a row a resting order has still to look at
            k = min(k, resting.next_row - quotes.base)
        if k > 0:
            self.dropped[symbol] = quotes.rows[k - 1]
            del quotes.ts[:k], quotes.rows[:k]
            quotes.base += k

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
    def _due(self, symbol: str, signal_ts: int, quote_ts: int) -> bool:
        return quote_ts > signal_ts and quote_ts >= signal_ts + self.costs.latency.delay_us(
            symbol, signal_ts
        )

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

    def _held_back(self, symbol: str, signal_ts: int, row: int) -> bool:
        """Whether quote row ``row`` is later than the signal's own first due quote: earlier
        orders of ``symbol`` held the signal back (a quiet market alone does not)."""
        quotes = self.quotes.get(symbol)
        if quotes is None or row < 0:
            return False
        i = bisect.bisect_right(quotes.ts, signal_ts)
        while i < len(quotes.ts) and not self._due(symbol, signal_ts, quotes.ts[i]):
            i += 1
        return quotes.base + i < row

    def _expired(self, signal: dict, quote_ts: int) -> str:
        return (
            f"signal reached its fill quote {(quote_ts - signal['ts']) / 1e6:,.1f} s after it "
            f"was made, held back by earlier orders of {signal['symbol']}: over "
            f"SPARK_SIGNAL_TTL_MS = {self.settings.signal_ttl_ms:,.0f} ms"
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

    def _execute(self, signal: dict, quote: tuple | None, row: int = -1) -> list[tuple[str, dict]]:
        """Risk-check and fill ``signal`` at ``quote`` (row id ``row``) as a taker, or post
        it there as a passive order; None: its quote is no longer known."""
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
        ttl_us = round(self.settings.signal_ttl_ms * 1000)
        if quote is None:
            refused = ("stale_signal", self._stale(signal, self.dropped[symbol]))
        elif ttl_us and quote[0] - signal_ts > ttl_us and self._held_back(symbol, signal_ts, row):
            refused = ("signal_expired", self._expired(signal, quote[0]))
        else:
            refused = self._check(symbol, position.quantity, delta, mid, signal_ts, equity)
        if refused is not None:
            return [self._reject(signal, side, abs(delta), *refused)]
        quote_ts, bid, ask = quote[0], quote[1], quote[2]
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
        direction = 1 if delta > 0 else -1
        own = bid if direction > 0 else ask
        if self.costs.fill.passive and own is not None and row >= 0:
            # join the queue at the own-side touch of the quote the signal reached
            order["limit_price"], order["ts"] = own, quote_ts
            shown = _num(quote[4] if direction > 0 else quote[5]) if len(quote) > 4 else math.nan
            ahead = shown if shown == shown else math.inf
            self.resting[symbol] = Resting(
                order,
                delta,
                QueueOrder(direction, own, ahead, quote_ts),
                row + 1,
                quote_ts + round(self.costs.fill.timeout_ms * 1000),
            )
            return [("order", order)]
        return [("order", order), *self._fill(order, delta, quote, "taker")]

    def _fill(self, order: dict, delta: float, quote: tuple, liquidity: str) -> list[tuple]:
        """Book ``order`` (signed ``delta``) filled at ``quote``: a taker crosses to the
        other side (with slippage), a maker gets its limit price."""
        symbol = order["symbol"]
        quote_ts, bid, ask, quote_mid = quote[:4]
        direction = 1 if delta > 0 else -1
        if liquidity == "maker":
            price = order["limit_price"]
        else:
            shown = (quote[5] if direction > 0 else quote[4]) if len(quote) > 4 else None
            price = self.costs.slippage.price(direction, abs(delta), bid, ask, quote_mid, shown)
        fee = self.costs.fees.rate(symbol, liquidity) * 1e-4 * abs(delta) * price
        position = self.positions[symbol]
        before = position.realized
        position.apply(delta, price, fee)
        self.realized += position.realized - before
        if position.quantity:
            self.held[symbol] = position
        else:
            self.held.pop(symbol, None)
        position.mark = quote_mid
        fill = {
            "order_id": order["order_id"],
            "symbol": symbol,
            "side": order["side"],
            "quantity": abs(delta),
            "price": price,
            "fee": fee,
            "latency_ms": (quote_ts - order["signal_ts"]) / 1000.0,
            "ts": quote_ts,
            "liquidity": liquidity,
        }
        return [("fill", fill), ("position", position.record(symbol, quote_ts))]

    def _scan(self, symbol: str, quotes: Quotes, stop: int) -> int | None:
        """Walk ``symbol``'s resting order over its rows up to index ``stop`` (exclusive)
        not seen yet: the index of the row where it ends (filled, or past its timeout),
        or None."""
        resting = self.resting[symbol]
        if resting.resolved is not None:
            return resting.resolved[1] - quotes.base
        queue = resting.queue
        for k in range(max(resting.next_row - quotes.base, 0), stop):
            row = quotes.rows[k]
            resting.next_row = quotes.base + k + 1
            if row[0] >= resting.deadline:
                resting.resolved = ("timeout", quotes.base + k)
                return k
            book = row[4:8] if len(row) > 4 else NO_BOOK
            shown = _num(book[0] if queue.side > 0 else book[1])
            if queue.on_row(row[0], row[1], row[2], shown, _num(book[2]), _num(book[3])):
                resting.resolved = ("fill", quotes.base + k)
                return k
        return None

    def _settle(self, symbol: str, quote: tuple, row: int) -> list[tuple[str, dict]]:
        """The resting order of ``symbol`` ends at ``quote`` (quote row ``row``): filled as a
        maker at its price; or, past its timeout, crossed as a taker or cancelled."""
        resting = self.resting.pop(symbol)
        self.free_row[symbol] = row
        how = resting.resolved[0]
        if how == "fill":
            return self._fill(resting.order, resting.delta, quote, "maker")
        if self.costs.fill.on_timeout == "cross":
            return self._fill(resting.order, resting.delta, quote, "taker")
        self.cancelled += 1
        self.rejections["passive_unfilled"] = self.rejections.get("passive_unfilled", 0) + 1
        order = resting.order
        return [
            (
                "cancel",
                {
                    "order_id": order["order_id"],
                    "symbol": symbol,
                    "side": order["side"],
                    "quantity": order["quantity"],
                    "limit_name": "passive_unfilled",
                    "reason": f"passive order at {order['limit_price']} not filled in "
                    f"{self.costs.fill.timeout_ms:g} ms: cancelled",
                    "ts": quote[0],
                },
            )
        ]

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
            "quote_base": {s: q.base for s, q in self.quotes.items() if q.base},
            "dropped": {s: list(r) for s, r in self.dropped.items()},
            "resting": {s: r.state() for s, r in self.resting.items()},
            "free_row": dict(self.free_row),
            "cancelled": self.cancelled,
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
        bases = saved.get("quote_base", {})
        for symbol, rows in saved.get("quotes", {}).items():
            quotes = self.quotes[symbol] = Quotes()
            # rows saved before session 8 have no book columns
            quotes.rows = [tuple(r) + NO_BOOK[: max(8 - len(r), 0)] for r in rows]
            quotes.ts = [r[0] for r in rows]
            quotes.base = int(bases.get(symbol, 0))
        self.dropped = {s: tuple(r) for s, r in saved.get("dropped", {}).items()}
        self.resting = {s: Resting.load(r) for s, r in saved.get("resting", {}).items()}
        self.free_row = {s: int(r) for s, r in saved.get("free_row", {}).items()}
        self.cancelled = int(saved.get("cancelled", 0))


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
        "resting_orders": len(executor.resting),
        "cancelled_unfilled": executor.cancelled,
        "cost_models": executor.costs.describe(),
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
        "resting_orders": sum(v.get("resting_orders", 0) for v in parts),
        "cancelled_unfilled": sum(v.get("cancelled_unfilled", 0) for v in parts),
        "cost_models": parts[0].get("cost_models"),
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
