"""The issue's check on ticks the project has never seen: another venue (OANDA) and another
instrument (gold), from the data folder of the QuantConnect LEAN repository.

    .venv/bin/python -m bench.unseen_venue LEAN_DATA [--shared ../shared/data] [--json]

``LEAN_DATA`` is LEAN's ``Data`` folder (github.com/QuantConnect/Lean, Apache-2.0), of which
this reads ``forex/oanda/tick/{eurusd,nzdusd}/*_quote.zip`` and
``cfd/oanda/tick/xauusd/*_quote.zip``: 13 days each, 2014-05-01..05-15, OANDA's quotes
(``time_ms,bid,ask``, XAUUSD with fractional milliseconds). ``../shared/data`` holds FXCM's
quotes of the same two pairs on the same days, which every default was chosen on; OANDA's
quotes and gold were never read before session 34 and nothing here is chosen: it measures
the shipped defaults as a user who installs Spark and points it at these files would get
them (no settings, ``SPARK_DRIFT_PROFILE`` unset, so the shipped kinds of market).

1. **Model** (the check's AUC >= 0.62 and precision@20 >= 0.58): ``spark model eval`` on
   each day-file alone (fresh model: ``--per-file --fresh``), and with the model carried
   from day to day per instrument (``--per-file``, as a live worker carries it).
2. **Drift** (delay <= 2,000 ticks, no alarm before the switch): the streams of `spark
   research drift` on each instrument's last day-file (A = its first 50,000 ticks, fewer
   where the day-file is short, B = the next 20,000): every ordered pair of the three
   instruments as they are and at the same level, the four synthetic switches, and the
   **venue switches** (FXCM's EURUSD then OANDA's, and back; the same for NZDUSD; the same
   symbol at nearly the same price: only the venue's quoting changes), through the live
   pipeline with the worker's default gate rule.
3. **Whole days**: every day-file from its start with the default rule; each alarm is false.
4. **Policy**: the default backtest (cost-aware, k = 4) and the band policy on each day-file.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
VENUE = {
    "EURUSD": "forex/oanda/tick/eurusd/*_quote.zip",
    "NZDUSD": "forex/oanda/tick/nzdusd/*_quote.zip",
    "XAUUSD": "cfd/oanda/tick/xauusd/*_quote.zip",
}
SHARED = {"EURUSD": "fxcm/eurusd/*_quote.zip", "NZDUSD": "fxcm/nzdusd/*_quote.zip"}
BEFORE, AFTER, WITHIN = 50_000, 20_000, 2_000
AUC_BAR, P20_BAR = 0.62, 0.58


def day_files(root: Path, patterns: dict[str, str]) -> dict[str, list[Path]]:
    found = {name: sorted(root.glob(p)) for name, p in patterns.items()}
    missing = [p for name, p in patterns.items() if not found[name]]
    if missing:
        raise SystemExit(
            f"no day-files under {root} for {', '.join(missing)}: pass LEAN's Data folder"
        )
    return found


def _model(task):
    """One instrument's day-files scored by ``spark model eval --per-file`` (fresh and carried)."""
    name, paths = task
    from spark.ml.evaluate import evaluate_per_file
    from spark.research.select import _read_day
    from spark.settings import Settings

    files = [(str(p), _read_day(str(p))) for p in paths]
    out = {}
    for fresh in (True, False):
        rows, _ = evaluate_per_file(files, Settings.from_env({}), fresh=fresh)
        out["fresh" if fresh else "carried"] = [
            {
                "day": Path(f).name[:8],
                "ticks": r.ticks,
                "n": r.n,
                "auc": r.auc,
                "precision_at_20": r.precision_at_20,
            }
            for f, r in rows
        ]
    return name, out


