"""Profile detectors per symbol: the spread and the move size against what the instrument
usually shows at that time of day, learnt on earlier days (docs/drift.md, session 27).

Two statistics per symbol, from the features ``spread_bp`` and ``ret_bp``:

* **spread**: a fast EW mean (span 200 ticks) of log(spread / mid), over the quotes with a
  spread (``LOCKED``);
* **move**: a fast EW mean (span 20 moves) of log |mid move| (from the first move on).

A **profile** (built by ``build`` from recorded days, one file per day, and saved as JSON by
``spark drift profile``) holds, per symbol, the median of each statistic per 30-minute
bucket of the UTC day over those days, and two limits per statistic, both scored leave one
day out (each profile day against a profile of the other days), from the residuals held
for ``hold`` ticks on those days: the upper, the least limit above which they rise at most
``budget`` times per 100k ticks (``budgeted``; ``budget`` None: their largest); the lower,
the same below. Live, per tick:
residual = statistic − the profile of the tick's bucket (minus its own slow EW mean over
``slow`` ticks when ``slow`` > 0); a statistic alarms when its residual has stayed above
upper + log(margin), or below lower − log(margin), for ``hold`` ticks in a row (a switch
persists, a spike does not); once per excursion, re-armed when it comes back. A rise is a
wider spread or larger moves than usual at that time of day, a fall a narrower spread or
smaller moves (e.g. a switch to a tighter instrument). Nothing in the first ``warm`` ticks
of a symbol, nothing for a symbol or a bucket the profile lacks.

Chosen by `bench/drift_profile_rule.py` on train streams (third and fourth runs, session
28): hold 1,000, no slow offset, margin 1.5, both sides, limits at a budget of 1 alarm per
100k ticks, locked or crossed quotes (spread <= 0) skipped by the spread statistic.
The readable definition is ``tests/oracles.ProfileDetector``; a test compares them alarm by
alarm on real ticks across batch boundaries.

**Kinds of market** (session 30). An instrument seen for the first time has no earlier days.
A profile may hold an entry per kind of market (``KindEntry``, ``build_kind``: ``spark
drift profile --kind fx=EURUSD,NZDUSD``) and say which kind watches a symbol it has no
entry of (``unseen``: by symbol, by shape, ``@pair`` or ``@ticker`` (``shape_of``, session
31), or ``ANY``). Such a symbol's residual is its statistic
less its own slow EW mean (no time of day), with the kind's settings (``KIND_*``, chosen by
the fifth run of bench/drift_self_rule.py: warm-up 15,000, slow 5,000, hold 1,000, budget
0.25, margin 1.5) and limits budgeted on the days of the kind's instruments. The kernel
takes its settings per symbol (``config[s]``) for this.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from spark.errors import SparkError
from spark.features.kernel import SAME_BP

BUCKET_US = 1_800 * 10**6
DAY_US = 86_400 * 10**6
N_BUCKETS = DAY_US // BUCKET_US
SPREAD_SPAN, MOVE_SPAN = 200, 20
HOLD, SLOW, MARGIN, WARM = 1_000, 0, 1.5, 5_000  # the protocol's choice (third run)
BUDGET = 1.0  # the limits: a budget of alarms per 100k ticks (None: the largest residual)
# a locked or crossed quote (spread <= 0) in the spread statistic: "floor" (log 1e-7, as
# until session 28) or "skip" (it leaves the statistic as it was; the fourth run's choice)
LOCKED = "skip"
LOCKED_KINDS = ("floor", "skip")
# the alerts' detector names, by alarm kind: a rise above the upper limit of each statistic,
# then a fall below the lower one
KINDS = ("profile_spread_up", "profile_move_up", "profile_spread_down", "profile_move_down")
FEATURES = ("spread_bp", "ret_bp", "spread_bp", "ret_bp")  # each kind's source feature
# an instrument the profile has no day of, watched by the entry of its kind of market: the
# two statistics against their own slow mean (no time of day), limits budgeted on the days of
# the other instruments of that kind (bench/drift_self_rule.py, fifth run, session 30)
KIND_HOLD, KIND_SLOW, KIND_MARGIN, KIND_WARM, KIND_BUDGET = 1_000, 5_000, 1.5, 15_000, 0.25
# the kind entry's residual is taken against its slow mean as it was KIND_LAG valid values
# before, so a step is seen whole for the hold (the seventh run, session 35, with the
# payrolls release windows left out of the days its limits are learnt on)
KIND_LAG = 1_000
PAYROLLS = "payrolls"  # build_kind's quiet spans: the payrolls release windows of its days
ANY = "*"  # in ``unseen``: every symbol the profile has no entry of
# in ``unseen``: every symbol of a shape (``shape_of``, session 31): a currency pair, a ticker
PAIR, TICKER = "@pair", "@ticker"
SHAPES = (PAIR, TICKER)
# ISO 4217 currency codes; the metals' and funds' X codes (XAU, XAG, XDR, ...) left out: no
# such instrument is in the data the fx entry was measured on
_ISO_4217 = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
BWP BYN BZD CAD CDF CHF CLP CNH CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS
TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR
ZMW ZWL
"""
CURRENCIES = frozenset(_ISO_4217.split())
_SEPARATORS = str.maketrans("", "", "/_-. ")
FORMAT = 3  # 3: kinds of market (session 30); 2 (no kinds) is still read
# per-symbol state (doubles): the two statistics, the move count, the slow means of the two
# residuals (NaN: none yet), the runs beyond each limit and fired flags (by alarm kind),
# ticks seen
FAST_S, FAST_M, MOVES, SLOW_S, SLOW_M = range(5)
RUN, FIRED, SEEN = 5, 9, 13  # RUN + kind, FIRED + kind
VALID_S = 14  # VALID_S + j: valid residuals of statistic j so far (the lag's ring position)
N_STATE = 16


