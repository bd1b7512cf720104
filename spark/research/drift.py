"""Drift rules measured where they must generalise (docs/drift.md, issue 16 point 3).

Streams, each "A then B" under one symbol, continuous in event time (B's clock is moved to
start 1 s after A's last tick, keeping its own spacing):

* **instrument switches**: every ordered pair of instruments, A = the first ``before`` ticks
  of one instrument's last day-file, B = the first ``after`` ticks of the other's; and the
  same pairs **at the same level** (``same_level``: B's prices scaled to go on from A's last
  mid), so a rule cannot see a switch by the price level alone;
* **synthetic switches on real data**: A = the first ``before`` ticks of an instrument's
  last day-file, B = its next ``after`` ticks changed from the switch on: ``vol_x3``
  (every mid move ×3 around the mid at the switch, spread kept), ``spread_x3`` (the
  spread ×3 around the mid), ``mid_drift`` (the mid drifts +1 bp a minute), ``frozen``
  (the quote stops changing; ticks keep coming); prices kept on the instrument's grid.

Each stream runs through the live pipeline (logreg, trading off) with the gate rule
``psi_confirmed`` and informational PSIs on ``FEATURES`` (scale-free ones among them, so
a price level alone does not decide), for each (window, threshold) of ``GRID``, and ADWIN
on the model's errors; and the break detectors (``spark.drift.breaks``: a jump of the mid, a
frozen quote) at every setting of ``BREAK_SPANS`` and thresholds. Per detector and stream:
the delay (ticks from the switch to the first alarm at or after it; None: no alarm) and the
false alarms per 100k ticks before it. Rules are ranked on the train streams only
(``combined_rules``, ``break_rules``); the first break rule is the gate's default.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from spark.pipeline.batch import TickBatch
from spark.pipeline.learners import share_cores
from spark.research.select import UNIVERSE, Day, find_days, load_day

SWITCHES = ("vol_x3", "spread_x3", "mid_drift", "frozen")
LEVEL = "same_level"  # an instrument pair with B's prices scaled to go on from A's last mid
FEATURES = ("spread_bp", "vol_bp", "spread_rel", "spread_z", "activity_5s", "dt_s", "ret_bp")
GRID = ((2_000, 2.0), (2_000, 4.0), (5_000, 2.0), (5_000, 4.0))
TARGET_DELAY, TARGET_FA = 2_000, 1.0
DRIFT_PER_MINUTE = 1e-4  # mid_drift: +1 bp a minute
# break detectors (spark.drift.breaks): (warm, move span, rate span) x thresholds
BREAK_SPANS = tuple(
    (warm, moves, rate)
    for warm in (2_000, 5_000)
    for moves in (100, 500)
    for rate in (2_000, 10_000)
)
JUMP_THRESHOLDS = (20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0)
FROZEN_THRESHOLDS = (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0)
DT_SPREAD_MEMBERS = ("psi_dt_s_w2000_t2", "psi_spread_bp_w2000_t4", 1_000)  # the session-7 rule


def follow(first: TickBatch, then: TickBatch) -> TickBatch:
    """``then`` with its clock moved to start 1 s after ``first`` ends."""
    if not len(first) or not len(then):
        return then
    return replace(then, ts=then.ts - then.ts[0] + first.ts[-1] + 1_000_000)


def price_grid(batch: TickBatch) -> float:
    """The instrument's price step: the least gap between the distinct bid and ask prices
    (0.01 for the stocks, 0.00001 for the FX pairs of the shared data); 0 if none."""
    prices = np.unique(np.r_[batch.bid, batch.ask])
    gaps = np.diff(prices[np.isfinite(prices) & (prices > 0)])
    gaps = gaps[gaps > 1e-12]
    if not len(gaps):
        return 0.0
    step = float(gaps.min())
    return round(step, max(0, 5 - int(np.floor(np.log10(step)))))  # 6 significant digits


def synthetic(batch: TickBatch, kind: str) -> TickBatch:
    """``batch`` changed by switch ``kind`` (module docstring), from its first tick on.
    Prices stay on the instrument's grid (``price_grid``): the bid of a moved mid is rounded
    to the grid and the ask keeps the bid's distance (×3 for ``spread_x3``), so a switch
    never shows as prices off the grid, which no real feed makes (session 28; until then
    ``vol_x3`` and ``mid_drift`` put stock prices between cents)."""
    bid, ask = batch.bid.copy(), batch.ask.copy()
    spread = ask - bid
    mid = (bid + ask) / 2
    if kind == "vol_x3":
        bid = mid[0] + 3 * (mid - mid[0]) - spread / 2
    elif kind == "spread_x3":
        return replace(batch, bid=bid - spread, ask=ask + spread)
    elif kind == "mid_drift":
        minutes = (batch.ts - batch.ts[0]) / 60e6
        bid = bid * (1 + DRIFT_PER_MINUTE * minutes)
    elif kind == "frozen":
        bid, spread = np.full_like(bid, bid[0]), np.full_like(spread, spread[0])
    else:
        raise ValueError(f"unknown switch {kind!r}; known: {', '.join(SWITCHES)}")
    step = price_grid(batch)
    if step > 0:
        bid = np.round(bid / step) * step
    return replace(batch, bid=bid, ask=bid + spread)


def same_level(stream, switch: int):
    """``stream`` with the prices from ``switch`` on scaled so the mid goes on from where it
    was: an instrument switch keeps B's returns and spreads in bp but not its price level,
    which would mark a position carried across the switch from 1.38 (EURUSD) to 180 (IBM)
    and make millions of PnL out of nothing."""
    from dataclasses import replace

    import numpy as np

    if not 0 < switch < len(stream):
        return stream
    mid = (stream.bid + stream.ask) / 2
    factor = mid[switch - 1] / mid[switch]
    if not np.isfinite(factor) or factor <= 0:
        return stream
    scaled = {}
    for name in ("bid", "ask", "last"):
        column = getattr(stream, name).copy()
        column[switch:] *= factor
        scaled[name] = column
    return replace(stream, **scaled)


def streams(
    root: Path, instruments: tuple[str, ...] | None = None, day: str = "last"
) -> list[tuple[str, Day, Day | None, str]]:
    """(name, day of A, day of B or None, switch kind or "pair") of every stream, made of
    each instrument's ``day``: "last" (a test day of the selection protocol) or "first"
    (a train day)."""
    last: dict[str, Day] = {}
    wanted = {i.upper() for i in instruments} if instruments else None
    for found in find_days(root):  # each instrument's days in date order
        if (wanted is None or found.instrument in wanted) and (
            day == "last" or found.instrument not in last
        ):
            last[found.instrument] = found
    names = [i.name for i in UNIVERSE if i.name in last]
    out = [(f"{a} -> {b}", last[a], last[b], "pair") for a in names for b in names if a != b]
    out += [
        (f"{a} -> {b} {LEVEL}", last[a], last[b], LEVEL) for a in names for b in names if a != b
    ]
    out += [(f"{a} {kind}", last[a], None, kind) for a in names for kind in SWITCHES]
    return out


def _stream(a: Day, b: Day | None, kind: str, before: int, after: int) -> tuple[TickBatch, int]:
    day = load_day(a, before + after)
    if b is None:
        cut = max(1, min(before, len(day) - after))
        first, then = day.take(0, cut), synthetic(day.take(cut, cut + after), kind)
    else:
        first = day.take(0, min(before, len(day)))
        then = load_day(b, after)
    return joined(first, then, kind)


def joined(first: TickBatch, then: TickBatch, kind: str) -> tuple[TickBatch, int]:
    """``first`` then ``then`` (its clock moved to follow) as one stream under ``first``'s
    symbol, levelled for ``LEVEL``: (stream, the switch tick)."""
    from spark.drift.evaluate import one_stream

    stream, switch = one_stream(first, follow(first, then)), len(first)
    if kind == LEVEL:
        stream = same_level(stream, switch)
    return stream, switch


def detection(alarms: list[int], switch: int) -> dict:
    """A rule's alarm ticks on one stream: the delay (ticks from the switch to the first
    alarm at or after it; None: no alarm) and the false alarms per 100k ticks before it."""
    later = [t for t in alarms if t >= switch]
    return {
        "delay_ticks": later[0] + 1 - switch if later else None,
        "false_per_100k": sum(1 for t in alarms if t < switch) / switch * 1e5,
        "alarms": alarms,
    }


def measure(task) -> tuple[str, dict]:
    """Every detector's delay and false alarms on one stream, for each (window, threshold)."""
    from spark.features.kernel import FEATURE_NAMES
    from spark.pipeline.offline import OfflineRun
    from spark.settings import CONFIRMED, Settings

    ret_column = FEATURE_NAMES.index("ret_bp")
    name, a, b, kind, before, after, *profile = task
    stream, switch = _stream(a, b, kind, before, after)
    rows: dict[str, dict] = {}
    if profile and profile[0]:
        rows[PROFILED] = detection([t for t, _ in gate_alarms(stream, profile_path=profile[0])],
                                   switch)  # fmt: skip
    if len(profile) > 1 and profile[1]:
        rows[KIND_PROFILED] = detection(
            [t for t, _ in gate_alarms(stream, profile_path=profile[1])], switch
        )
    for window, threshold in GRID:
        base = Settings().with_models(model="logreg", challengers=())
        settings = replace(
            base,
            drift=replace(
                base.drift,
                watch=FEATURES,
                rule=CONFIRMED,
                window=window,
                threshold=threshold,
                concept_gates=False,
            ),
            gate=True,
            trading=False,
        )
        alarms: dict[str, list[int]] = {}
        first = (window, threshold) == GRID[0]
        if first:  # ret_bp as the pipeline saw it (a tick the price screen refused: unseen)
            ret, seen = np.zeros(len(stream)), np.zeros(len(stream), np.bool_)
        for lo, idx, result in OfflineRun(settings, partitions=1).run(stream):
            if first:
                ret[lo + idx], seen[lo + idx] = result.features[:, ret_column], result.valid
            for i, alert in result.alerts:
                if alert["detector"] == "psi":
                    key = f"psi_{alert['feature']}_w{window}_t{threshold:g}"
                elif alert["detector"] == "psi_confirmed" and (window, threshold) == GRID[0]:
                    key = "psi_confirmed (spread_bp & vol_bp)"
                elif alert["detector"] == "adwin" and (window, threshold) == GRID[0]:
                    key = "adwin"
                else:
                    continue
                alarms.setdefault(key, []).append(int(lo + idx[i]))
        keys = [f"psi_{f}_w{window}_t{threshold:g}" for f in FEATURES]
        if (window, threshold) == GRID[0]:
            keys += ["psi_confirmed (spread_bp & vol_bp)", "adwin"]
        for key in keys:
            rows[key] = detection(alarms.get(key, []), switch)
    return name, {
        "switch_tick": switch,
        "ticks": len(stream),
        "kind": kind,
        "detectors": rows,
        "breaks": break_alarms(ret, seen),
    }


