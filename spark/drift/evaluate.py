"""Measured gate quality: one data set, then another (a real regime change), through the live
pipeline's features, model and drift stage, and when each detector fires.

Both data sets run as one stream, under the first set's symbol, so the pipeline's
per-symbol detectors see the switch as a regime change of one instrument (an instrument
they had never seen would get detectors of its own, which cannot compare it with
anything). Reported per detector: the delay after the switch (ticks and event-time
seconds to the first alarm at or after it) and the false alarms per 100,000 ticks before
it.

Detectors, as the pipeline runs them (``spark.drift.stage``): ``gate`` (the settings' gate
rule, ``SPARK_GATE_RULE``: whichever of its parts alarms first), ``break`` (the jump and
frozen detectors), ``profile`` (the time-of-day profile detectors, with a profile in
``SPARK_DRIFT_PROFILE``), ``psi_confirmed`` (the confirmed rule named in
``SPARK_GATE_RULE``, else ``dt_spread``),
``psi_spread`` and ``psi_vol`` (the informational PSIs on those features,
window ``SPARK_DRIFT_WINDOW``, threshold ``SPARK_DRIFT_THRESHOLD``) and ``adwin`` (the
model's errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from spark.pipeline.batch import TickBatch
from spark.pipeline.offline import OfflineRun
from spark.settings import BREAK, CONFIRMED_RULES, DT_SPREAD, PROFILE, Settings

# name -> what identifies its alerts: (detector names, feature)
DETECTORS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "gate": ((), None),  # the settings' gate rule, whichever of its parts alarms (drift_eval)
    "break": (("jump", "frozen"), "ret_bp"),
    "profile": (  # with SPARK_DRIFT_PROFILE only
        ("profile_spread_up", "profile_move_up", "profile_spread_down", "profile_move_down"),
        None,
    ),
    "psi_confirmed": (("psi_confirmed",), None),  # the confirmed rule, whichever it is
    "psi_spread": (("psi",), "spread_bp"),
    "psi_vol": (("psi",), "vol_bp"),
    "adwin": (("adwin",), None),
}


def one_stream(first: TickBatch, then: TickBatch) -> TickBatch:
    """``first`` then ``then`` as one batch, every tick under ``first``'s first symbol."""
    name = first.symbols[0] if first.symbols else (then.symbols[0] if then.symbols else "STREAM")
    joined = TickBatch.concat([first, then])
    joined.symbols, joined.code = [name], np.zeros(len(joined), np.int32)
    joined.offset = np.arange(len(joined), dtype=np.int64)
    return joined