log = logging.getLogger(__name__)


def shape_of(symbol: str) -> str | None:
    """``PAIR`` for a currency pair (two ISO 4217 codes, separated or not, any case:
    EURUSD, EUR/USD, eur_usd), ``TICKER`` for a stock ticker (1 to 5 letters and an optional
    class letter after a dot or dash, upper case: BAC, BRK.B), else None."""
    bare = symbol.translate(_SEPARATORS).upper()
    if len(bare) == 6 and bare[:3] in CURRENCIES and bare[3:] in CURRENCIES:
        return PAIR
    head, dot, tail = symbol.replace("-", ".").partition(".")
    if (
        1 <= len(head) <= 5
        and head.isascii()
        and head.isalpha()
        and head.isupper()
        and (not dot or (len(tail) == 1 and tail.isascii() and tail.isalpha() and tail.isupper()))
    ):
        return TICKER
    return None


class ProfileError(SparkError):
    """A profile file that cannot be used."""


@njit(cache=True)
def _log_spread(spread_bp: float) -> float:
    return math.log(max(spread_bp * 1e-4, 1e-7))


@njit(cache=True)
def _fresh(st) -> None:
    st[FAST_S] = np.nan  # no spread yet
    st[FAST_M] = 0.0
    st[MOVES] = 0.0
    st[SLOW_S] = np.nan
    st[SLOW_M] = np.nan
    for k in range(4):
        st[RUN + k] = 0.0
        st[FIRED + k] = 0.0
    st[SEEN] = 0.0
    st[VALID_S] = 0.0
    st[VALID_S + 1] = 0.0


@njit(cache=True)
def run(slot, ts, spread_bp, ret_bp, valid, reset, config, profile, limit, state, ring,
        out_stat, out_tick, out_kind, out_value) -> int:  # fmt: skip
    """Step each valid tick's symbol (``config[s]``, ``Profile.config``: its hold, slow,
    margin, warm, 1 to let a locked or crossed quote leave the spread statistic as it was,
    the slow mean's weight, log margin and the lag: settings per symbol, as a symbol watched
    by its kind of market's entry has that entry's). ``ring[s, j]``: with a lag, the slow
    mean before each of statistic j's last ``lag`` valid residuals (``lagged_dev``), the
    residual being taken against the one ``lag`` values back. ``profile[s, bucket, j]``
    and ``limit[s, k]`` (by alarm kind: upper spread, upper move, lower spread, lower move;
    NaN: none);
    ``out_stat[i]`` gets tick i's two residuals (NaN: none); returns the number of alarms
    written to ``out_*`` (kinds as ``KINDS``)."""
    a_s, a_m = 2.0 / (SPREAD_SPAN + 1.0), 2.0 / (MOVE_SPAN + 1.0)
    alarms = 0
    for i in range(slot.shape[0]):
        s = slot[i]
        st = state[s]
        if reset[i]:
            _fresh(st)
        out_stat[i, 0] = np.nan
        out_stat[i, 1] = np.nan
        if not valid[i]:
            continue
        c = config[s]
        hold, slow, warm, skip_locked, a_slow, extra = c[0], c[1], c[3], c[4] > 0, c[5], c[6]
        lag = int(c[7])
        if spread_bp[i] > 0 or not skip_locked:
            x = _log_spread(spread_bp[i])
            if st[SEEN] == 0 or math.isnan(st[FAST_S]):
                st[FAST_S] = x
            else:
                st[FAST_S] += a_s * (x - st[FAST_S])
        a = abs(ret_bp[i]) * 1e-4 if st[SEEN] > 0 and math.isfinite(ret_bp[i]) else 0.0
        if a > 0:
            la = math.log(a)
            st[FAST_M] = la if st[MOVES] == 0 else st[FAST_M] + a_m * (la - st[FAST_M])
            st[MOVES] += 1.0
        st[SEEN] += 1.0
        bucket = (ts[i] % DAY_US) // BUCKET_US
        for j in range(2):
            value = st[FAST_S] if j == 0 else (st[FAST_M] if st[MOVES] > 0 else np.nan)
            r = value - profile[s, bucket, j]
            if math.isnan(r):
                for k in (j, j + 2):
                    st[RUN + k] = 0.0
                    st[FIRED + k] = 0.0
                continue
            if slow > 0:
                if math.isnan(st[SLOW_S + j]):
                    st[SLOW_S + j] = r
                reference = st[SLOW_S + j]
                if lag > 0:  # the mean as it was ``lag`` valid values before (the first's)
                    k = int(st[VALID_S + j])
                    if k >= lag:
                        reference = ring[s, j, k % lag]
                    elif k > 0:
                        reference = ring[s, j, 0]
                    ring[s, j, k % lag] = st[SLOW_S + j]
                    st[VALID_S + j] = k + 1
                dev = r - reference
                st[SLOW_S + j] += a_slow * (r - st[SLOW_S + j])
                r = dev
            out_stat[i, j] = r
            for k in (j, j + 2):
                beyond = r > limit[s, k] + extra if k < 2 else r < limit[s, k] - extra
                if beyond:
                    st[RUN + k] += 1.0
                else:
                    st[RUN + k] = 0.0
                    st[FIRED + k] = 0.0
                if st[RUN + k] >= hold and st[SEEN] > warm and st[FIRED + k] == 0.0:
                    out_tick[alarms], out_kind[alarms], out_value[alarms] = i, k, r
                    alarms += 1
                    st[FIRED + k] = 1.0
    return alarms


