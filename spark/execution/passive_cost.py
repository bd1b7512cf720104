"""What a passive round trip costs, measured on the quotes with shadow orders (issue 16).

The cost-aware policy (``spark.ml.signals.decide_costed``, docs/policy.md) needs the cost of
a round trip before it trades. A taker's is known at the tick: the quote's spread and two
taker fees. A passive order's is not (docs/costs.md: it rests at the own-side touch, fills
by the risk-averse queue model, and after the timeout is crossed as a taker or cancelled).
It pays what the executor's report calls spread cost and fees:

- filled: its price against the mid of the quote it fills on, plus the maker fee. On quotes
  without trades a resting order fills only when the market moves through it, so that mid
  has already gone past the order: adverse selection, paid though no spread was crossed;
- not filled by the timeout and crossed: what the executor's taker fill pays against that
  quote's mid (``SlippageModel.price``: the touch, ``slippage_bp``, and ``depth_spreads``
  spreads on the part of an order of the executor's size, ``order_notional`` at that mid,
  beyond the size shown) and the taker fee;
- not filled and cancelled: nothing traded, so no cost; counted as a timeout only.

So each symbol keeps one shadow order per side. At a tick where a side has none resting
and the model leans that way (the champion's prob_up past the band: where the policy could
send that side), one is posted at that side's touch (the size shown there ahead of it,
unknown: infinite). Posting only where the model leans matters: an order sent because the
price is expected to move away from it fills less often (session 19 measured random posting
at a third to a quarter of what the policy's own fills paid on BAC);
on each later tick of the symbol it is walked by the executor's rules (first the timeout,
then ``spark.execution.costs.QueueOrder.on_row``, which the tests' oracle runs), and when
it ends its cost in bp (the leg) joins the symbol's mean: running over the first ``SPAN``
legs, exponential after. A round trip costs two legs: ``2 × mean``, NaN before
``MIN_LEGS`` legs, so the policy does not trade passively on a symbol until that is
measured. Shadow orders are not the policy's orders: the cost is known before the first
trade and does not depend on whether the policy trades. Per tick, in order, on valid ticks
only, with per-slot state: where a batch is cut changes nothing. A symbol that starts
fresh (``reset``) drops its shadow orders and its mean.

The cost charged is the executor's decomposition (spread cost + fees, against the mid at
the fill). The part of the edge that passes while an order waits is not in it: the
position exists from its fill, so that shows in the gross PnL, as in the backtest report.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SPAN = 1_000.0  # legs in the running mean of a symbol's passive leg cost (then exponential)
MIN_LEGS = 100  # legs measured before a symbol's passive cost is used
NONE = -1  # no shadow order resting on that side
# fit columns per slot: mean leg cost (bp), legs measured, fills, timeouts
MEAN, LEGS, FILLS, TIMEOUTS = 0, 1, 2, 3


def new_state(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(price, ahead, deadline, fit) for ``size`` slots: no shadow order, nothing measured.
    price, ahead and deadline are per slot and side (0: buy, resting on the bid; 1: sell)."""
    return (
        np.zeros((size, 2)),
        np.zeros((size, 2)),
        np.full((size, 2), NONE, np.int64),
        np.zeros((size, 4)),
    )


def clear(state: tuple, rows) -> None:
    """Slots ``rows`` start fresh (symbols freed or back after a silence)."""
    price, ahead, deadline, fit = state
    price[rows], ahead[rows], deadline[rows], fit[rows] = 0.0, 0.0, NONE, 0.0