def drift_eval(
    first: TickBatch,
    then: TickBatch,
    settings: Settings,
    detectors: list[str] | None = None,
    on_tick: Callable[[int], None] | None = None,
) -> dict:
    from spark.settings import profile_path

    profiled = bool(profile_path(settings.drift.profile))
    names = detectors or [n for n in DETECTORS if profiled or n != "profile"]
    unknown = set(names) - set(DETECTORS)
    if unknown:
        raise ValueError(f"unknown detectors {sorted(unknown)}; known: {', '.join(DETECTORS)}")
    if "profile" in names and not profiled:
        raise ValueError(
            "the profile detector needs a profile: SPARK_DRIFT_PROFILE is none; leave it unset "
            "for the shipped kinds of market or build one with `spark drift profile`"
        )
    from spark.drift.stage import CONFIRMED_GROUPS, rule_parts

    settings_rule = settings.drift.rule
    parts = rule_parts(settings_rule)
    confirmed = next((p for p in parts if p in CONFIRMED_RULES), DT_SPREAD)
    settings = replace(
        settings.with_models(challengers=()),
        drift=replace(
            settings.drift,
            watch=("spread_bp", "vol_bp"),
            rule=f"{BREAK}+{confirmed}" + (f"+{PROFILE}" if profiled else ""),  # all measured
            concept_gates=False,
        ),
        gate=True,
        trading=False,
    )
    rule_features = "&".join(m[0] for m in CONFIRMED_GROUPS[confirmed][0])
    stream = one_stream(first, then)
    switch, count = len(first), len(stream)
    switch_ts = int(stream.ts[switch]) if switch < count else None
    gating = ("jump", "frozen") if BREAK in parts else ()
    if any(p in CONFIRMED_RULES for p in parts):
        gating += ("psi_confirmed",)
    if PROFILE in parts:
        gating += DETECTORS["profile"][0]
    # name -> (its alerts' detector names, feature); the gate row: whatever the rule gates on
    matchers = {n: (gating, None) if n == "gate" else DETECTORS[n] for n in names}
    alarms: dict[str, list[tuple[int, int]]] = {n: [] for n in names}
    for lo, idx, result in OfflineRun(settings).run(stream, on_chunk=on_tick):
        for i, alert in result.alerts:
            for name, (detector, feature) in matchers.items():
                if alert["detector"] in detector and feature in (None, alert["feature"]):
                    if name == "gate" and alert["severity"] != "warning":
                        continue  # muted in a release window (SPARK_DRIFT_RELEASES)
                    alarms[name].append((int(lo + idx[i]), alert["ts"]))
    out = {"ticks_before": switch, "ticks_after": count - switch, "detectors": {}}
    for name in names:
        before = [a for a in alarms[name] if a[0] < switch]
        after = [a for a in alarms[name] if a[0] >= switch]
        first_after = after[0] if after else None
        out["detectors"][name] = {
            "watches": DETECTORS[name][1]
            or {
                "psi_confirmed": rule_features,
                "gate": settings_rule,
                "profile": "spread_bp&ret_bp",
            }.get(name, "error"),
            "delay_ticks": None if first_after is None else first_after[0] + 1 - switch,
            "delay_s": None if first_after is None else (first_after[1] - switch_ts) / 1e6,
            "false_alarms": len(before),
            "false_alarms_per_100k": len(before) / switch * 1e5 if switch else 0.0,
            "alarms_after": len(after),
        }
    default = "gate" if "gate" in names else names[0]
    out["detector"] = default
    out["delay_ticks"] = out["detectors"][default]["delay_ticks"]
    out["false_alarms_per_100k"] = out["detectors"][default]["false_alarms_per_100k"]
    return out


DELAY_TARGET, FALSE_ALARM_TARGET = 2000, 1.0  # issue 16: ticks to the alarm; per 100k ticks


def delay_bars(result: dict) -> tuple[list[str], list[float]]:
    """(labels, delays in ticks) of ``drift_eval``'s detectors for a chart: a detector that
    never alarmed after the switch is drawn at every tick after it, labelled "(none)", so
    it reads as the worst, not as an instant alarm."""
    labels, values = [], []
    for name, d in result["detectors"].items():
        never = d["delay_ticks"] is None
        labels.append(f"{name} (none)" if never else name)
        values.append(float(result["ticks_after"] if never else d["delay_ticks"]))
    return labels, values


def write_eval_pdf(result: dict, path, title: str) -> None:
    """``drift_eval``'s result as a PDF: detection delay and false alarms per detector as bar
    charts (red lines: the targets, 2,000 ticks and 1 per 100k), then the figures."""
    from spark.research.charts import bar_chart, table, write_pdf

    labels, delays = delay_bars(result)
    names = list(result["detectors"])
    rows = [["detector", "watches", "delay (ticks)", "delay (s)", "false alarms", "per 100k"]]
    for name in names:
        d = result["detectors"][name]
        rows.append(
            [
                name + (" (default)" if name == result["detector"] else ""),
                d["watches"],
                "none" if d["delay_ticks"] is None else f"{d['delay_ticks']:,}",
                "–" if d["delay_s"] is None else f"{d['delay_s']:.0f}",
                f"{d['false_alarms']:,}",
                f"{d['false_alarms_per_100k']:.1f}",
            ]
        )
    write_pdf(
        path,
        title,
        [
            f" {result['ticks_before']:,} ticks before the switch, {result['ticks_after']:,} "
            "after; a detector that never alarmed is drawn at every tick after the switch.",
            bar_chart(
                "ticks from the switch to the first alarm (red: 2,000)",
                labels,
                delays,
                DELAY_TARGET,
            ),  # fmt: skip
            bar_chart(
                "false alarms per 100k ticks before the switch (red: 1)",
                names,
                [result["detectors"][n]["false_alarms_per_100k"] for n in names],
                FALSE_ALARM_TARGET,
            ),
            table(rows),
        ],
    )