@dataclass
class KindEntry:
    """A kind of market's entry: the four limits (as a symbol's) of the two statistics
    against their own slow mean, learnt on the days of ``instruments``, and its settings."""

    limits: np.ndarray
    instruments: list[str]
    days: int
    hold: int = KIND_HOLD
    slow: float = KIND_SLOW
    margin: float = KIND_MARGIN
    warm: int = KIND_WARM
    budget: float = KIND_BUDGET
    lag: int = 0  # the slow mean the residual is taken against: as it was this many back
    # minutes after the FX day's rollover (17:00 New York, from 5 before) that its symbols'
    # gate rule is muted in and its limits were learnt without (0: none; session 36)
    rollover: int = 0


def settings_row(hold, slow, margin, warm, locked, lag=0) -> np.ndarray:
    """One symbol's row of the kernel's ``config``: hold, slow, margin, warm, skip locked
    quotes (1) or not, and, worked out once here rather than per tick, the slow mean's
    weight 2 / (slow + 1) (0: no slow offset) and log margin; then the lag (0: none)."""
    skip = 1.0 if locked == "skip" else 0.0
    a_slow = 2.0 / (slow + 1.0) if slow > 0 else 0.0
    row = [hold, slow, margin, warm, skip, a_slow, math.log(margin), lag if slow > 0 else 0]
    return np.array(row, np.float64)