PROFILE_RULE = "break+dt_spread+profile"  # the gate rule with its profile part
PROFILED = "gate rule + profile of earlier days"  # the test streams' row of the profile part
# the row of the profile part for an instrument never seen: its kind of market's entry only
KIND_PROFILED = "gate rule + its kind of market's entry (never seen)"


def gate_alarms(
    stream: TickBatch, rule: str = PROFILE_RULE, profile_path: str = ""
) -> list[tuple[int, str]]:
    """(tick, detector) of every warning alert of gate rule ``rule`` (``SPARK_GATE_RULE``;
    ``profile_path``: ``SPARK_DRIFT_PROFILE``, what a worker is given) on ``stream``,
    through the live pipeline (logreg, trading off, the price screen on)."""
    from spark.pipeline.offline import OfflineRun
    from spark.settings import Settings

    env = {"SPARK_GATE_RULE": rule, "SPARK_DRIFT_PROFILE": profile_path}
    base = Settings.from_env(env).with_models(model="logreg", challengers=())
    settings = replace(base, gate=True, trading=False)
    alarms = []
    for lo, idx, result in OfflineRun(settings, partitions=1).run(stream):
        for i, alert in result.alerts:
            if alert["severity"] == "warning":
                alarms.append((int(lo + idx[i]), alert["detector"]))
    return alarms


