"""The 54 features of feature set v4, compiled: one symbol's state in two small arrays.

``update`` applies one tick to a symbol's state and writes its feature row; every
formula is docs/features.md's, tick by tick in O(1) time and memory, using the tick
and earlier ones only. The state of a symbol is a row of ``FLOATS`` doubles and a row
of ``INTS`` integers (a few hundred bytes), so thousands of symbols fit in two arrays
and a whole batch of ticks runs in one compiled loop (``spark.pipeline.core``).
Missing prices and sizes are NaN.

>>> import numpy as np
>>> f, i = new_state(1)
>>> row = np.zeros(N_FEATURES)
>>> nan = float("nan")
>>> update(f[0], i[0], 1_000_000, 1.1000, 1.1002, nan, nan, nan, nan, row)
True
>>> update(f[0], i[0], 2_000_000, 1.1001, 1.1003, nan, nan, nan, nan, row)
True
>>> names = list(FEATURE_NAMES)
>>> round(float(row[names.index("ret_bp")]), 3), round(float(row[names.index("spread_bp")]), 3)
(0.909, 1.818)
>>> float(row[names.index("dt_s")]), float(row[names.index("last_move_sign")])
(1.0, 1.0)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

FEATURE_SET = "v4"
CORE_FEATURE_NAMES = (
    "ret_bp",  # log return of the mid since the previous tick, bp
    "spread_bp",  # (ask - bid) / mid, bp (0 without a two-sided quote)
    "spread_z",  # spread against its 5-minute EW mean, in EW standard deviations
    "d_bid_bp",  # change of the bid since the previous tick, bp of mid
    "d_ask_bp",  # change of the ask since the previous tick, bp of mid
    "dt_s",  # seconds since the previous tick
    "activity_1m",  # ticks in the last minute (time-decayed count, tau 60 s)
    "volume_1m",  # traded size in the last minute (time-decayed, tau 60 s)
    "rsi_14",  # Wilder's RSI over the last 14 mid changes, centred: RSI - 50
    "vol_bp",  # EW standard deviation of ret_bp, tau 60 s
    "mom_bp",  # mid minus its 30-second EW mean, bp
    "mom_20_bp",  # sum of the last 20 returns, bp
    "imbalance",  # (bid_size - ask_size) / (bid_size + ask_size); 0 without sizes
    "last_move_sign",  # sign of the last non-zero mid change: -1, 0, +1
    "last_move_age_s",  # seconds since the mid last changed
    "trade_sign_1m",  # EW mean of trade signs (+1 at/above ask side, -1 at/below bid), tau 60 s
    "reversal",  # last_move_sign * spread-normalized size of that move (bid-ask bounce proxy)
)
# v2: quote-dynamics features (docs/features.md, docs/ml.md: +0.03..0.07 AUC with boosted trees)
SIDE_FEATURES = (
    "dev_05s_bp",  # side minus its 0.5-second EW mean, bp of mid
    "dev_2s_bp",  # ... 2-second EW mean
    "dev_10s_bp",  # ... 10-second EW mean
    "dev_60s_bp",  # ... 60-second EW mean
    "pos_10",  # position of the side in the range of its last 10 values: 0 low .. 1 high
    "dmed_10_bp",  # side minus the median of its last 10 values, bp of mid
    "last_change_bp",  # the side's last non-zero change, bp of mid
    "range_10_bp",  # max - min of the side's last 10 values, bp of mid
)
QUOTE_FEATURE_NAMES = (
    "mid_dev_1s",  # mid minus its 1-second EW mean, in spreads
    "mid_dev_5s",  # ... 5-second EW mean, in spreads
    "mid_dev_20s",  # ... 20-second EW mean, in spreads
    "bid_flow_2s",  # time-decayed sum of bid changes (tau 2 s), in spreads
    "ask_flow_2s",  # time-decayed sum of ask changes (tau 2 s), in spreads
    "bid_flow_10s",  # ... tau 10 s
    "ask_flow_10s",  # ... tau 10 s
    "updown_5s",  # time-decayed sum of the signs of quote changes (bid + ask moves), tau 5 s
    "activity_5s",  # time-decayed tick count, tau 5 s
    "spread_rel",  # spread over its 5-minute EW mean
    "d_spread_bp",  # change of the spread since the previous tick, bp
    "last_bid_sign",  # sign of the bid's last non-zero change
    "last_ask_sign",  # sign of the ask's last non-zero change
    "bid_age_s",  # seconds since the bid last changed
    "ask_age_s",  # seconds since the ask last changed
) + tuple(f"{side}_{name}" for side in ("bid", "ask") for name in SIDE_FEATURES)
# v3: order flow from quote sizes and trades (docs/features.md, session 22: chosen on the
# equity train days by bench/features_book.py); 0 on feeds without sizes or trades
BOOK_FEATURE_NAMES = (
    "ofi_1s",  # order-flow imbalance at the best quotes, time-decayed (tau 1 s), in EW depths
    "ofi_10s",  # ... tau 10 s
    "tflow_5s",  # signed trade volume over trade volume, time-decayed (tau 5 s): -1 .. +1
    "tflow_60s",  # ... tau 60 s
)
# v4: the tick-level regime of the mid's moves (docs/features.md, session 23: chosen on the
# train days of every instrument by bench/features_regime.py)
REGIME_FEATURE_NAMES = (
    "persist_20",  # last_move_sign * (1 - 2 * EW share of moves reversing the one before, span 20)
    "persist_200",  # ... span 200: the next move's expected sign, +1 up, -1 down
)
FEATURE_NAMES = CORE_FEATURE_NAMES + QUOTE_FEATURE_NAMES + BOOK_FEATURE_NAMES + REGIME_FEATURE_NAMES
N_FEATURES = len(FEATURE_NAMES)
RSI_N = 14
MOM_N = 20
# A mid within this many bp of the previous one is the previous one: (b + d + a - d) / 2 need
# not equal (b + a) / 2 bit for bit, and such float rounding (about 1e-12 bp) counted as a
# mid move, with a random sign, in the features, the labels and the drift statistics.
# Session 34: 1,574 of 62,776 mid "moves" on OANDA's EURUSD 2014-05-15, 11 of 135,614 on
# FXCM's; a real move is at least half a price step, 1e-3 bp even at 0.01 on 50,000.
SAME_BP = 1e-6
SIDE_N = 10

# --- state layout: doubles (NaN = "never set") -------------------------------------------
PREV_MID, PREV_BID, PREV_ASK = 0, 1, 2
LAST_MOVE_SIGN, LAST_MOVE_BP, AVG_GAIN, AVG_LOSS = 3, 4, 5, 6
ACTIVITY, VOLUME = 7, 9  # DecayedCount: total, last_t
RET_VAR, SPREAD_VAR = 11, 14  # TimeEWVar: mean, var, last_t
MID_MEAN, TRADE_SIGN = 17, 19  # TimeEWMean: mean, last_t
RECENT_SUM, RECENT = 21, 22  # sum of the last MOM_N returns, their ring
PREV_SPREAD = RECENT + MOM_N  # 42
MID_MEANS = PREV_SPREAD + 1  # 3 TimeEWMean (1, 5, 20 s)
FLOWS = MID_MEANS + 6  # 4 DecayedCount (2, 2, 10, 10 s)
UPDOWN = FLOWS + 8
ACTIVITY_5S = UPDOWN + 2
SIDE_MEANS, SIDE_RECENT = 0, 8  # within a side block: 4 TimeEWMean, ring of SIDE_N
SIDE_LAST, SIDE_CHANGE_BP, SIDE_CHANGE_T = SIDE_RECENT + SIDE_N, SIDE_RECENT + SIDE_N + 1, 20
SIDE_SIZE = 21
BID_SIDE = ACTIVITY_5S + 2  # 61
ASK_SIDE = BID_SIDE + SIDE_SIZE  # 82
BOOK = ASK_SIDE + SIDE_SIZE  # 103: v3
PREV_BID_SIZE, PREV_ASK_SIZE = BOOK, BOOK + 1  # sizes carried forward (NaN: never known)
OFI = BOOK + 2  # 2 DecayedCount (1, 10 s)
DEPTH = OFI + 4  # TimeEWMean of (bid size + ask size) / 2, tau 60 s
TFLOW = DEPTH + 2  # per tau (5, 60 s): DecayedCount of signed volume, then of volume
REVERSALS = TFLOW + 8  # 119: v4, EW share of reversing moves per span (20, 200 moves)
FLOATS = REVERSALS + 2  # 121
# --- integers ------------------------------------------------------------------------------
HAS_PREV, PREV_TS, LAST_MOVE_TS, RSI_COUNT = 0, 1, 2, 3
RECENT_COUNT, RECENT_HEAD = 4, 5
BID_COUNT, BID_HEAD, ASK_COUNT, ASK_HEAD = 6, 7, 8, 9
INTS = 10
NO_TS = -1
_MID_TAUS = (1.0, 5.0, 20.0)
_FLOW_TAUS = (2.0, 2.0, 10.0, 10.0)
_SIDE_TAUS = (0.5, 2.0, 10.0, 60.0)
_OFI_TAUS = (1.0, 10.0)
_TFLOW_TAUS = (5.0, 60.0)
_REVERSAL_SPANS = (20.0, 200.0)
DEPTH_TAU = 60.0


def new_state(symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty state for ``symbols`` symbols: (doubles, integers)."""
    floats, ints = np.zeros((symbols, FLOATS)), np.zeros((symbols, INTS), np.int64)
    for k in range(symbols):
        reset(floats[k], ints[k])
    return floats, ints