def _stream(a_path: str, b_path: str | None, kind: str):
    """(stream, switch tick): ``spark.research.drift._stream`` for day-files of any venue."""
    from spark.drift.evaluate import one_stream
    from spark.research.drift import LEVEL, follow, same_level, synthetic
    from spark.research.select import _read_day

    day = _read_day(a_path)
    if b_path is None:
        cut = max(1, min(BEFORE, len(day) - AFTER))
        first, then = day.take(0, cut), synthetic(day.take(cut, cut + AFTER), kind)
    else:
        first = day.take(0, min(BEFORE, len(day)))
        other = _read_day(b_path)
        then = other.take(0, min(AFTER, len(other)))
    stream, switch = one_stream(first, follow(first, then)), len(first)
    if kind == LEVEL:
        stream = same_level(stream, switch)
    return stream, switch


def _drift(task):
    name, a_path, b_path, kind = task
    from bench.drift_profile_live import verdict
    from spark.research.drift import gate_alarms

    stream, switch = _stream(a_path, b_path, kind)
    alarms = gate_alarms(stream, "", "")  # the worker's defaults: rule and shipped kinds
    return {"stream": name, "kind": kind, "switch": switch, **verdict(alarms, switch)}


def _whole(task):
    name, path = task
    from spark.research.drift import gate_alarms
    from spark.research.select import _read_day

    batch = _read_day(path)
    alarms = gate_alarms(batch, "", "")
    return {"instrument": name, "day": Path(path).name[:8], "ticks": len(batch),
            "alarms": [d for _, d in alarms]}  # fmt: skip


def _policy(task):
    name, path = task
    from dataclasses import replace

    from spark.backtest.engine import BacktestParams, run_backtests
    from spark.research.select import _read_day

    batch = _read_day(path)
    default = BacktestParams()
    results = run_backtests(batch, [default, replace(default, min_edge=0.0)], keep_trades=False)
    return {
        "instrument": name,
        "day": Path(path).name[:8],
        **{
            policy: {
                "net": r.pnl,
                "gross": r.gross_pnl,
                "fills": r.fills,
                "fees": r.fees,
                "spread_cost": r.spread_cost,
            }
            for policy, r in zip(("default", "band"), results, strict=True)
        },
    }


def drift_tasks(venue: dict[str, list[Path]], shared: dict[str, list[Path]]) -> list[tuple]:
    from spark.research.drift import LEVEL, SWITCHES

    last = {n: str(p[-1]) for n, p in venue.items()}
    names = list(venue)
    tasks = [(f"{a} -> {b}", last[a], last[b], "pair") for a in names for b in names if a != b]
    tasks += [
        (f"{a} -> {b} {LEVEL}", last[a], last[b], LEVEL) for a in names for b in names if a != b
    ]
    tasks += [(f"{a} {k}", last[a], None, k) for a in names for k in SWITCHES]
    for n, paths in shared.items():  # the same day's file of the other venue
        other = next(p for p in paths if p.name == Path(last[n]).name)
        tasks.append((f"{n} fxcm -> oanda", str(other), last[n], "venue"))
        tasks.append((f"{n} oanda -> fxcm", last[n], str(other), "venue"))
    return tasks