def days_by_instrument(root: Path, instruments: tuple[str, ...] | None) -> dict[str, list[Day]]:
    """Each instrument's day-files under ``root`` in date order (``instruments``: only these)."""
    wanted = {i.upper() for i in instruments} if instruments else None
    by: dict[str, list[Day]] = {}
    for d in find_days(root):
        if wanted is None or d.instrument in wanted:
            by.setdefault(d.instrument, []).append(d)
    return by


def earlier_days(by: dict[str, list[Day]]) -> dict[str, list[tuple]]:
    """Each instrument's day-files before its last (the test streams' day), loaded whole as
    ``spark.drift.profile.build`` takes them: [(date, ts, bid, ask), ...], stocks in their
    regular session as the streams are."""
    loaded: dict[str, list] = {}
    for name, found in by.items():
        loaded[name] = []
        for d in found[:-1]:
            b = load_day(d, 10**12)
            loaded[name].append((d.date, b.ts, b.bid, b.ask))
    return loaded


# the train stream day of an instrument: its first day-file after its second with this many
# ticks (bench/drift_profile_rule.py's stream_roles: BEFORE + AFTER)
STREAM_TICKS = 70_000
# the shipped profile's kinds (spark/drift/kinds.json): which kind watches which shape
SHIPPED_SHAPES = {"fx": "@pair", "stock": "@ticker"}
# each kind's own settings where they differ from build_kind's defaults (docs/drift.md,
# sessions 36 and 37): the stocks' hold 500, lag 500, budget 1 per 100k, margin 2 (the
# tenth run of bench/drift_self_rule.py, per kind of market). fx has no rollover window:
# the eleventh run, which also counts switches at 17:00 New York, chose none (session 36's
# eighth run had chosen 90 minutes without weighing a switch inside it)
SHIPPED_SETTINGS: dict[str, dict] = {
    "fx": {},
    "stock": {"hold": 500, "lag": 500, "budget": 1.0, "margin": 2.0},
}


def is_stream_day(k: int, ticks: int) -> bool:
    """Whether an instrument's k-th day-file (from 0) with ``ticks`` ticks can be its train
    stream day: after its second, and long enough for a stream (the first such one is)."""
    return k >= 2 and ticks >= STREAM_TICKS


def train_days(by: dict[str, list[Day]]) -> dict[str, list[tuple]]:
    """Each instrument's day-files up to and including its train stream day (the days the
    fifth run of bench/drift_self_rule.py chose the kind entry's settings on), loaded as
    ``earlier_days`` loads them; an instrument with no such day is left out."""
    loaded: dict[str, list] = {}
    for name, found in by.items():
        days = []
        for k, d in enumerate(found):
            b = load_day(d, 10**12)
            days.append((d.date, b.ts, b.bid, b.ask))
            if is_stream_day(k, len(b)):
                loaded[name] = days
                break
    return loaded


def shipped_kinds(root: Path, settings: dict[str, dict] | None = None):
    """The shipped default profile (``spark/drift/kinds.json``, session 31): no instrument's
    own entry, one kind entry per kind of market (``select.MARKET``) learnt on its
    instruments' train days (``train_days``), each kind watching a shape of symbol
    (``SHIPPED_SHAPES``); and each instrument's train dates. ``settings``: each kind's
    (``SHIPPED_SETTINGS``, the default), for a bench that compares another."""
    from spark.drift.profile import Profile, build_kind
    from spark.research.select import MARKET

    loaded = train_days(days_by_instrument(root, None))
    chosen = SHIPPED_SETTINGS if settings is None else settings
    kinds = {}
    for kind in SHIPPED_SHAPES:
        members = {n: days for n, days in loaded.items() if MARKET.get(n) == kind}
        if members:
            kinds[kind] = build_kind(members, **chosen.get(kind, {}))
    unseen = {shape: kind for kind, shape in SHIPPED_SHAPES.items() if kind in kinds}
    dates = {name: [d[0] for d in days] for name, days in loaded.items()}
    return Profile({}, kinds=kinds, unseen=unseen), dates


def earlier_profile(loaded: dict[str, list[tuple]], path: Path) -> dict:
    """Writes to ``path`` the profile (``spark.drift.profile.build``, what ``spark drift
    profile`` writes) of ``loaded`` (``earlier_days``); returns instrument -> the dates it
    was built from (an instrument with fewer than two earlier days has none)."""
    from spark.drift.profile import build

    profile = build(loaded)
    profile.save(path)
    return {name: list(dates) for name, dates in profile.days.items()}


