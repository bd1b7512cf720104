"""The drift gate's effect on PnL across switches (issue 16 point 3: "the gate's effect on
PnL across the switches reported"); the report is docs/gate-effect.md.

The streams are those of ``spark research drift`` on the test days (each instrument's last
day-file): every ordered pair of instruments, A then B under one symbol (B's prices scaled
to go on from A's last mid, ``same_level``: PnL across a jump from 1.38 to 180 would be an
artefact), and the synthetic switches of real days (volatility x3, spread x3, a drifting
mid, a frozen feed). Each runs through ``run_backtest`` — the live pipeline with the paper
executor — twice per policy: with the shipped gate (the default ``SPARK_GATE_RULE``,
``break+dt_spread`` since session 14, with the shipped kinds of market's profile part since
session 31) and without a gate, everything else the shipped
defaults but the model (logreg: gbm's refits would make the 160 backtests take half an hour
here) and the daily drawdown limit (lifted: it stops the band policy before most switches,
and then no gate can change anything). Two policies: the cost-aware default (``min_edge`` 4
x cost) and the band policy (``min_edge`` 0, which trades every band crossing), since the
default trades little and a gate cannot change the PnL of a policy that does not trade.

Per stream and policy: net PnL, fills and fees with and without the gate, and the signals
the gate held back; the effect is PnL with the gate minus PnL without. Nothing is chosen
here, so nothing is tuned on these days: the figures report what the shipped gate does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

POLICIES = {"cost-aware (default)": {}, "band (min_edge 0)": {"min_edge": 0.0}}
MODEL = "logreg"
# the daily drawdown limit (5,000) stops the band policy before most switches, and then
# no gate can change anything: lifted here, as in the walk-forward tests
LIMITS = {"max_daily_drawdown": 1e9}


def measure_gate(task) -> tuple[str, dict]:
    """One stream's backtests: policy -> {"gate": figures, "no_gate": figures}."""
    from spark.backtest.engine import BacktestParams, run_backtest
    from spark.research.drift import _stream, same_level

    name, a, b, kind, before, after = task
    stream, switch = _stream(a, b, kind, before, after)
    if b is not None:
        stream = same_level(stream, switch)
    out: dict = {"switch_tick": switch, "ticks": len(stream), "policies": {}}
    for policy, extra in POLICIES.items():
        runs = {}
        for label, gate in (("gate", True), ("no_gate", False)):
            params = BacktestParams.from_dict({"model": MODEL, "gate": gate, "limits": LIMITS,
                                               **extra})  # fmt: skip
            result = run_backtest(stream, params, keep_trades=False)
            m = result.metrics()
            runs[label] = {k: float(m[k]) for k in ("pnl", "fills", "fees", "signals")}
            runs[label]["suppressed"] = float(m["suppressed"])
        runs["effect"] = runs["gate"]["pnl"] - runs["no_gate"]["pnl"]
        out["policies"][policy] = runs
    return name, out


def run_gate_effect(
    root: Path,
    *,
    before: int = 50_000,
    after: int = 20_000,
    jobs: int = 1,
    instruments: tuple[str, ...] | None = None,
    on_stream: Callable[[int, int], None] | None = None,
) -> dict:
    """Every test-day stream's backtests with and without the gate (module docstring)."""
    from spark.errors import SparkError
    from spark.research.drift import LEVEL, map_streams, streams

    started = time.monotonic()
    # every pair is levelled here (``same_level``): the drift matrix's levelled pairs would
    # be the same streams twice
    tasks = [(*s, before, after) for s in streams(root, instruments, "last") if s[3] != LEVEL]
    if not tasks:
        raise SparkError(f"none of {', '.join(instruments or ())} under {root}")
    results = map_streams(measure_gate, tasks, jobs, on_stream)
    ordered = {t[0]: results[t[0]] for t in tasks}
    return {
        "streams": ordered,
        "summary": summarise(ordered),
        "settings": {"before": before, "after": after, "model": MODEL, "data": str(root)},
        "seconds": time.monotonic() - started,
    }


def summarise(results: dict[str, dict]) -> dict:
    """Per policy and kind of stream (instrument pairs, each synthetic switch): streams,
    total PnL with and without the gate, total effect, streams the gate helped / hurt."""
    out: dict = {}
    for name, row in results.items():
        kind = "instrument pairs" if "->" in name else name.split(" ", 1)[1]
        for policy, runs in row["policies"].items():
            s = out.setdefault(policy, {}).setdefault(
                kind, {"streams": 0, "pnl_gate": 0.0, "pnl_no_gate": 0.0, "helped": 0, "hurt": 0}
            )
            s["streams"] += 1
            s["pnl_gate"] += runs["gate"]["pnl"]
            s["pnl_no_gate"] += runs["no_gate"]["pnl"]
            s["helped"] += runs["effect"] > 1e-9
            s["hurt"] += runs["effect"] < -1e-9
    for kinds in out.values():
        for s in kinds.values():
            s["effect"] = s["pnl_gate"] - s["pnl_no_gate"]
    return out


def markdown(m: dict) -> str:
    """The report: the summary per policy, then every stream."""
    lines = [
        "# The drift gate's effect on PnL (generated by `spark research gate`)",
        "",
        f"Streams of `spark research drift` on the test days ({m['settings']['before']:,} "
        f"ticks then {m['settings']['after']:,}), each backtested with the shipped gate "
        f"and without one; model {m['settings']['model']}, the daily drawdown limit "
        "lifted, every other setting the shipped default. Effect = net PnL with the gate − "
        f"without. {m['seconds']:.0f} s.",
        "",
        "## Summary",
        "",
        "| policy | streams | n | PnL with gate | PnL without | effect | helped | hurt |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for policy, kinds in m["summary"].items():
        for kind, s in kinds.items():
            lines.append(
                f"| {policy} | {kind} | {s['streams']} | {s['pnl_gate']:,.2f} | "
                f"{s['pnl_no_gate']:,.2f} | {s['effect']:,.2f} | {s['helped']} | {s['hurt']} |"
            )
    lines += [
        "",
        "## Every stream",
        "",
        "| stream | policy | PnL with gate | fills | held back | PnL without | fills | effect |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in m["streams"].items():
        for policy, runs in row["policies"].items():
            g, n = runs["gate"], runs["no_gate"]
            lines.append(
                f"| {name} | {policy} | {g['pnl']:,.2f} | {g['fills']:.0f} | "
                f"{g['suppressed']:.0f} | {n['pnl']:,.2f} | {n['fills']:.0f} | "
                f"{runs['effect']:,.2f} |"
            )
    return "\n".join(lines) + "\n"