@njit(cache=True)
def reset(s: np.ndarray, ints: np.ndarray) -> None:
    """Set one symbol's state (a row of each array) to that of a symbol never seen."""
    s[:] = 0.0
    for col in (
        PREV_BID,
        PREV_ASK,
        ACTIVITY + 1,
        VOLUME + 1,
        RET_VAR + 2,
        SPREAD_VAR + 2,
        MID_MEAN + 1,
        TRADE_SIGN + 1,
        PREV_SPREAD,
        PREV_BID_SIZE,
        PREV_ASK_SIZE,
        DEPTH + 1,
        UPDOWN + 1,
        ACTIVITY_5S + 1,
    ):
        s[col] = math.nan
    for k in range(3):
        s[MID_MEANS + 2 * k + 1] = math.nan
    for k in range(4):
        s[FLOWS + 2 * k + 1] = math.nan
        s[TFLOW + 2 * k + 1] = math.nan
    for k in range(2):
        s[OFI + 2 * k + 1] = math.nan
    for k in range(2):
        s[REVERSALS + k] = 0.5  # no move seen: neither bounce nor trend
    for side in (BID_SIDE, ASK_SIDE):
        for k in range(4):
            s[side + SIDE_MEANS + 2 * k + 1] = math.nan
        s[side + SIDE_LAST] = math.nan
        s[side + SIDE_CHANGE_T] = math.nan
    ints[:] = 0
    ints[LAST_MOVE_TS] = NO_TS