def kind_profiles(loaded: dict[str, list[tuple]], folder: Path, tag: str = "") -> dict:
    """Per instrument of ``loaded`` (days as ``earlier_days`` gives them): (the path of a
    profile with no entry of its own, only its kind of market's
    (``spark.drift.profile.build_kind``), learnt on the loaded days of the other instruments
    of that kind (``select.MARKET``), every instrument unseen to it), the instruments it was
    learnt from. What a worker given ``spark drift profile --kind K=... --unseen K`` runs for
    an instrument it has no day of. An instrument alone in its kind here has none. ``tag``
    goes into the file names (one folder, several sets of days)."""
    from spark.drift.profile import ANY, Profile, build_kind
    from spark.research.select import MARKET

    out = {}
    for name in loaded:
        market = MARKET.get(name, "")
        peers = [m for m in loaded if m != name and market and MARKET.get(m) == market]
        if not peers or sum(len(loaded[m]) for m in peers) < 2:
            continue
        entry = build_kind({m: loaded[m] for m in peers}, **SHIPPED_SETTINGS.get(market, {}))
        path = folder / f"kind-{tag}{name}.json"
        Profile({}, kinds={market: entry}, unseen={ANY: market}).save(path)
        out[name] = (str(path), peers)
    return out


def profiled_days(
    root: Path, instruments: tuple[str, ...] | None, day_ticks: int, folder: Path
) -> list[tuple]:
    """``measure_day`` tasks for every day-file with at least two earlier day-files of its
    instrument: (name, day, day_ticks, profile path, the dates the profile was built from),
    the profile (``spark.drift.profile.build``) of those earlier day-files (stocks in their
    regular session, as ``load_day`` reads them; ``day_ticks`` > 0: their first
    ``day_ticks`` ticks, as of the day-file measured), written into ``folder``."""
    from spark.drift.profile import build

    tasks = []
    for name, found in days_by_instrument(root, instruments).items():
        loaded = []
        for k, d in enumerate(found):
            if k >= 2:
                path = folder / f"profile-{name}-{d.date}.json"
                build({name: loaded}).save(path)
                dates = [date for date, *_ in loaded]
                tasks.append((f"{name} {d.date}", d, day_ticks, str(path), dates))
            if k < len(found) - 1:  # the last day-file is in no profile
                b = load_day(d, day_ticks or 10**12)
                loaded.append((d.date, b.ts, b.bid, b.ask))
    return tasks


def by_kind(results: dict[str, dict], detector: str) -> dict[str, dict[str, int]]:
    """Per kind of switch: streams, caught within TARGET_DELAY, and streams over the
    false-alarm target, of ``detector`` (a key of each row's detectors)."""
    out: dict[str, dict[str, int]] = {}
    for row in results.values():
        if detector not in row["detectors"]:
            continue
        figures = out.setdefault(row["kind"], {"streams": 0, "caught": 0, "false": 0})
        found = row["detectors"][detector]
        delay = found["delay_ticks"]
        figures["streams"] += 1
        figures["caught"] += delay is not None and delay <= TARGET_DELAY
        figures["false"] += found["false_per_100k"] > TARGET_FA
    return out


def break_name(setting: tuple) -> str:
    """A break setting ((warm, move span, rate span), jump, frozen) as the report names it."""
    (warm, moves, rate), jump, frozen = setting
    return f"jump>{jump:g} or frozen>{frozen:g} (warm {warm}, moves {moves}, rate {rate})"


def break_alarms(ret: np.ndarray, valid: np.ndarray) -> dict[tuple, list[int]]:
    """Alarm ticks of the break detectors (``spark.drift.breaks``, the live kernel) for every
    setting of BREAK_SPANS x JUMP_THRESHOLDS x FROZEN_THRESHOLDS, on a stream's ``ret_bp``
    as the pipeline computed it (``valid``: the ticks it had a feature row for)."""
    from spark.drift.breaks import BreakSet, BreakSettings

    slot = np.zeros(len(ret), np.int64)
    out = {}
    for spans in BREAK_SPANS:
        for jump in JUMP_THRESHOLDS:
            for frozen in FROZEN_THRESHOLDS:
                warm, moves, rate = spans
                detectors = BreakSet(BreakSettings(jump, frozen, moves, rate, warm))
                detectors.grow(1)
                tick = detectors.step(slot, ret, valid)[0]
                out[(spans, jump, frozen)] = tick.tolist()
    return out


def map_streams(measure_one, tasks: list, jobs: int, on_stream=None) -> dict[str, dict]:
    """name -> row of ``measure_one(task)`` (which returns (name, row)) for every task, in
    ``jobs`` processes (spawned: the numba kernels compile once in each)."""
    results: dict[str, dict] = {}
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs, share_cores) as pool:
            for name, row in pool.imap_unordered(measure_one, tasks):
                results[name] = row
                if on_stream:
                    on_stream(len(results), len(tasks))
    else:
        for task in tasks:
            name, row = measure_one(task)
            results[name] = row
            if on_stream:
                on_stream(len(results), len(tasks))
    return results


def measure_day(task) -> tuple[str, dict]:
    """The shipped gate rule's alarms on one real day-file (no switch: every one is false);
    with a profile path in the task (a 4th item), the gate rule with its profile part
    (``PROFILE_RULE``, ``SPARK_DRIFT_PROFILE``), as a worker given that file runs it."""
    from spark.pipeline.offline import OfflineRun
    from spark.research.select import load_day
    from spark.settings import Settings

    name, day, max_ticks, *rest = task
    batch = load_day(day, max_ticks or 10**12)
    base = Settings()
    if rest and rest[0]:
        base = Settings.from_env({"SPARK_GATE_RULE": PROFILE_RULE, "SPARK_DRIFT_PROFILE": rest[0]})
    settings = replace(base.with_models(model="logreg", challengers=()), trading=False)
    alarms: dict[str, int] = {}
    for _lo, _idx, result in OfflineRun(settings, partitions=1).run(batch):
        for _i, alert in result.alerts:
            if alert["severity"] == "warning":
                alarms[alert["detector"]] = alarms.get(alert["detector"], 0) + 1
    return name, {
        "instrument": day.instrument,
        "date": day.date,
        "ticks": len(batch),
        "alarms": alarms,
        "false_per_100k": sum(alarms.values()) / max(1, len(batch)) * 1e5,
    }