@njit(cache=True)
def _walk(buy, price, ahead, bid, ask, shown, last, last_size):
    """``QueueOrder.on_row``: (filled, ahead after this tick)."""
    if last == last:  # a trade
        if (last < price) if buy else (last > price):
            return True, ahead
        if last == price and last_size == last_size:
            ahead -= last_size
            if ahead < 0:
                return True, ahead
    other, own = (ask, bid) if buy else (bid, ask)
    if other == other and ((other <= price) if buy else (other >= price)):
        return True, ahead  # the market moved through the order
    if own == own:
        if own == price and shown == shown:
            ahead = min(ahead, shown)
        elif (own < price) if buy else (own > price):
            ahead = 0.0  # the level emptied: nobody is ahead any more
    return False, ahead


@njit(cache=True)
def _taker_price(buy, qty, bid, ask, mid, shown, slippage, depth):
    """``SlippageModel.price``: the average price of a taker order of ``qty``."""
    touch = ask if buy else bid
    if touch != touch:
        touch = mid
    slip = slippage * 1e-4 * mid
    if depth > 0 and shown == shown and shown > 0 and qty > shown and bid == bid and ask == ask:
        slip += depth * (ask - bid) * (qty - shown) / qty
    return touch + slip if buy else touch - slip


@njit(cache=True)
def step(batch, fees, rule, state, out) -> None:
    """Walk and post the shadow orders over a batch; ``out[i]``: the measured round trip
    of tick i's symbol after tick i (bp; NaN: not measured yet, or not a valid tick).
    ``batch``: (slot, ts, valid, reset, bid, ask, mid, bid_size, ask_size, last,
    last_size, prob_up); ``fees``: per tick (maker bp, taker bp); ``rule``: (timeout µs,
    cross on timeout, taker slippage bp, depth spreads, order notional, band, span, min
    legs: ``SPAN`` and ``MIN_LEGS`` in the product)."""
    slot, ts, valid, reset, bid, ask, mid, bid_size, ask_size, last, last_size, prob_up = batch
    maker, taker = fees
    timeout, cross, slippage, depth, notional, band, span, min_legs = rule
    price, ahead, deadline, fit = state
    for i in range(slot.shape[0]):
        s = slot[i]
        if reset[i]:
            for d in range(2):
                deadline[s, d] = NONE
            fit[s, :] = 0.0
        if not valid[i]:
            out[i] = np.nan
            continue
        for d in range(2):
            buy = d == 0
            sign = 1.0 if buy else -1.0
            shown = bid_size[i] if buy else ask_size[i]
            if deadline[s, d] != NONE:
                leg = np.nan
                ended = False
                if ts[i] >= deadline[s, d]:
                    ended = True
                    fit[s, TIMEOUTS] += 1.0
                    if cross:
                        other = ask_size[i] if buy else bid_size[i]
                        qty = max(1.0, float(round(notional / mid[i])))
                        paid = _taker_price(
                            buy, qty, bid[i], ask[i], mid[i], other, slippage, depth
                        )
                        leg = sign * (paid - mid[i]) / mid[i] * 1e4 + taker[i]
                else:
                    filled, after = _walk(
                        buy, price[s, d], ahead[s, d], bid[i], ask[i], shown, last[i],
                        last_size[i],
                    )  # fmt: skip
                    ahead[s, d] = after
                    if filled:
                        ended = True
                        fit[s, FILLS] += 1.0
                        leg = sign * (price[s, d] - mid[i]) / mid[i] * 1e4 + maker[i]
                if ended:
                    deadline[s, d] = NONE
                    if leg == leg:
                        fit[s, LEGS] += 1.0
                        fit[s, MEAN] += (leg - fit[s, MEAN]) / min(fit[s, LEGS], span)
            leans = prob_up[i] >= 0.5 + band if buy else prob_up[i] <= 0.5 - band
            if deadline[s, d] == NONE and leans:  # post one at this tick's touch
                own = bid[i] if buy else ask[i]
                if own == own:
                    price[s, d] = own
                    ahead[s, d] = shown if shown == shown else np.inf
                    deadline[s, d] = ts[i] + timeout
        out[i] = 2.0 * fit[s, MEAN] if fit[s, LEGS] >= min_legs else np.nan
