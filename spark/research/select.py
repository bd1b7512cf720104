"""The selection protocol (docs/policy.md): candidates scored on every instrument and day,
chosen on the train days only, reported on the later days.

1. **Universe**: every instrument with quotes under the data folder (``UNIVERSE``): FX whole
   days, US equities in the regular session (09:30–16:00 New York); each day-file whole
   (since run 13, session 32), or at most ``max_ticks`` ticks from its start (or session
   start) where given. A day-file starts fresh (model, features, executor), so day results
   do not depend on each other and run in parallel.
2. **Split**: per instrument, its days in date order; the first ``train_share`` of them
   (at least one) are train days, the rest test days.
3. **Candidates** (``CANDIDATES``): learner × label horizon × policy (``min_edge`` 0 is the
   band policy; > 0 the cost-aware policy with ``min_hold_s`` = the horizon) × fill model
   (taker; or passive: rest at the own-side touch, fill by queue position, cross after
   5 s; docs/costs.md). Everything else is the live default (band 0.1, drift gate on,
   100,000 notional, 0.5 bp taker and 0 bp maker fees, 20 ms latency, default risk limits).
4. **Choice**: the candidate with the best mean net PnL per train day-file over all
   instruments. Ties (within 0.01) go to the learner and horizon whose signals carry the
   most edge before costs: the gross PnL per round trip (bp of its notional, pooled over
   the train day-files) of the band-policy taker candidate with that learner and horizon
   (``band_edge``; since run 7: money, so comparable across label horizons, which an AUC
   is not). Remaining ties by the mean train AUC. Nothing of a test day is read to choose.
   Since run 9 (session 19) a mean train profit counts only where it stands ``MIN_T``
   standard errors (over the train day-files) above 0; a smaller one counts as 0, a tie
   with making no trade. Run 8 chose a learner with a train AUC of 0.50 for +10.30 a
   day-file from 11 fills (t = 0.44): with 80 candidates, the best of many noisy means.
   Candidates equal on all of these go to the taker fill model, then the higher
   ``min_edge`` (since run 9; before, to the first listed).
5. **Report**: per instrument and test day, the chosen candidate's AUC, precision@20, gross,
   costs, net and fills; per instrument mean, worst and spread (max − min); and every
   candidate's train and test means, so the choice can be checked against what was not
   chosen.
6. **Walked forward over days** (``walk_forward_days``): the same choice made again on
   expanding train windows (each instrument's first k days, k = 2, 3, ...) and scored on
   each instrument's next day, so the choice is tested on every later day rather than one
   split; a re-reading of the day scores (day-files start fresh), nothing runs again.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from spark.errors import SparkError
from spark.pipeline.batch import TickBatch
from spark.pipeline.learners import share_cores

MIN_T = 2.0  # standard errors a mean train profit must stand above 0 to count (step 4)


@dataclass(frozen=True)
class Instrument:
    name: str
    pattern: str  # glob under the data folder
    session: tuple[float, float] | None = None  # local hours kept, e.g. (9.5, 16.0)
    zone: str = "America/New_York"
    market: str = ""  # its kind of market (a drift profile's kind entry, session 30)


UNIVERSE = (
    Instrument("EURUSD", "fxcm/eurusd/*_quote.zip", market="fx"),
    Instrument("NZDUSD", "fxcm/nzdusd/*_quote.zip", market="fx"),
    Instrument("BAC", "equity/bac/*_quote.zip", (9.5, 16.0), market="stock"),
    Instrument("AIG", "equity/aig/*_quote.zip", (9.5, 16.0), market="stock"),
    Instrument("IBM", "equity/ibm/*_quote.zip", (9.5, 16.0), market="stock"),
)
MARKET = {i.name: i.market for i in UNIVERSE}


@dataclass(frozen=True)
class Candidate:
    model: str
    horizon_s: float
    min_edge: float  # 0: the band policy
    fill: str = "taker"  # or passive (docs/costs.md)
    horizon_moves: int = 0  # > 0: labels in event time, this many mid moves (horizon_s unused)

    @property
    def name(self) -> str:
        policy = "band" if self.min_edge == 0 else f"edge>={self.min_edge:g}xcost"
        horizon = f"{self.horizon_moves}mv" if self.horizon_moves else f"{self.horizon_s:g}s"
        return f"{self.model} h={horizon} {policy}" + (" passive" if self.fill == "passive" else "")

    @property
    def horizon(self) -> dict:
        """The horizon as ``settings.parse_horizon`` gives it."""
        if self.horizon_moves:
            return {"horizon_moves": self.horizon_moves}
        return {"horizon_s": self.horizon_s, "horizon_moves": 0}

    def params(self):
        """The candidate as backtest parameters (everything else the live default)."""
        from spark.backtest.engine import BacktestParams

        return BacktestParams(
            model=self.model,
            horizon_s=self.horizon_s,
            horizon_moves=self.horizon_moves,
            min_edge=self.min_edge,
            min_hold_s=self.min_hold_s,
            fill_model=self.fill,
        )

    @property
    def min_hold_s(self) -> float:
        """The cost-aware policy holds a position for the horizon; 1 s for event-time ones
        (the shortest clock horizon here)."""
        if self.min_edge == 0:
            return 0.0
        return 1.0 if self.horizon_moves else self.horizon_s


# label horizons: (seconds, mid moves); moves > 0 are event time (session 15)
HORIZONS = ((1.0, 0), (60.0, 0), (300.0, 0), (1.0, 1), (1.0, 2))
CANDIDATES = tuple(
    Candidate(model, seconds, edge, fill, moves)
    for model in ("logreg", "gbm")
    for seconds, moves in HORIZONS
    for edge in (0.0, 1.0, 2.0, 4.0)
    for fill in ("taker", "passive")
)
BY_NAME = {c.name: c for c in CANDIDATES}
FIGURES = (
    "auc",
    "precision_at_20",
    "labels",
    "pnl",
    "gross_pnl",
    "fees",
    "spread_cost",
    "fills",
    "ticks",
    "traded_notional",
)


@dataclass(frozen=True)
class Day:
    instrument: str
    date: str
    path: str


def find_days(root: Path, universe=UNIVERSE) -> list[Day]:
    """Every day-file of the universe under ``root``, by instrument then date."""
    from spark.ticks.readers import LineSource, file_date

    days = []
    for inst in universe:
        for path in sorted(root.glob(inst.pattern)):
            date = file_date(path, LineSource(path).member)
            days.append(Day(inst.name, date.isoformat(), str(path)))
    if not days:
        raise SparkError(
            f"no day-files of the protocol's instruments under {root} "
            f"(looked for {', '.join(i.pattern for i in universe)})"
        )
    return days


def split(days: list[Day], train_share: float) -> dict[str, list[Day]]:
    """{"train": [...], "test": [...]}: per instrument its first days (at least one) train."""
    out: dict[str, list[Day]] = {"train": [], "test": []}
    for name in dict.fromkeys(d.instrument for d in days):
        mine = sorted((d for d in days if d.instrument == name), key=lambda d: d.date)
        k = max(1, math.floor(len(mine) * train_share))
        out["train"] += mine[:k]
        out["test"] += mine[k:]
    return out


@functools.lru_cache(maxsize=8)
def _read_day(path: str) -> TickBatch:
    """A day-file's ticks, read once per process while among the last 8 read: `spark research
    drift` reads the same day-files for many streams (0.3 s a stock's day-file). Never handed
    out: ``load_day`` copies what it takes."""
    from spark.ticks.columns import read_batch

    return read_batch([Path(path)], "lean-quote")[0]


def load_day(day: Day, max_ticks: int | None, universe=UNIVERSE) -> TickBatch:
    """The day's valid ticks, in its session, the first ``max_ticks`` of them (None: all;
    a copy)."""
    from spark.ticks.readers import session_bounds_us

    inst = next(i for i in universe if i.name == day.instrument)
    batch = _read_day(str(day.path))
    lo, hi = 0, len(batch)
    if inst.session is not None:
        date = dt.date.fromisoformat(day.date)
        bounds = session_bounds_us(date, ZoneInfo(inst.zone), inst.session)
        lo, hi = np.searchsorted(batch.ts, bounds).tolist()
    if max_ticks is not None:
        hi = min(hi, lo + max_ticks)
    taken = batch.select(np.arange(lo, hi))
    return replace(taken, symbols=list(batch.symbols))


def score_day(task: tuple[Day, tuple[Candidate, ...], int]) -> tuple[Day, list[dict]]:
    """Every candidate's figures on one day-file: one model run per learner and horizon,
    each of its policies deciding on it (``run_backtests``; fresh pipelines each run)."""
    from spark.backtest.engine import run_grouped
    from spark.settings import Settings

    day, candidates, max_ticks = task
    batch = load_day(day, max_ticks)
    params = [c.params() for c in candidates]
    results = run_grouped(batch, params, keep_trades=False, settings=Settings())
    return day, [
        {k: float(getattr(r, k)) for k in FIGURES} | {"candidate": c.name}
        for c, r in zip(candidates, results, strict=True)
    ]


def _mean(values: list[float]) -> float:
    ok = [v for v in values if v == v]
    return sum(ok) / len(ok) if ok else float("nan")


def band_edge(scores: dict[tuple[str, str], dict], days: list[Day], name: str) -> float:
    """Edge before costs of ``name``'s learner and horizon: gross PnL per round trip, bp of
    its notional, of their band-policy taker candidate, pooled over ``days`` (NaN when that
    candidate was not run or made no trade)."""
    c = BY_NAME.get(name)
    if c is None:
        return math.nan
    band = Candidate(c.model, c.horizon_s, 0.0, "taker", c.horizon_moves).name
    rows = [scores.get((d.path, band)) for d in days]
    if any(r is None for r in rows):
        return math.nan
    from spark.backtest.engine import per_round_trip_bp

    notional = sum(r.get("traded_notional", 0.0) for r in rows)
    return per_round_trip_bp(sum(r["gross_pnl"] for r in rows), notional)


def evidenced_mean(values: list[float]) -> float:
    """The mean net PnL a candidate is ranked by (step 4): its mean over the train
    day-files, except that a profit less than ``MIN_T`` standard errors above 0 counts as 0.
    Losses count as they are."""
    ok = [v for v in values if v == v]
    mean = _mean(ok)
    if not mean > 0:
        return mean
    if len(ok) < 2:
        return 0.0
    se = math.sqrt(sum((v - mean) ** 2 for v in ok) / (len(ok) - 1) / len(ok))
    return mean if mean >= MIN_T * se else 0.0


def choose(scores: dict[tuple[str, str], dict], train: list[Day], names: list[str]) -> str:
    """The candidate with the best mean net PnL over the train day-files (a profit within
    ``MIN_T`` standard errors of 0 counts as 0: ``evidenced_mean``); ties (0.01) by
    ``band_edge`` on the train days, then by the mean train AUC; candidates equal in all
    three (e.g. the same learner trading on no train day under several policies) go to the
    taker fill model, which needs no queue model, then to the higher ``min_edge``: the more
    conservative, not the first listed. ``scores``: (day path, candidate name) -> figures."""

    def key(name: str) -> tuple:
        pnl = evidenced_mean([scores[(d.path, name)]["pnl"] for d in train])
        edge = band_edge(scores, train, name)
        auc = _mean([scores[(d.path, name)]["auc"] for d in train])
        c = BY_NAME.get(name)
        plain = (c.fill == "taker", c.min_edge) if c is not None else (False, 0.0)
        return (
            round(pnl, 2),
            edge if edge == edge else -math.inf,
            auc if auc == auc else -1.0,
            *plain,
        )

    return max(names, key=key)


def walk_forward_days(
    scores: dict[tuple[str, str], dict], days: list[Day], names: list[str], first: int
) -> dict:
    """The choice walked forward over days (expanding windows): fold j's train days are
    each instrument's first ``first + j`` days, its test days each instrument's next day
    (where it has one); the candidate is chosen by ``choose`` on the train days alone and
    scored on the test days. Day-files start fresh, so this re-reads the day scores and
    runs nothing again. Returns {"folds": [...], "summary": {...}}."""
    by_instrument: dict[str, list[Day]] = {}
    for d in sorted(days, key=lambda d: (d.instrument, d.date)):
        by_instrument.setdefault(d.instrument, []).append(d)
    longest = max((len(v) for v in by_instrument.values()), default=0)
    folds = []
    for j in range(max(longest - first, 0)):
        train = [d for v in by_instrument.values() for d in v[: first + j]]
        test = [v[first + j] for v in by_instrument.values() if len(v) > first + j]
        chosen = choose(scores, train, names)

        def mean(part: list[Day], key: str, name: str = chosen) -> float:
            return _mean([scores[(d.path, name)][key] for d in part])

        folds.append(
            {
                "fold": j + 1,
                "train_days": len(train),
                "test_days": [f"{d.instrument} {d.date}" for d in test],
                "chosen": chosen,
                "in_sample_pnl": mean(train, "pnl"),
                "out_of_sample_pnl": mean(test, "pnl"),
                "out_of_sample_auc": mean(test, "auc"),
                "out_of_sample_fills": mean(test, "fills"),
                # hindsight, for comparison only: the best candidate on the test days
                "best_on_test_pnl": max(mean(test, "pnl", n) for n in names),
            }
        )
    test_days = sum(len(f["test_days"]) for f in folds)
    summary = {
        "first_train_days": first,
        "folds": len(folds),
        "test_day_files": test_days,
        "oos_pnl_per_day_file": (
            sum(f["out_of_sample_pnl"] * len(f["test_days"]) for f in folds) / test_days
            if test_days
            else float("nan")
        ),
        "choices": sorted({f["chosen"] for f in folds}),
    }
    return {"folds": folds, "summary": summary}


def summarise(values: list[float]) -> dict[str, float]:
    ok = [v for v in values if v == v]
    if not ok:
        return {"mean": float("nan"), "worst": float("nan"), "spread": float("nan")}
    return {"mean": sum(ok) / len(ok), "worst": min(ok), "spread": max(ok) - min(ok)}


@dataclass
class Selection:
    chosen: str
    candidates: list[dict]  # name, train/test means of auc, pnl
    test_days: list[dict]  # the chosen candidate per instrument and test day
    per_instrument: dict[str, dict]  # auc/p20/pnl summaries over test days
    train_days: list[dict]  # instrument, date of each train day
    settings: dict
    seconds: float
    walk_forward: dict | None = None  # the choice walked forward over days

    def as_dict(self) -> dict:
        return asdict(self)


def run_selection(
    root: Path,
    *,
    max_ticks: int | None = None,
    train_share: float = 0.4,
    candidates: tuple[Candidate, ...] = CANDIDATES,
    instruments: tuple[str, ...] | None = None,
    jobs: int = 1,
    on_day: Callable[[int, int], None] | None = None,
    save_scores: Path | None = None,
    saved: Path | None = None,
) -> Selection:
    """Run the protocol on the day-files under ``root`` (module docstring). ``save_scores``:
    also write every day-file's figures as JSON; ``saved``: take them from such a file
    instead of running anything (the choice and the report made again)."""
    started = time.monotonic()
    stored = None
    if saved is not None:
        content = json.loads(saved.read_text())
        if content.get("max_ticks") != max_ticks:
            held, asked = (
                "whole day-files" if n is None else f"at most {n} ticks a day-file"
                for n in (content.get("max_ticks"), max_ticks)
            )
            fix = (
                "leave out --max-ticks"
                if content.get("max_ticks") is None
                else f"pass --max-ticks {content.get('max_ticks')}"
            )
            raise SparkError(f"{saved} holds figures of {held}, not {asked}: {fix}")
        stored = content["days"]
    days = find_days(root) if stored is None else [Day(**e["day"]) for e in stored]
    if instruments:
        wanted = {i.upper() for i in instruments}
        days = [d for d in days if d.instrument in wanted]
        if not days:
            raise SparkError(f"none of {', '.join(sorted(wanted))} under {root}")
    parts = split(days, train_share)
    tasks = [(d, candidates, max_ticks) for d in days]
    scores: dict[tuple[str, str], dict] = {}
    done = 0
    if stored is not None:
        wanted = {c.name for c in candidates}
        for entry in stored:
            rows = [r for r in entry["rows"] if r["candidate"] in wanted]
            missing = wanted - {r["candidate"] for r in rows}
            if missing:
                raise SparkError(f"{saved} has no figures of {sorted(missing)[0]!r}: run it again")
            done = _take(scores, Day(**entry["day"]), rows, done, len(stored), on_day)
    elif jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs, share_cores) as pool:
            for day, rows in pool.imap_unordered(score_day, tasks):
                done = _take(scores, day, rows, done, len(tasks), on_day)
    else:
        for task in tasks:
            done = _take(scores, *score_day(task), done, len(tasks), on_day)
    if save_scores is not None:
        by_day: dict[str, list] = {}
        for (path, _), row in scores.items():
            by_day.setdefault(path, []).append(row)
        entries = [{"day": asdict(d), "rows": by_day[d.path]} for d in days if d.path in by_day]
        save_scores.write_text(json.dumps({"max_ticks": max_ticks, "days": entries}))
    names = [c.name for c in candidates]
    chosen = choose(scores, parts["train"], names)
    table = []
    for name in names:
        row = {"candidate": name}
        for part in ("train", "test"):
            for k in ("auc", "precision_at_20", "pnl", "fills"):
                row[f"{part}_{k}"] = _mean([scores[(d.path, name)][k] for d in parts[part]])
            row[f"{part}_band_edge"] = band_edge(scores, parts[part], name)
        table.append(row)
    test_rows = [
        {"instrument": d.instrument, "date": d.date} | scores[(d.path, chosen)]
        for d in parts["test"]
    ]
    per_instrument = {}
    for inst in dict.fromkeys(r["instrument"] for r in test_rows):
        mine = [r for r in test_rows if r["instrument"] == inst]
        per_instrument[inst] = {
            k: summarise([r[k] for r in mine]) for k in ("auc", "precision_at_20", "pnl")
        } | {"days": len(mine)}
    first = min(max(1, math.floor(n * train_share)) for n in _day_counts(days).values())
    walk = walk_forward_days(scores, days, names, first)
    return Selection(
        walk_forward=walk,
        chosen=chosen,
        candidates=table,
        test_days=test_rows,
        per_instrument=per_instrument,
        train_days=[{"instrument": d.instrument, "date": d.date} for d in parts["train"]],
        settings={
            "max_ticks": max_ticks,
            "train_share": train_share,
            "candidates": [asdict(c) | {"name": c.name} for c in candidates],
            "data": str(root),
            "scores": None if saved is None else str(saved),
        },
        seconds=time.monotonic() - started,
    )


def _day_counts(days: list[Day]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in days:
        counts[d.instrument] = counts.get(d.instrument, 0) + 1
    return counts


def _take(scores, day: Day, rows: list[dict], done: int, total: int, on_day) -> int:
    for row in rows:
        scores[(day.path, row["candidate"])] = row
    if on_day is not None:
        on_day(done + 1, total)
    return done + 1


def _ticks_used(max_ticks: int | None) -> str:
    if max_ticks is None:
        return "whole day-files"
    return f"at most {max_ticks:,} ticks a day-file"


def markdown(s: Selection) -> str:
    """The report as a Markdown page (what ``--output`` writes)."""

    def f(v, spec=".4f"):
        return "n/a" if v != v else format(v, spec)

    lines = [
        "# Selection report (generated by `spark research select`)",
        "",
        f"Chosen on the train days: **{s.chosen}**.",
        "",
        f"Data: `{s.settings['data']}`, {_ticks_used(s.settings['max_ticks'])} "
        f"(equities: from 09:30 New York), train share {s.settings['train_share']:g} of each "
        f"instrument's days. Train days: "
        + ", ".join(f"{d['instrument']} {d['date']}" for d in s.train_days)
        + (
            f". Figures read from `{s.settings['scores']}`: chosen again, nothing run."
            if s.settings.get("scores")
            else f". {s.seconds:.0f} s."
        ),
        "",
        "## The chosen candidate on the test days, per instrument",
        "",
        "| instrument | test days | AUC mean | AUC worst | AUC spread | P@20 mean | P@20 worst "
        "| net PnL mean | net PnL worst | net PnL spread |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for inst, r in s.per_instrument.items():
        a, p, n = r["auc"], r["precision_at_20"], r["pnl"]
        lines.append(
            f"| {inst} | {r['days']} | {f(a['mean'])} | {f(a['worst'])} | {f(a['spread'])} | "
            f"{f(p['mean'])} | {f(p['worst'])} | {f(n['mean'], ',.2f')} | "
            f"{f(n['worst'], ',.2f')} | {f(n['spread'], ',.2f')} |"
        )
    lines += [
        "",
        "## The chosen candidate, every test day",
        "",
        "| instrument | date | ticks | AUC | P@20 | fills | gross | fees | spread | net |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s.test_days:
        lines.append(
            f"| {r['instrument']} | {r['date']} | {r['ticks']:,.0f} | {f(r['auc'])} | "
            f"{f(r['precision_at_20'])} | {r['fills']:,.0f} | {f(r['gross_pnl'], ',.2f')} | "
            f"{f(r['fees'], ',.2f')} | {f(r['spread_cost'], ',.2f')} | {f(r['pnl'], ',.2f')} |"
        )
    lines += [
        "",
        "## Every candidate: means per day-file, train and test",
        "",
        "Band edge: gross PnL per round trip (bp of its notional) of the band-policy taker "
        "candidate with the same learner and horizon, pooled over the days: the tie-break.",
        "",
        "| candidate | train AUC | train net | train fills | train band edge | test AUC "
        "| test P@20 | test net | test fills | test band edge |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s.candidates:
        mark = " (chosen)" if r["candidate"] == s.chosen else ""
        lines.append(
            f"| {r['candidate']}{mark} | {f(r['train_auc'])} | {f(r['train_pnl'], ',.2f')} | "
            f"{f(r['train_fills'], ',.0f')} | {f(r['train_band_edge'], '.3f')} | "
            f"{f(r['test_auc'])} | {f(r['test_precision_at_20'])} | {f(r['test_pnl'], ',.2f')} | "
            f"{f(r['test_fills'], ',.0f')} | {f(r['test_band_edge'], '.3f')} |"
        )
    if s.walk_forward and s.walk_forward["folds"]:
        w = s.walk_forward
        lines += [
            "",
            "## The choice walked forward over days (expanding train windows)",
            "",
            f"Fold j chooses on each instrument's first {w['summary']['first_train_days']} + "
            "j − 1 days (all instruments together, as the split above) and is scored on each "
            "instrument's next day; nothing of a test day is read to choose. "
            f"Out-of-sample net PnL per test day-file over {w['summary']['folds']} folds: "
            f"**{f(w['summary']['oos_pnl_per_day_file'], ',.2f')}**; choices: "
            + ", ".join(w["summary"]["choices"])
            + ".",
            "",
            "| fold | train day-files | chosen | in-sample net | test days | out-of-sample net "
            "| OOS AUC | OOS fills | best on the test days (hindsight) |",
            "|---:|---:|---|---:|---|---:|---:|---:|---:|",
        ]
        for r in w["folds"]:
            lines.append(
                f"| {r['fold']} | {r['train_days']} | {r['chosen']} | "
                f"{f(r['in_sample_pnl'], ',.2f')} | {', '.join(r['test_days'])} | "
                f"{f(r['out_of_sample_pnl'], ',.2f')} | {f(r['out_of_sample_auc'])} | "
                f"{f(r['out_of_sample_fills'], ',.1f')} | {f(r['best_on_test_pnl'], ',.2f')} |"
            )
    return "\n".join(lines) + "\n"


def write_pdf(s: Selection, path: Path) -> None:
    """The report as a PDF: per instrument, the chosen candidate's AUC and net PnL on each
    test day as bars (AUC with the 0.62 target drawn), and every candidate's means."""
    from spark.research.charts import bar_chart, table, write_pdf

    blocks: list = [f" Chosen on the train days: <b>{s.chosen}</b>."]
    for inst in s.per_instrument:
        mine = [r for r in s.test_days if r["instrument"] == inst]
        labels = [r["date"][5:] for r in mine]
        blocks += [
            inst,
            bar_chart("AUC per test day (red: 0.62)", labels, [r["auc"] for r in mine], 0.62),
            bar_chart("net PnL per test day", labels, [r["pnl"] for r in mine]),
        ]

    def cell(v) -> str:
        if isinstance(v, float):
            return "n/a" if v != v else f"{v:,.4f}"
        return str(v)

    keys = ("train_auc", "train_pnl", "test_auc", "test_precision_at_20", "test_pnl")
    head = ["candidate", "train AUC", "train net", "test AUC", "test P@20", "test net"]
    rows = [head] + [[r["candidate"], *(cell(r[k]) for k in keys)] for r in s.candidates]
    blocks += ["Every candidate (means per day-file)", table(rows)]
    write_pdf(path, "Spark selection report", blocks)