def run_matrix(
    root: Path,
    *,
    before: int = 50_000,
    after: int = 20_000,
    jobs: int = 1,
    instruments: tuple[str, ...] | None = None,
    on_stream: Callable[[int, int], None] | None = None,
    day_ticks: int = 0,
    profile: bool = True,
) -> dict:
    """Every stream's detectors (``measure``), the rules ranked on the train streams, and the
    shipped gate rule on every whole real day-file (``measure_day``; ``day_ticks`` > 0: only
    that many ticks of each). ``profile``: also the gate rule with its profile part on the
    test streams, the profile built from each instrument's earlier days (``earlier_profile``;
    the train streams, on each instrument's first day, have no earlier days), and on every
    whole day-file with two earlier ones, the profile of those (``profiled_days``); and, for
    an instrument never seen, the gate rule with only its kind of market's entry, learnt on
    the other instruments of its kind (``kind_profiles``), on the test streams and on every
    whole day-file."""
    import tempfile

    from spark.settings import Settings

    started = time.monotonic()
    tasks = [(*s, before, after) for s in streams(root, instruments, "first")]
    tasks = [(f"train: {t[0]}", *t[1:]) for t in tasks]
    scratch = tempfile.TemporaryDirectory(prefix="spark-research-drift-")
    profile_path, profile_days, kinds = None, {}, {}
    if profile:
        profile_path = str(Path(scratch.name) / "profile.json")
        loaded = earlier_days(days_by_instrument(root, instruments))
        profile_days = earlier_profile(loaded, Path(profile_path))
        kinds = kind_profiles(loaded, Path(scratch.name))
        del loaded
    tasks += [
        (*s, before, after, profile_path, kinds.get(s[1].instrument, (None,))[0])
        for s in streams(root, instruments, "last")
    ]
    if not tasks:
        from spark.errors import SparkError

        raise SparkError(f"none of {', '.join(instruments or ())} under {root}")
    days = [
        (f"{d.instrument} {d.date}", d, day_ticks)
        for found in days_by_instrument(root, instruments).values()
        for d in found
    ]
    total = len(tasks) + len(days)

    def progress(offset: int):
        return None if on_stream is None else lambda done, _n: on_stream(offset + done, total)

    with scratch:
        profiled = (
            profiled_days(root, instruments, day_ticks, Path(scratch.name)) if profile else []
        )
        kind_days = [(n, d, t, kinds[d.instrument][0]) for n, d, t in days if d.instrument in kinds]
        total += len(profiled) + len(kind_days)
        results = map_streams(measure, tasks, jobs, progress(0))
        whole_days = map_streams(measure_day, days, jobs, progress(len(tasks)))
        whole_profiled = map_streams(
            measure_day, [t[:4] for t in profiled], jobs, progress(len(tasks) + len(days))
        )
        whole_kind = map_streams(
            measure_day, kind_days, jobs, progress(len(tasks) + len(days) + len(profiled))
        )
    whole_days = {name: whole_days[name] for name, _, _ in days}
    whole_kind = {t[0]: whole_kind[t[0]] for t in kind_days}
    for name, _day, _ticks, _path, dates in profiled:
        whole_profiled[name]["profile_dates"] = dates
    whole_profiled = {t[0]: whole_profiled[t[0]] for t in profiled}
    order = [t[0] for t in tasks]
    train = {n: results[n] for n in order if n.startswith("train: ")}
    test = {n: results[n] for n in order if not n.startswith("train: ")}
    rules = combined_rules(train, test)
    breaks = break_rules(train, test)
    chosen = breaks[0]
    for rows in (train, test):  # the chosen rule beside the single detectors
        for row in rows.values():
            found = detection(chosen["alarms"](row), row["switch_tick"])
            row["detectors"][f"chosen: {chosen['rule']}"] = found
            del row["breaks"]
    for r in breaks:
        del r["alarms"]
    return {
        "streams": test,
        "train_streams": train,
        "summary": summarise(test),
        "train_summary": summarise(train),
        "combined": rules,
        "breaks": breaks,
        "chosen_by_kind": by_kind(test, f"chosen: {chosen['rule']}"),
        "profile_by_kind": by_kind(test, PROFILED),
        "profile_days": profile_days,
        "whole_days": whole_days,
        "whole_days_profiled": whole_profiled,
        "kind_by_kind": by_kind(test, KIND_PROFILED),
        "kind_learnt_from": {n: peers for n, (_, peers) in kinds.items()},
        "whole_days_kind": whole_kind,
        "gate_rule": Settings().drift.rule,
        "settings": {
            "before": before,
            "after": after,
            "data": str(root),
            "day_ticks": day_ticks,
            "profile": profile,
        },
        "seconds": time.monotonic() - started,
    }


CONFIRM_WITHIN = (250, 1_000)  # ticks between the two alarms of a confirmed rule