# --- time-decayed statistics (docs/features.md): decay by elapsed time, not per update ---
@njit(cache=True)
def ew_mean(s: np.ndarray, at: int, tau: float, x: float, t: float) -> float:
    """TimeEWMean at ``s[at]`` (mean, last_t): alpha = 1 - exp(-dt / tau)."""
    if math.isnan(s[at + 1]):
        s[at] = x
    else:
        alpha = 1.0 - math.exp(-max(t - s[at + 1], 0.0) / tau)
        s[at] += alpha * (x - s[at])
    s[at + 1] = t
    return s[at]


@njit(cache=True)
def ew_var(s: np.ndarray, at: int, tau: float, x: float, t: float) -> float:
    """TimeEWVar at ``s[at]`` (mean, var, last_t), West's update; returns the variance."""
    if math.isnan(s[at + 2]):
        s[at] = x
        s[at + 1] = 0.0
    else:
        alpha = 1.0 - math.exp(-max(t - s[at + 2], 0.0) / tau)
        diff = x - s[at]
        incr = alpha * diff
        s[at] += incr
        s[at + 1] = (1.0 - alpha) * (s[at + 1] + diff * incr)
    s[at + 2] = t
    return s[at + 1]


@njit(cache=True)
def decayed(s: np.ndarray, at: int, tau: float, weight: float, t: float) -> float:
    """DecayedCount at ``s[at]`` (total, last_t): a sum of weights fading with ``tau``."""
    if not math.isnan(s[at + 1]):
        s[at] *= math.exp(-max(t - s[at + 1], 0.0) / tau)
    s[at] += weight
    s[at + 1] = t
    return s[at]