def summarise(model, drift, whole, policy) -> dict:
    out: dict = {"model": {}, "drift": {}, "whole": {}, "policy": {}}
    for name, runs in model.items():
        for how, rows in runs.items():
            ok = [r for r in rows if r["auc"] >= AUC_BAR and not r["precision_at_20"] < P20_BAR]
            aucs = [r["auc"] for r in rows if math.isfinite(r["auc"])]
            out["model"][f"{name} {how}"] = {
                "days": len(rows),
                "pass": len(ok),
                "worst_auc": min(aucs),
                "mean_auc": float(np.mean(aucs)),
            }
    kinds: dict[str, list] = {}
    for r in drift:
        kinds.setdefault(r["kind"], []).append(r)
    for kind, rows in kinds.items():
        out["drift"][kind] = {
            "streams": len(rows),
            "caught": sum(r["caught"] for r in rows),
            "with_false_alarm": sum(r["false_alarms"] > 0 for r in rows),
        }
    for name in dict.fromkeys(r["instrument"] for r in whole):
        rows = [r for r in whole if r["instrument"] == name]
        ticks, alarms = sum(r["ticks"] for r in rows), sum(len(r["alarms"]) for r in rows)
        out["whole"][name] = {
            "day_files": len(rows),
            "ticks": ticks,
            "alarms": alarms,
            "per_100k": alarms / ticks * 1e5,
            "over_1_per_100k": sum(len(r["alarms"]) / r["ticks"] * 1e5 > 1 for r in rows),
        }
    for name in dict.fromkeys(r["instrument"] for r in policy):
        rows = [r for r in policy if r["instrument"] == name]
        out["policy"][name] = {
            p: {
                "net_per_day": float(np.mean([r[p]["net"] for r in rows])),
                "days_below_0": sum(r[p]["net"] < -1e-9 for r in rows),
                "fills": sum(r[p]["fills"] for r in rows),
            }
            for p in ("default", "band")
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lean_data", type=Path, help="LEAN's Data folder")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--parts", default="model,drift,whole,policy")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    venue = day_files(args.lean_data, VENUE)
    shared = day_files(args.shared, SHARED)
    from spark.pipeline.learners import share_cores

    share_cores()
    started = time.monotonic()
    model, drift, whole, policy = {}, [], [], []
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        if "model" in parts:
            model = dict(pool.map(_model, list(venue.items()), chunksize=1))
        if "drift" in parts:
            drift = pool.map(_drift, drift_tasks(venue, shared), chunksize=1)
        each = [(n, str(p)) for n, paths in venue.items() for p in paths]
        if "whole" in parts:
            whole = pool.map(_whole, each, chunksize=1)
        if "policy" in parts:
            policy = pool.map(_policy, each, chunksize=1)
    report = {
        "seconds": round(time.monotonic() - started, 1),
        "summary": summarise(model, drift, whole, policy),
        "model": model,
        "drift": drift,
        "whole": whole,
        "policy": policy,
    }
    if args.json:
        print(json.dumps(report, indent=1, default=float))
        return 0
    s = report["summary"]
    for key, r in s["model"].items():
        print(f"model {key:<16} {r['pass']:>2}/{r['days']} day-files pass both bars; "
              f"AUC mean {r['mean_auc']:.4f}, worst {r['worst_auc']:.4f}")  # fmt: skip
    for name, runs in model.items():
        for how, rows in runs.items():
            print(f"  {name} {how:<8}", " ".join(f"{r['day'][4:]}:{r['auc']:.3f}" for r in rows))
    for kind, r in s["drift"].items():
        print(f"drift {kind:<11} {r['caught']:>2}/{r['streams']} caught within {WITHIN:,} ticks, "
              f"{r['with_false_alarm']} with an alarm before the switch")  # fmt: skip
    for r in drift:
        verdict = "caught" if r["caught"] else "MISSED"
        delay = f"delay {r['delay']:,} ({r['by']})" if r["delay"] else "no alarm within 2,000"
        print(f"  {r['stream']:<32} {verdict:<7} {delay}, {r['false_alarms']} before")
    for name, r in s["whole"].items():
        print(f"whole {name}: {r['day_files']} day-files, {r['ticks']:,} ticks, "
              f"{r['alarms']} alarms ({r['per_100k']:.3f} per 100k), "
              f"{r['over_1_per_100k']} day-files over 1")  # fmt: skip
    for r in whole:
        if r["alarms"]:
            print(f"  {r['instrument']} {r['day']}: {', '.join(r['alarms'])}")
    for name, r in s["policy"].items():
        for p, f in r.items():
            print(f"policy {name} {p:<7} net {f['net_per_day']:>11,.2f} a day-file, "
                  f"{f['days_below_0']} day-files below 0, {f['fills']:,} fills")  # fmt: skip
    print(f"{report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