def confirm(a: list[int], b: list[int], within: int) -> list[int]:
    """Alarm ticks of "a confirmed by b", as a confirmed group of ``spark.drift.kernel`` raises
    them: at a tick where both have alarmed, the older alarm at most ``within`` ticks before;
    then both must alarm again."""
    events = sorted([(t, 0) for t in a] + [(t, 1) for t in b])
    last: list[int | None] = [None, None]
    out: list[int] = []
    for t, who in events:
        last[who] = t
        if last[0] is not None and last[1] is not None and t - min(last) <= within:
            out.append(t)
            last = [None, None]
    return out


def _score(results: dict[str, dict], alarms_of) -> dict:
    caught = missed = 0
    false = []
    for row in results.values():
        found = detection(alarms_of(row), row["switch_tick"])
        delay = found["delay_ticks"]
        caught += delay is not None and delay <= TARGET_DELAY
        missed += delay is None
        false.append(found["false_per_100k"])
    return {
        "caught_within_target": caught,
        "missed": missed,
        "streams": len(results),
        "worst_false_per_100k": max(false),
        "mean_false_per_100k": sum(false) / len(false),
        "meets_targets": caught == len(results) and max(false) <= TARGET_FA,
    }


def combined_rules(train: dict[str, dict], test: dict[str, dict], keep: int = 10) -> list[dict]:
    """Every pair of detectors as a confirmed rule (``confirm``, each CONFIRM_WITHIN), scored
    on the train streams (each instrument's first day); the best ``keep`` by (false alarms
    within target on every train stream, switches caught, fewer false alarms), with their
    figures on the test streams (each instrument's last day), which played no part."""
    names = sorted({k for r in train.values() for k in r["detectors"]})
    scored = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for within in CONFIRM_WITHIN:

                def alarms(row, a=a, b=b, within=within):
                    d = row["detectors"]
                    return confirm(d[a]["alarms"], d[b]["alarms"], within)

                figures = _score(train, alarms)
                key = (
                    figures["worst_false_per_100k"] <= TARGET_FA,
                    figures["caught_within_target"],
                    -figures["mean_false_per_100k"],
                )
                scored.append((key, f"{a} & {b} within {within}", alarms, figures))
    scored.sort(key=lambda x: x[0], reverse=True)
    return [
        {"rule": name, "train": figures, "test": _score(test, alarms)}
        for _, name, alarms, figures in scored[:keep]
    ]


def break_rules(train: dict[str, dict], test: dict[str, dict], keep: int = 10) -> list[dict]:
    """The break detectors at every setting, alone and or-ed with the session-7 gate rule
    (PSI on dt_s confirmed by PSI on spread_bp within 1,000), ranked on the train streams
    only: false alarms within target on every train stream first, then switches caught,
    then fewer false alarms, then the simpler rule (without the PSI pair), then the higher
    thresholds (more room before a false alarm). The first is the gate's default; each
    with its figures on the test streams, which played no part."""
    a, b, within = DT_SPREAD_MEMBERS
    scored = []
    for key in next(iter(train.values()))["breaks"]:
        _, jump, frozen = key
        for with_pair in (False, True):

            def alarms(row, key=key, with_pair=with_pair):
                found = row["breaks"][key]
                if with_pair:
                    d = row["detectors"]
                    found = sorted(
                        set(found) | set(confirm(d[a]["alarms"], d[b]["alarms"], within))
                    )
                return found

            figures = _score(train, alarms)
            rank = (
                figures["worst_false_per_100k"] <= TARGET_FA,
                figures["caught_within_target"],
                -figures["mean_false_per_100k"],
                not with_pair,
                jump,
                frozen,
            )
            name = break_name(key) + (" or dt_spread" if with_pair else "")
            scored.append((rank, name, alarms, figures))
    scored.sort(key=lambda x: x[0], reverse=True)
    return [
        {"rule": name, "alarms": alarms, "train": figures, "test": _score(test, alarms)}
        for _, name, alarms, figures in scored[:keep]
    ]


def summarise(results: dict[str, dict]) -> list[dict]:
    """Per detector over every stream: switches caught within TARGET_DELAY, the worst delay,
    the worst and mean false alarms per 100k, and whether it meets both targets on all."""
    names = list(dict.fromkeys(k for r in results.values() for k in r["detectors"]))
    out = []
    for det in names:
        rows = [r["detectors"][det] for r in results.values() if det in r["detectors"]]
        delays = [r["delay_ticks"] for r in rows]
        caught = sum(1 for d in delays if d is not None and d <= TARGET_DELAY)
        false = [r["false_per_100k"] for r in rows]
        worst_delay = None if any(d is None for d in delays) else max(delays)
        out.append(
            {
                "detector": det,
                "streams": len(rows),
                "caught_within_target": caught,
                "missed": sum(1 for d in delays if d is None),
                "worst_delay_ticks": worst_delay,
                "median_delay_ticks": float(np.median([d for d in delays if d is not None]))
                if any(d is not None for d in delays)
                else None,
                "worst_false_per_100k": max(false),
                "mean_false_per_100k": sum(false) / len(false),
                "meets_targets": caught == len(rows) and max(false) <= TARGET_FA,
            }
        )
    out.sort(key=lambda r: (-r["caught_within_target"], r["mean_false_per_100k"]))
    return out


KIND_LABEL = {"pair": "instrument pairs", LEVEL: "pairs at the same level"}