@njit(cache=True)
def _sign(v: float) -> float:
    return 0.0 if v == 0 else math.copysign(1.0, v)


@njit(cache=True)
def _side(s, ints, base, count_at, price, t, mid, out, at) -> float:
    """One side of the book: its 8 features into ``out[at:at + 8]``; returns its age (s)."""
    if math.isnan(price):
        for k in range(8):
            out[at + k] = 0.0
        return 0.0
    for k in range(4):
        out[at + k] = (
            (price - ew_mean(s, base + SIDE_MEANS + 2 * k, _SIDE_TAUS[k], price, t)) / mid * 1e4
        )
    ring = base + SIDE_RECENT
    count, head = ints[count_at], ints[count_at + 1]
    if count < SIDE_N:
        s[ring + (head + count) % SIDE_N] = price
        count += 1
    else:
        s[ring + head] = price
        head = (head + 1) % SIDE_N
    ints[count_at], ints[count_at + 1] = count, head
    values = np.empty(count)
    for k in range(count):
        values[k] = s[ring + (head + k) % SIDE_N]
    low, high = values.min(), values.max()
    values.sort()
    median = values[count // 2]
    last = s[base + SIDE_LAST]
    if not math.isnan(last) and price != last:
        s[base + SIDE_CHANGE_BP] = (price - last) / mid * 1e4
        s[base + SIDE_CHANGE_T] = t
    s[base + SIDE_LAST] = price
    out[at + 4] = (price - low) / (high - low) if high > low else 0.5
    out[at + 5] = (price - median) / mid * 1e4
    out[at + 6] = s[base + SIDE_CHANGE_BP]
    out[at + 7] = (high - low) / mid * 1e4
    changed = s[base + SIDE_CHANGE_T]
    return t - changed if not math.isnan(changed) else 0.0


@njit(cache=True)
def _book(s, first, bid, ask, tick_bid_size, tick_ask_size, t, out, at) -> None:
    """The v3 features into ``out[at:at + 4]``, before the previous quote moves on.

    OFI (Cont, Kukanov and Stoikov 2014) of one update: the bid's size if the bid rose or
    stayed, minus the previous bid size if it fell or stayed; minus the ask's size if the
    ask fell or stayed, plus the previous ask size if it rose or stayed. 0 unless both
    quotes and sizes, now and before, are known.
    """
    bid_size = tick_bid_size if not math.isnan(tick_bid_size) else s[PREV_BID_SIZE]
    ask_size = tick_ask_size if not math.isnan(tick_ask_size) else s[PREV_ASK_SIZE]
    prev_bid, prev_ask = s[PREV_BID], s[PREV_ASK]
    prev_bid_size, prev_ask_size = s[PREV_BID_SIZE], s[PREV_ASK_SIZE]
    e = 0.0
    if not first and not (
        math.isnan(bid) or math.isnan(ask) or math.isnan(prev_bid) or math.isnan(prev_ask)
        or math.isnan(bid_size) or math.isnan(ask_size)
        or math.isnan(prev_bid_size) or math.isnan(prev_ask_size)
    ):  # fmt: skip
        if bid >= prev_bid:
            e += bid_size
        if bid <= prev_bid:
            e -= prev_bid_size
        if ask <= prev_ask:
            e -= ask_size
        if ask >= prev_ask:
            e += prev_ask_size
    if not math.isnan(bid_size) and not math.isnan(ask_size):
        ew_mean(s, DEPTH, DEPTH_TAU, 0.5 * (bid_size + ask_size), t)
    depth = s[DEPTH] if not math.isnan(s[DEPTH + 1]) else 0.0
    for k in range(2):
        total = decayed(s, OFI + 2 * k, _OFI_TAUS[k], e, t)
        out[at + k] = total / depth if depth > 0 else 0.0
        volume = s[TFLOW + 4 * k + 2]
        out[at + 2 + k] = s[TFLOW + 4 * k] / volume if volume > 0 else 0.0
    s[PREV_BID_SIZE], s[PREV_ASK_SIZE] = bid_size, ask_size


@njit(cache=True)
def update(s, ints, ts, tick_bid, tick_ask, bid_size, ask_size, last, last_size, out) -> bool:
    """Apply one tick to a symbol's state (``s`` doubles, ``ints`` integers) and write its
    N_FEATURES values to ``out``; False (state untouched) when the tick gives no mid.

    One-sided quotes complete the book carried forward from earlier ticks; the mid is
    (bid + ask) / 2, else the last trade, else the one side known.
    """
    t = ts / 1e6
    bid = tick_bid if not math.isnan(tick_bid) else s[PREV_BID]
    ask = tick_ask if not math.isnan(tick_ask) else s[PREV_ASK]
    two_sided = not math.isnan(bid) and not math.isnan(ask)
    if two_sided:
        mid = (bid + ask) / 2
    elif not math.isnan(last) and last != 0.0:
        mid = last
    elif not math.isnan(bid) and bid != 0.0:
        mid = bid
    else:
        mid = ask
    if math.isnan(mid) or mid <= 0:
        return False
    if ints[HAS_PREV] != 0 and abs(mid - s[PREV_MID]) <= SAME_BP * 1e-4 * s[PREV_MID]:
        mid = s[PREV_MID]  # float rounding, not a move (SAME_BP)
    spread_bp = (ask - bid) / mid * 1e4 if two_sided else 0.0
    activity = decayed(s, ACTIVITY, 60.0, 1.0, t)
    volume = decayed(s, VOLUME, 60.0, last_size if not math.isnan(last_size) else 0.0, t)
    spread_var = ew_var(s, SPREAD_VAR, 300.0, spread_bp, t)
    spread_z = (spread_bp - s[SPREAD_VAR]) / math.sqrt(spread_var) if spread_var > 1e-12 else 0.0
    mid_mean = ew_mean(s, MID_MEAN, 30.0, mid, t)
    if not math.isnan(last):
        reference = (bid + ask) / 2 if two_sided else s[PREV_MID]
        trade = 1.0 if last > reference else (-1.0 if last < reference else 0.0)
        ew_mean(s, TRADE_SIGN, 60.0, trade, t)
        size = last_size if not math.isnan(last_size) else 1.0
        for k in range(2):
            decayed(s, TFLOW + 4 * k, _TFLOW_TAUS[k], trade * size, t)
            decayed(s, TFLOW + 4 * k + 2, _TFLOW_TAUS[k], size, t)

    first = ints[HAS_PREV] == 0
    prev_bid, prev_ask = s[PREV_BID], s[PREV_ASK]
    ret_bp = 0.0 if first else math.log(mid / s[PREV_MID]) * 1e4
    d_bid = (
        (bid - prev_bid) / mid * 1e4 if not math.isnan(bid) and not math.isnan(prev_bid) else 0.0
    )
    d_ask = (
        (ask - prev_ask) / mid * 1e4 if not math.isnan(ask) and not math.isnan(prev_ask) else 0.0
    )
    dt_s = 0.0 if first else (ts - ints[PREV_TS]) / 1e6
    if ret_bp != 0.0:
        sign = 1.0 if ret_bp > 0 else -1.0
        if s[LAST_MOVE_SIGN] != 0.0:  # a move before this one: did this one reverse it?
            flip = 1.0 if sign != s[LAST_MOVE_SIGN] else 0.0
            for k in range(2):
                s[REVERSALS + k] += 2.0 / (_REVERSAL_SPANS[k] + 1.0) * (flip - s[REVERSALS + k])
        s[LAST_MOVE_SIGN] = sign
        ints[LAST_MOVE_TS] = ts
        s[LAST_MOVE_BP] = ret_bp
    if not first:
        gain, loss = max(ret_bp, 0.0), max(-ret_bp, 0.0)
        ints[RSI_COUNT] += 1
        n = min(ints[RSI_COUNT], RSI_N)
        s[AVG_GAIN] += (gain - s[AVG_GAIN]) / n
        s[AVG_LOSS] += (loss - s[AVG_LOSS]) / n
        count, head = ints[RECENT_COUNT], ints[RECENT_HEAD]
        if count == MOM_N:
            s[RECENT_SUM] -= s[RECENT + head]
            s[RECENT + head] = ret_bp
            ints[RECENT_HEAD] = (head + 1) % MOM_N
        else:
            s[RECENT + (head + count) % MOM_N] = ret_bp
            ints[RECENT_COUNT] = count + 1
        s[RECENT_SUM] += ret_bp
    vol_var = ew_var(s, RET_VAR, 60.0, ret_bp, t) if not first else 0.0

    # v2 quote dynamics, before the previous-tick state moves on
    scale = max(spread_bp, 1e-9)
    q = len(CORE_FEATURE_NAMES)
    for k in range(3):
        out[q + k] = (mid - ew_mean(s, MID_MEANS + 2 * k, _MID_TAUS[k], mid, t)) / mid * 1e4 / scale
    for k in range(4):
        change = d_bid if k % 2 == 0 else d_ask
        out[q + 3 + k] = decayed(s, FLOWS + 2 * k, _FLOW_TAUS[k], change, t) / scale
    moved = d_bid + d_ask
    still = abs(moved) <= SAME_BP  # the bid and ask moved apart by the same step
    out[q + 7] = decayed(s, UPDOWN, 5.0, 0.0 if still else math.copysign(1.0, moved), t)
    out[q + 8] = decayed(s, ACTIVITY_5S, 5.0, 1.0, t)
    typical = s[SPREAD_VAR]
    bid_age = _side(s, ints, BID_SIDE, BID_COUNT, bid, t, mid, out, q + 15)
    ask_age = _side(s, ints, ASK_SIDE, ASK_COUNT, ask, t, mid, out, q + 23)
    out[q + 9] = spread_bp / typical if typical > 0 else 1.0
    prev_spread = s[PREV_SPREAD]
    out[q + 10] = 0.0 if math.isnan(prev_spread) else spread_bp - prev_spread
    out[q + 11] = _sign(s[BID_SIDE + SIDE_CHANGE_BP])
    out[q + 12] = _sign(s[ASK_SIDE + SIDE_CHANGE_BP])
    out[q + 13] = bid_age
    out[q + 14] = ask_age
    book = len(CORE_FEATURE_NAMES) + len(QUOTE_FEATURE_NAMES)
    _book(s, ints[HAS_PREV] == 0, bid, ask, bid_size, ask_size, t, out, book)
    for k in range(2):
        out[book + 4 + k] = s[LAST_MOVE_SIGN] * (1.0 - 2.0 * s[REVERSALS + k])

    ints[HAS_PREV] = 1
    ints[PREV_TS] = ts
    s[PREV_MID], s[PREV_BID], s[PREV_ASK] = mid, bid, ask
    s[PREV_SPREAD] = spread_bp
    total = s[AVG_GAIN] + s[AVG_LOSS]
    rsi = 100.0 * s[AVG_GAIN] / total if total > 0 else 50.0
    bs = bid_size if not math.isnan(bid_size) else 0.0
    az = ask_size if not math.isnan(ask_size) else 0.0
    sizes = bs + az
    age = (ts - ints[LAST_MOVE_TS]) / 1e6 if ints[LAST_MOVE_TS] != NO_TS else dt_s
    out[0] = ret_bp
    out[1] = spread_bp
    out[2] = spread_z
    out[3] = d_bid
    out[4] = d_ask
    out[5] = dt_s
    out[6] = activity
    out[7] = volume
    out[8] = rsi - 50.0
    out[9] = math.sqrt(max(vol_var, 0.0))
    out[10] = (mid - mid_mean) / mid * 1e4
    out[11] = s[RECENT_SUM]
    out[12] = (bs - az) / sizes if sizes > 0 else 0.0
    out[13] = s[LAST_MOVE_SIGN]
    out[14] = age
    out[15] = s[TRADE_SIGN]
    out[16] = s[LAST_MOVE_SIGN] * min(abs(s[LAST_MOVE_BP]) / max(spread_bp, 1e-9), 10.0)
    return True