class Profile:
    """Per symbol: the bucket medians (N_BUCKETS × 2, NaN: no data) and four limits (upper
    spread, upper move, lower spread, lower move; NaN: none); the rule's settings (hold,
    slow, margin, warm). ``kinds``: entries by kind of market (``KindEntry``); ``unseen``:
    which kind watches a symbol the profile has no entry of (by symbol, by shape, or
    ``ANY``)."""

    def __init__(self, symbols: dict[str, tuple[np.ndarray, np.ndarray]], hold=HOLD, slow=SLOW,
                 margin=MARGIN, warm=WARM, days: dict[str, list[str]] | None = None,
                 budget=None, locked=LOCKED, kinds: dict[str, KindEntry] | None = None,
                 unseen: dict[str, str] | None = None):  # fmt: skip
        if locked not in LOCKED_KINDS:
            raise ProfileError(f"locked must be one of {', '.join(LOCKED_KINDS)}, not {locked!r}")
        self.locked = locked
        self.symbols = symbols
        self.hold, self.slow, self.margin, self.warm = hold, slow, margin, warm
        self.days = days or {}
        self.budget = budget  # how the limits were set (``limits``): None, the largest
        self.kinds = kinds or {}
        self.unseen = unseen or {}
        odd = sorted(k for k in self.unseen if k.startswith("@") and k not in SHAPES)
        if odd:
            raise ProfileError(
                f"unseen shape(s) {', '.join(odd)} are not known (shapes: {', '.join(SHAPES)})"
            )
        missing = sorted(set(self.unseen.values()) - set(self.kinds))
        if missing:
            raise ProfileError(
                f"unseen symbols are given to kind(s) {', '.join(missing)} that the profile has "
                f"no entry of (it has: {', '.join(sorted(self.kinds)) or 'none'})"
            )

    def config(self, kind: str | None = None) -> np.ndarray:
        """The kernel's settings of a symbol's own entry, or (``kind``) of a kind's."""
        if kind is None:
            return settings_row(self.hold, self.slow, self.margin, self.warm, self.locked)
        k = self.kinds[kind]
        return settings_row(k.hold, k.slow, k.margin, k.warm, self.locked, k.lag)

    @property
    def most_lag(self) -> int:
        """The longest lag of any entry (the ring each symbol keeps)."""
        return max([0, *(int(k.lag) for k in self.kinds.values() if k.slow > 0)])

    def kind_of(self, name: str) -> str | None:
        """The kind of market that watches ``name``: None if it has its own entry or no kind
        is given to it. Looked up by the exact name, then its shape (``shape_of``), then
        ``ANY``."""
        if name in self.symbols:
            return None
        if name in self.unseen:
            return self.unseen[name]
        shape = shape_of(name)
        if shape is not None and shape in self.unseen:
            return self.unseen[shape]
        return self.unseen.get(ANY)

    def entry(self, name: str) -> tuple | None:
        """``name``'s (bucket rows, limits, kernel settings, kind or None); None: not watched."""
        if name in self.symbols:
            rows, limits = self.symbols[name]
            return rows, limits, self.config(), None
        kind = self.kind_of(name)
        if kind is None:
            return None
        flat = np.zeros((N_BUCKETS, 2))  # residual = the statistic less its slow mean
        return flat, self.kinds[kind].limits, self.config(kind), kind

    def as_dict(self) -> dict:
        def clean(a):
            return [None if not math.isfinite(v) else round(float(v), 6) for v in a]

        return {
            "format": FORMAT,
            "bucket_s": BUCKET_US // 10**6,
            "hold": self.hold,
            "slow": self.slow,
            "margin": self.margin,
            "warm": self.warm,
            "budget": self.budget,
            "locked": self.locked,
            "symbols": {
                name: {
                    "days": self.days.get(name, []),
                    "spread": clean(medians[:, 0]),
                    "move": clean(medians[:, 1]),
                    "upper": clean(limits[:2]),
                    "lower": clean(limits[2:]),
                }
                for name, (medians, limits) in sorted(self.symbols.items())
            },
            "kinds": {
                name: {
                    "instruments": k.instruments,
                    "days": k.days,
                    "hold": k.hold,
                    "slow": k.slow,
                    "margin": k.margin,
                    "warm": k.warm,
                    "budget": k.budget,
                    **({"lag": k.lag} if k.lag else {}),
                    **({"rollover": k.rollover} if k.rollover else {}),
                    "upper": clean(k.limits[:2]),
                    "lower": clean(k.limits[2:]),
                }
                for name, k in sorted(self.kinds.items())
            },
            "unseen": dict(sorted(self.unseen.items())),
        }

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        try:
            saved = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ProfileError(
                f"cannot read the drift profile {path}: {exc.strerror or exc}; build one with "
                "`spark drift profile`"
            ) from None
        except ValueError as exc:
            raise ProfileError(f"the drift profile {path} is not JSON: {exc}") from None
        try:
            if (
                saved.get("format") not in (2, FORMAT)
                or saved.get("bucket_s") != BUCKET_US // 10**6
            ):
                raise ValueError(
                    f"format {saved.get('format')!r}, this version reads 2 and {FORMAT}"
                )
            symbols = {}
            for name, entry in saved["symbols"].items():
                medians = np.array(
                    [
                        [np.nan if v is None else float(v) for v in entry[k]]
                        for k in ("spread", "move")
                    ]  # fmt: skip
                ).T
                limits = np.array(
                    [np.nan if v is None else float(v) for v in entry["upper"] + entry["lower"]]
                )
                if medians.shape != (N_BUCKETS, 2) or limits.shape != (4,):
                    raise ValueError(f"{name}: {N_BUCKETS} buckets and 2 + 2 limits expected")
                symbols[name] = (medians, limits)
            kinds = {}
            for name, entry in saved.get("kinds", {}).items():
                limits = np.array(
                    [np.nan if v is None else float(v) for v in entry["upper"] + entry["lower"]]
                )
                if limits.shape != (4,):
                    raise ValueError(f"kind {name}: 2 + 2 limits expected")
                kinds[name] = KindEntry(
                    limits, list(entry["instruments"]), int(entry["days"]), int(entry["hold"]),
                    float(entry["slow"]), float(entry["margin"]), int(entry["warm"]),
                    float(entry["budget"]), int(entry.get("lag", 0)),
                    int(entry.get("rollover", 0)),
                )  # fmt: skip
            return cls(
                symbols,
                hold=int(saved["hold"]),
                slow=float(saved["slow"]),
                margin=float(saved["margin"]),
                warm=int(saved["warm"]),
                budget=None if saved.get("budget") is None else float(saved["budget"]),
                locked=saved.get("locked", "floor"),
                days={n: list(e.get("days", [])) for n, e in saved["symbols"].items()},
                kinds=kinds,
                unseen={str(k): str(v) for k, v in saved.get("unseen", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError, ProfileError) as exc:
            raise ProfileError(f"the drift profile {path} cannot be used: {exc}") from None


def day_stats(ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, locked: str = LOCKED) -> np.ndarray:
    """(ticks, 2): the two statistics over one symbol's day, as the live detector computes
    them (run through ``run`` with an empty profile; ``locked`` as ``LOCKED``)."""
    n = len(ts)
    ok = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask > 0)
    mid = (bid + ask) / 2
    with np.errstate(all="ignore"):
        spread_bp = np.where(ok, (ask - bid) / mid * 1e4, np.nan)
        ret_bp = np.zeros(n)
        kept = np.flatnonzero(ok)
        ret_bp[kept[1:]] = np.log(mid[kept[1:]] / mid[kept[:-1]]) * 1e4
        ret_bp[np.abs(ret_bp) <= SAME_BP] = 0.0  # float rounding of the mid, not a move
    profile = np.zeros((1, N_BUCKETS, 2))  # residual = the statistic itself
    limit = np.array([[np.inf, np.inf, -np.inf, -np.inf]])
    state = np.zeros((1, N_STATE))
    _fresh(state[0])
    out = np.empty((n, 2))
    none = np.empty(n, np.int64)
    run(np.zeros(n, np.int64), ts.astype(np.int64), spread_bp, ret_bp, ok, np.zeros(n, np.bool_),
        settings_row(1e18, 0.0, 1.0, 1e18, locked)[None, :], profile, limit,
        state, np.zeros((1, 2, 1)), out, none, none, np.empty(n))  # fmt: skip
    return out


def medians(days: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(N_BUCKETS, 2): the median of each statistic per bucket over ``days`` ((ts, stats))."""
    ts = np.concatenate([d[0] for d in days])
    stats = np.concatenate([d[1] for d in days])
    bucket = (ts % DAY_US) // BUCKET_US
    out = np.full((N_BUCKETS, 2), np.nan)
    for k in np.unique(bucket).tolist():
        for j in range(2):
            column = stats[bucket == k, j]
            column = column[np.isfinite(column)]
            if len(column):
                out[k, j] = np.median(column)
    return out


def held_residuals(ts, stats, rows, hold, slow, low=False, lag=0) -> np.ndarray:
    """(ticks, 2): each tick's residual against ``rows`` (N_BUCKETS × 2 medians), after the
    slow offset (``lag``: the slow mean as it was that many valid values before,
    ``lagged_dev``), held: the least of the last ``hold`` (NaN where any is NaN). A
    statistic alarms where this is above its limit (+ log margin): the value the limits are
    set by. ``low``: the greatest of the last ``hold`` instead, for a fall below a lower
    limit."""
    bucket = (ts % DAY_US) // BUCKET_US
    r = stats - rows[bucket]
    out = np.empty((len(ts), 2))
    for j in range(2):
        x = np.ascontiguousarray(r[:, j])
        x = lagged_dev(x, float(slow), int(lag)) if slow > 0 else x.copy()
        if hold > 1:
            x = -_least(-x, int(hold)) if low else _least(x, int(hold))
        out[:, j] = x
    return out


def limits(scored: list[tuple[np.ndarray, np.ndarray]], hold=HOLD, slow=SLOW, warm=WARM,
           low=False, budget=None):  # fmt: skip
    """The two limits of days ``scored`` ((ts, stats) each), each day's held residuals taken
    after ``warm`` ticks against the medians of the *other* days (leave one day out; NaN:
    none). ``budget`` None: the largest held residual (no day would have alarmed). A number
    (alarms per 100k ticks): the least limit at and above which those days would have
    raised at most ``budget`` per 100k ticks in all (``budgeted``). ``low``: the lowest
    (``held_residuals``' low form), and a fall below it."""
    return limits_of(left_out(scored, hold, slow, warm, low), low, budget)


def left_out(scored, hold=HOLD, slow=SLOW, warm=WARM, low=False) -> list[np.ndarray]:
    """Each of days ``scored``: its held residuals after ``warm`` ticks against the medians
    of the other days (``limits``' input)."""
    held_days = []
    for k, (ts, stats) in enumerate(scored):
        others = medians([d for j, d in enumerate(scored) if j != k])
        held_days.append(held_residuals(ts, stats, others, hold, slow, low)[warm:])
    return held_days


def limits_of(held_days: list[np.ndarray], low=False, budget=None) -> np.ndarray:
    """``limits`` from ``left_out``'s held residuals."""
    worst = np.full(2, np.nan)
    for j in range(2):
        series = [(-h[:, j] if low else h[:, j]) for h in held_days]
        if budget is None:
            tops = [np.nanmax(x) for x in series if np.isfinite(x).any()]
            value = max(tops) if tops else np.nan
        else:
            value = budgeted(series, budget)
        worst[j] = -value if low else value
    return worst


def budgeted(series: list[np.ndarray], budget: float) -> float:
    """The least limit L such that, at L and at every limit above it, the rises of
    ``series`` above the limit (a tick above it after one that was not, or that was NaN, or
    the first tick) number at most ``budget`` per 100k ticks of all the series together
    (NaN: no finite value). Scanned from the top down, it stops at the first limit with more
    rises than allowed and returns the limit above it, so it does not fall through the bulk
    of the residuals, where a series rises over any limit many times."""
    ticks = sum(len(x) for x in series)
    allowed = math.floor(budget * ticks / 1e5 + 1e-9)  # 1e-9: a budget given as k/ticks
    starts, ends = [], []  # a rise happens at limit L when starts[i] <= L < ends[i]
    for x in series:
        if not len(x):
            continue
        before = np.r_[-np.inf, x[:-1]]
        before[~np.isfinite(before)] = -np.inf
        rises = np.isfinite(x) & (x > before)
        starts.append(before[rises])
        ends.append(x[rises])
    if not starts or not sum(len(e) for e in ends):
        return np.nan
    starts, ends = np.sort(np.concatenate(starts)), np.sort(np.concatenate(ends))
    points = np.unique(np.r_[starts[np.isfinite(starts)], ends])[::-1]  # from the top down
    count = np.searchsorted(starts, points, "right") - np.searchsorted(ends, points, "right")
    over = np.flatnonzero(count > allowed)
    if not len(over):
        return float(points[-1])
    if over[0] == 0:  # cannot happen: nothing rises above the greatest end
        return float(points[0])
    return float(points[over[0] - 1])


@njit(cache=True)
def _slow_dev(x, span):
    out = np.full(len(x), np.nan)
    a, m = 2.0 / (span + 1.0), np.nan
    for t in range(len(x)):
        v = x[t]
        if math.isnan(v):
            continue
        if math.isnan(m):
            m = v
        out[t] = v - m
        m += a * (v - m)
    return out


def lagged_dev(x, span, lag):
    """``x`` less its slow EW mean (span ``span``) as it was ``lag`` valid values before
    (NaN values skipped and left NaN; the first ``lag`` valid values against the first
    mean). lag 0: ``_slow_dev``. The kernel's form (``run``) keeps the last ``lag`` means
    in a ring."""
    dev = _slow_dev(x, span)
    if lag == 0:
        return dev
    valid = np.flatnonzero(~np.isnan(x))
    before = x[valid] - dev[valid]  # the slow mean before each valid value
    out = np.full(len(x), np.nan)
    out[valid] = x[valid] - before[np.maximum(np.arange(len(valid)) - lag, 0)]
    return out


@njit(cache=True)
def _least(x, w):
    """The least of the last ``w`` values (NaN if any is NaN), by a monotone deque."""
    n = len(x)
    out = np.full(n, np.nan)
    q = np.empty(n, np.int64)
    head = tail = 0
    last_nan = -1
    for t in range(n):
        v = x[t]
        if math.isnan(v):
            last_nan = t
            head = tail = 0
        else:
            while tail > head and x[q[tail - 1]] >= v:
                tail -= 1
            q[tail] = t
            tail += 1
        while tail > head and q[head] <= t - w:
            head += 1
        if t >= w - 1 and last_nan <= t - w and tail > head:
            out[t] = x[q[head]]
    return out


def build(days: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]], hold=HOLD,
          slow=SLOW, margin=MARGIN, warm=WARM, budget=BUDGET,
          locked=LOCKED) -> Profile:  # fmt: skip
    """A profile from recorded days: ``days[symbol]`` = [(date, ts, bid, ask), ...], one
    entry per day. A symbol needs two days at least (its limits are scored leave one day
    out); one with fewer is left out."""
    symbols, kept_days = {}, {}
    for name, entries in days.items():
        if len(entries) < 2:
            continue
        scored = [(ts, day_stats(ts, bid, ask, locked)) for _, ts, bid, ask in entries]
        bounds = np.r_[
            limits(scored, hold, slow, warm, budget=budget),
            limits(scored, hold, slow, warm, True, budget),
        ]
        symbols[name] = (medians(scored), bounds)
        kept_days[name] = [d for d, *_ in entries]
    return Profile(symbols, hold, slow, margin, warm, kept_days, budget, locked)


def build_kind(days: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]],
               locked=LOCKED, hold=KIND_HOLD, slow=KIND_SLOW, warm=KIND_WARM,
               budget=KIND_BUDGET, margin=KIND_MARGIN, quiet=PAYROLLS,
               lag=KIND_LAG, rollover=0) -> KindEntry:  # fmt: skip
    """A kind of market's entry from the recorded days of its instruments (``build``'s
    input, the kind's instruments only): each day's two statistics against their own slow
    mean over ``slow`` ticks, held ``hold`` ticks, after ``warm`` ticks; the limits at the
    least level those days rise over at most ``budget`` times per 100k ticks (``budgeted``),
    as the fifth run of bench/drift_self_rule.py set them on the other instruments of a kind.
    Needs two days at least. ``quiet``: (k, 2) spans of time whose ticks do not count, as
    a worker muting the gate there sees them; ``PAYROLLS`` (the default): the payrolls
    release windows of those days (``spark.drift.releases``); None: none. ``lag``:
    ``held_residuals``'. ``rollover``: minutes after the FX day's rollover (from 5
    before) left out too, as a worker muting the gate there sees them (0: none)."""
    entries = [e for rows in days.values() for e in rows]
    if len(entries) < 2:
        raise ProfileError(f"a kind of market needs two days at least, {len(entries)} given")
    flat = np.zeros((N_BUCKETS, 2))
    high, low = [], []
    for _, ts, bid, ask in entries:
        stats = day_stats(ts, bid, ask, locked)
        up, down = (held_residuals(ts, stats, flat, hold, slow, side, lag) for side in (0, 1))
        if quiet is not None or rollover:
            from spark.drift.releases import ROLLOVER_BEFORE_S, inside, merged, rollovers, windows

            spans = [rollovers(ts, ROLLOVER_BEFORE_S, rollover * 60)]
            if quiet is not None:
                spans.append(windows(ts) if isinstance(quiet, str) else quiet)
            muted = inside(ts, merged(np.concatenate(spans)))
            up[muted] = down[muted] = np.nan
        high.append(up[warm:])
        low.append(down[warm:])
    limits = np.r_[limits_of(high, budget=budget), limits_of(low, True, budget)]
    return KindEntry(limits, sorted(days), len(entries), hold, slow, margin, warm, budget, lag,
                     rollover)  # fmt: skip