def markdown(m: dict) -> str:
    s = m["settings"]
    lines = [
        "# Drift rules across instruments and synthetic switches "
        "(generated by `spark research drift`)",
        "",
        f"Data `{s['data']}`; A = {s['before']:,} ticks, B = {s['after']:,} ticks; "
        f"{len(m['streams'])} test streams (each instrument's last day) and "
        f"{len(m['train_streams'])} train streams (its first day); {m['seconds']:.0f} s. "
        "Targets: delay <= "
        f"{TARGET_DELAY:,} ticks on every switch, <= {TARGET_FA:g} false alarm per 100k ticks.",
        "",
        "## Per detector, over every test stream",
        "",
        "| detector | caught <= 2,000 | missed | median delay | worst delay | mean FA/100k "
        "| worst FA/100k | meets both |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def d(v):
        return "none" if v is None else f"{v:,.0f}"

    for r in m["summary"]:
        lines.append(
            f"| {r['detector']} | {r['caught_within_target']}/{r['streams']} | {r['missed']} | "
            f"{d(r['median_delay_ticks'])} | {d(r['worst_delay_ticks'])} | "
            f"{r['mean_false_per_100k']:.1f} | {r['worst_false_per_100k']:.1f} | "
            f"{'yes' if r['meets_targets'] else 'no'} |"
        )
    lines += [
        "",
        "## Confirmed pairs: chosen on the train streams, reported on the test streams",
        "",
        "Every pair of the detectors above as one rule (an alarm of one confirmed by the other "
        "within 250 or 1,000 ticks), ranked on the train streams (each instrument's first "
        "day): false alarms within target on every stream first, then switches caught, then "
        "fewer false alarms. The test streams (the tables above: each instrument's last day) "
        "played no part in the ranking.",
        "",
        "| rule | train caught | train worst FA/100k | test caught <= 2,000 | test missed "
        "| test mean FA/100k | test worst FA/100k | meets both on test |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [_rule_row(r) for r in m["combined"]]
    lines += [
        "",
        "## Break rules (jump, frozen): chosen on the train streams, reported on the test streams",
        "",
        "The break detectors of `spark.drift.breaks` at every setting (warm-up, move span, rate "
        "span, thresholds), alone and or-ed with the session-7 rule (PSI on dt_s confirmed by "
        "PSI on spread_bp within 1,000), ranked on the train streams only: false alarms within "
        "target on every stream, switches caught, fewer false alarms, the simpler rule, the "
        "higher thresholds. The first row is the gate's default (`chosen:` in the tables).",
        "",
        "| rule | train caught | train worst FA/100k | test caught <= 2,000 | test missed "
        "| test mean FA/100k | test worst FA/100k | meets both on test |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [_rule_row(r) for r in m.get("breaks", [])]
    if m.get("chosen_by_kind"):
        lines += [
            "",
            "The first rule on the test streams, by kind of switch:",
            *_switch_table(m["chosen_by_kind"]),
        ]
    if m.get("profile_by_kind"):
        built = "; ".join(
            f"{name} {len(dates)} day-files" for name, dates in m.get("profile_days", {}).items()
        )
        lines += [
            "",
            "## The gate rule with its profile part (test streams)",
            "",
            "`break+dt_spread+profile`, what a worker runs with `SPARK_DRIFT_PROFILE`, through "
            "the live pipeline; the profile (`spark drift profile`'s) built from each "
            f"instrument's day-files before the test day ({built or 'none'}). An instrument "
            "with fewer than two earlier day-files has no profile; its streams run on the "
            "other parts. Row `" + PROFILED + "` in the tables above.",
            *_switch_table(m["profile_by_kind"]),
        ]
    days = m.get("whole_days", {})
    if days:
        cap = m["settings"].get("day_ticks")
        ticks, alarms, _ = _tally(days)
        lines += [
            "",
            f"## Whole real days, no switch: the shipped gate rule `{m['gate_rule']}`",
            "",
            f"Every day-file of the data{f' (its first {cap:,} ticks)' if cap else ''}, "
            "through the live pipeline with the shipped gate rule (its profile part: the "
            "shipped kinds of market, `spark/drift/kinds.json`, learnt on each instrument's "
            "day-files up to its train stream day, which are in sample for it): every alarm "
            f"is a false one. {len(days)} day-files, {ticks:,} ticks, {alarms} alarms "
            f"({alarms / max(1, ticks) * 1e5:.2f} per 100k). Nothing is chosen on these.",
            *_days_table(days),
        ]
    lines += _profiled_days_section(m)
    lines += _kind_section(m)
    top = [r["detector"] for r in m["summary"][:6]]
    chosen = next(
        (r["detector"] for r in m["summary"] if r["detector"].startswith("chosen: ")), None
    )
    if chosen is not None and chosen not in top:  # the default rule's column, always
        top.append(chosen)
    lines += [
        "",
        "## Per stream: delay in ticks / false alarms per 100k (the six detectors above first, "
        "and the default rule)",
        "",
        "| stream | " + " | ".join(top) + " |",
        "|---|" + "---:|" * len(top),
    ]
    for name, row in m["streams"].items():
        cells = []
        for det in top:
            r = row["detectors"].get(det)
            cells.append(
                "n/a" if r is None else f"{d(r['delay_ticks'])} / {r['false_per_100k']:.1f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tally(days: dict[str, dict]) -> tuple[int, int, int]:
    """Ticks, alarms, and day-files over the false-alarm target, of whole-day rows."""
    ticks = sum(day["ticks"] for day in days.values())
    alarms = sum(sum(day["alarms"].values()) for day in days.values())
    return ticks, alarms, sum(day["false_per_100k"] > TARGET_FA for day in days.values())


def _days_table(days: dict[str, dict], profiled: bool = False) -> list[str]:
    """A table of whole-day rows: ticks, alarms per detector, alarms per 100k (``profiled``:
    and how many earlier day-files the profile was built from)."""
    kinds = sorted({k for day in days.values() for k in day["alarms"]})
    extra = "profile of | " if profiled else ""
    lines = [
        "",
        f"| day-file | {extra}ticks | " + "".join(f"{k} | " for k in kinds) + "alarms per 100k |",
        "|---|" + "---:|" * (len(kinds) + 2 + profiled),
    ]
    for name, day in days.items():
        cells = "".join(f" {day['alarms'].get(k, 0)} |" for k in kinds)
        of = f" {len(day['profile_dates'])} days |" if profiled else ""
        lines.append(f"| {name} |{of} {day['ticks']:,} |{cells} {day['false_per_100k']:.2f} |")
    return lines


def _profiled_days_section(m: dict) -> list[str]:
    """The report's table of whole real days under the gate rule with its profile part."""
    days = m.get("whole_days_profiled", {})
    if not days:
        return []
    cap = m["settings"].get("day_ticks")
    ticks, alarms, over = _tally(days)
    return [
        "",
        f"## Whole real days, no switch: the gate rule with its profile part `{PROFILE_RULE}`",
        "",
        "Each day-file with at least two earlier day-files of its instrument"
        f"{f' (its first {cap:,} ticks, and the first {cap:,} of each earlier one)' if cap else ''}"
        ", through the live pipeline with the profile of those earlier day-files (what "
        "`spark drift profile` writes from them, given to the worker as `SPARK_DRIFT_PROFILE`)"
        f": every alarm is a false one. {len(days)} day-files, {ticks:,} ticks, {alarms} "
        f"alarms ({alarms / max(1, ticks) * 1e5:.2f} per 100k); {over} "
        f"day-file{'' if over == 1 else 's'} over the "
        f"target of {TARGET_FA:g} per 100k. Nothing is chosen on these.",
        *_days_table(days, profiled=True),
    ]


def _switch_table(figures: dict[str, dict[str, int]]) -> list[str]:
    """A report table of one rule's test streams by kind of switch (``by_kind``)."""
    lines = [
        "",
        "| switch | caught <= 2,000 | streams over the false-alarm target |",
        "|---|---:|---:|",
    ]
    for kind, f in figures.items():
        lines.append(f"| {KIND_LABEL.get(kind, kind)} | {f['caught']}/{f['streams']} | "
                     f"{f['false']} |")  # fmt: skip
    return lines


def _kind_section(m: dict) -> list[str]:
    """The report's tables of the gate rule with a kind of market's entry, for instruments
    never seen: the test streams by switch, and whole real days."""
    if not m.get("kind_by_kind"):
        return []
    learnt = "; ".join(f"{n} from {', '.join(p)}" for n, p in m["kind_learnt_from"].items())
    lines = [
        "",
        "## An instrument never seen: the gate rule with its kind of market's entry",
        "",
        f"`{PROFILE_RULE}` through the live pipeline, as a worker given `spark drift profile "
        "--kind K=... --unseen K` runs it for an instrument the profile has no day of: the "
        "profile holds no entry of the stream's instrument, only its kind of market's, learnt "
        "on the other instruments of that kind, their day-files before the test day "
        f"({learnt}). An instrument alone in its kind here has none. Row `{KIND_PROFILED}` in "
        "the tables above.",
        *_switch_table(m["kind_by_kind"]),
    ]
    days = m.get("whole_days_kind", {})
    if days:
        cap = m["settings"].get("day_ticks")
        ticks, alarms, over = _tally(days)
        lines += [
            "",
            "Whole real days, no switch, each day-file of those instruments"
            f"{f' (its first {cap:,} ticks)' if cap else ''} with that entry: every alarm is "
            f"a false one. {len(days)} day-files, {ticks:,} ticks, {alarms} alarms "
            f"({alarms / max(1, ticks) * 1e5:.2f} per 100k); {over} "
            f"day-file{'' if over == 1 else 's'} over the target of {TARGET_FA:g} per 100k.",
            *_days_table(days),
        ]
    return lines


def _rule_row(r: dict) -> str:
    tr, te = r["train"], r["test"]
    return (
        f"| {r['rule']} | {tr['caught_within_target']}/{tr['streams']} | "
        f"{tr['worst_false_per_100k']:.1f} | {te['caught_within_target']}/{te['streams']} | "
        f"{te['missed']} | {te['mean_false_per_100k']:.1f} | "
        f"{te['worst_false_per_100k']:.1f} | {'yes' if te['meets_targets'] else 'no'} |"
    )


def write_pdf(m: dict, path: Path, detectors: int = 6) -> None:
    """Delays per stream of the best ``detectors`` (a missed switch drawn at the stream's
    length after it), the 2,000-tick target drawn; and the summary table."""
    from spark.research.charts import bar_chart, table, write_pdf

    after = m["settings"]["after"]
    labels = list(m["streams"])
    blocks: list = [
        f" Delay after the switch in ticks (red: {TARGET_DELAY:,}); a missed switch is drawn "
        f"at {after:,}, the ticks after it."
    ]
    for r in m["summary"][:detectors]:
        det = r["detector"]
        delays = []
        for row in m["streams"].values():
            d = row["detectors"].get(det, {}).get("delay_ticks")
            delays.append(after if d is None else d)
        blocks += [det, bar_chart(f"{det}: delay per stream", labels, delays, TARGET_DELAY)]
    head = ["detector", "caught", "missed", "worst delay", "mean FA/100k", "worst FA/100k"]
    rows = [head] + [
        [
            r["detector"],
            f"{r['caught_within_target']}/{r['streams']}",
            str(r["missed"]),
            "none" if r["worst_delay_ticks"] is None else f"{r['worst_delay_ticks']:,}",
            f"{r['mean_false_per_100k']:.1f}",
            f"{r['worst_false_per_100k']:.1f}",
        ]
        for r in m["summary"]
    ]
    blocks += ["Every detector", table(rows)]
    write_pdf(path, "Spark drift rules across switches", blocks)