def days_from_files(paths, fmt: str, hours: tuple[float, float] | None = None,
                    tz: str | None = None) -> dict[str, list]:  # fmt: skip
    """``build``'s input from tick files, one file per day: per symbol [(date, ts, bid, ask)];
    ``hours``: keep only these local hours of each day (in ``tz``, else the file's zone)."""
    from zoneinfo import ZoneInfo

    from spark.ticks.columns import read_batch
    from spark.ticks.readers import LineSource, file_date, lean_zone, session_bounds_us

    days: dict[str, list] = {}
    for path in map(Path, paths):
        batch = read_batch([path], fmt)[0]
        date = file_date(path, LineSource(path).member)
        for code, symbol in enumerate(batch.symbols):
            rows = np.flatnonzero(batch.code == code)
            if hours is not None:
                zone = ZoneInfo(tz) if tz else lean_zone(path)
                lo, hi = session_bounds_us(date, zone, hours)
                rows = rows[(batch.ts[rows] >= lo) & (batch.ts[rows] < hi)]
            if len(rows):
                entry = (date.isoformat(), batch.ts[rows], batch.bid[rows], batch.ask[rows])
                days.setdefault(symbol, []).append(entry)
    return days


class ProfileSet:
    """The profile detectors' settings and every symbol's state; a symbol's profile rows are
    looked up by name when it is first seen."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.config = np.zeros((0, 8))  # per slot: the settings of the entry watching it
        self.state = self._empty(0)
        self.ring = np.zeros((0, 2, max(profile.most_lag, 1)))  # per slot: the lag's means
        self.rows = np.full((0, N_BUCKETS, 2), np.nan)
        self.limits = np.full((0, 4), np.nan)
        self.names: list[str | None] = []
        self.unprofiled: set[str] = set()  # symbols seen that the profile lacks (logged once)

    @staticmethod
    def _empty(symbols: int) -> np.ndarray:
        state = np.zeros((symbols, N_STATE))
        for row in state:
            _fresh(row)
        return state

    @property
    def symbols(self) -> int:
        return self.state.shape[0]

    def grow(self, symbols: int) -> None:
        if symbols <= self.symbols:
            return
        extra = symbols - self.symbols
        self.state = np.concatenate([self.state, self._empty(extra)])
        self.ring = np.concatenate([self.ring, np.zeros((extra, *self.ring.shape[1:]))])
        self.rows = np.concatenate([self.rows, np.full((extra, N_BUCKETS, 2), np.nan)])
        self.limits = np.concatenate([self.limits, np.full((extra, 4), np.nan)])
        self.config = np.concatenate([self.config, np.tile(self.profile.config(), (extra, 1))])
        self.names += [None] * extra

    def reset(self, rows: np.ndarray) -> None:
        for r in np.asarray(rows).tolist():
            _fresh(self.state[r])
            self.names[r] = None  # looked up again: the slot may hold another symbol now

    def restore(self, state: np.ndarray | None, symbols: int, ring: np.ndarray | None = None):
        """A checkpoint's state and ring, or (None: a checkpoint from before this rule, or
        one of another layout or lag) every one of ``symbols`` warming up afresh."""
        shape = (len(state) if state is not None else 0, *self.ring.shape[1:])
        fits = state is not None and state.ndim == 2 and state.shape[1] == N_STATE
        fits = fits and ring is not None and ring.shape == shape
        self.state = state if fits else self._empty(symbols)
        self.ring = ring if fits else np.zeros((symbols, *self.ring.shape[1:]))
        self.rows = np.full((symbols, N_BUCKETS, 2), np.nan)
        self.limits = np.full((symbols, 4), np.nan)
        self.config = np.tile(self.profile.config(), (symbols, 1))
        self.names = [None] * symbols

    def _look_up(self, names: list[str], slots: np.ndarray) -> None:
        for s in np.unique(slots).tolist():
            if self.names[s] != names[s]:
                self.names[s] = names[s]
                found = self.profile.entry(names[s])
                self.rows[s] = found[0] if found else np.nan
                self.limits[s] = found[1] if found else np.nan
                self.config[s] = found[2] if found else self.profile.config()
                if found and found[3] is not None and names[s] not in self.unprofiled:
                    self.unprofiled.add(names[s])
                    kind = self.profile.kinds[found[3]]
                    log.info(
                        "drift profile: no days of %s; the profile part watches it as %s "
                        "(limits from %s, against its own recent level)",
                        names[s], found[3], ", ".join(kind.instruments),
                    )  # fmt: skip
                if not found and names[s] not in self.unprofiled:
                    self.unprofiled.add(names[s])
                    log.warning(
                        "drift profile: no profile for %s, so the gate rule's profile part "
                        "does not watch it (the other parts do); add its earlier days to "
                        "`spark drift profile`, or give it to a kind of market there "
                        "(--kind, --unseen), and restart",
                        names[s],
                    )

    def rollover(self, name: str) -> int:
        """Minutes after the FX day's rollover in which ``name``'s gate rule is muted: its
        kind of market's (``KindEntry.rollover``); 0 for none, or a symbol not watched by
        a kind."""
        kind = self.profile.kind_of(name)
        return self.profile.kinds[kind].rollover if kind is not None else 0

    def step(self, names, slot, ts, spread_bp, ret_bp, valid, reset=None) -> tuple:
        """(tick, kind (an index into KINDS), residual) of every alarm, and every tick's two
        residuals (n × 2, NaN: none)."""
        n = len(slot)
        same = len(ts) == len(spread_bp) == len(ret_bp) == len(valid) == n
        if not same or (reset is not None and len(reset) != n):
            # the kernel does not check bounds: a short array would be read past its end
            raise ValueError("one slot, ts, spread_bp, ret_bp, valid (and reset) per tick")
        self.grow(len(names))
        self._look_up(names, slot[valid] if n else slot)
        stats = np.empty((n, 2))
        tick, kind, value = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n)
        reset = np.zeros(n, np.bool_) if reset is None else reset
        count = run(
            np.ascontiguousarray(slot, np.int64),
            np.ascontiguousarray(ts, np.int64),
            np.ascontiguousarray(spread_bp, np.float64),
            np.ascontiguousarray(ret_bp, np.float64),
            np.ascontiguousarray(valid, np.bool_),
            np.ascontiguousarray(reset, np.bool_),
            self.config,
            self.rows,
            self.limits,
            self.state,
            self.ring,
            stats,
            tick,
            kind,
            value,
        )
        return tick[:count], kind[:count], value[:count], stats
