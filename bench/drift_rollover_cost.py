"""What the rollover window costs: the streams of `bench/drift_kind_live.py --shipped` moved
in time so that their switch comes inside the window, or just after it (session 36).

    .venv/bin/python -m bench.drift_rollover_cost [DATA] [--no-window-file] [--json]

Session 36 shipped the fx kind learnt without the FX day's rollover, and workers mute a
currency pair's gate rule (all but the break part) from 16:55 to 18:30 New York. None of
the shared data's streams switches in that window, so the eighth run that chose it could
not weigh what a switch there costs. This measures it and chooses nothing. Each of the 60
streams of each role (instrument pairs as quoted and at the same level, four synthetic
switches), run as the worker runs it (logreg, trading off, the price screen on, the
default rule and the shipped file), with every timestamp moved by one constant so that the
switch tick comes at:

* ``as recorded``: not moved (what `drift_kind_live --shipped` reports);
* ``17:00``: 17:00 New York on the switch's own day, inside the window;
* ``18:35``: 18:35 New York, 5 minutes after the window.

The ticks, their spacing and order are the recorded ones; only the clock moves. The kinds
read no time of day, so the only thing that differs is which alarms fall in a window.
Streams under a stock's name are not muted (the stock kind has no window), so they serve
as a check that nothing else moves. Caught: an alarm within 2,000 ticks of the switch and
none before.

Session 37 (after the eleventh run took the window out; reported, nothing chosen):

* a fourth placement, ``rollover, real ticks``, for the streams whose first instrument is
  a currency pair. A moved clock carries no rollover: the ticks put at 17:00 were recorded
  at another hour, so the spreads do not widen there. Here the switch tick is the first
  tick at or after 17:00 New York in the first instrument's own day-file (the first such
  rollover with 20,000 ticks before it and 20,000 after; up to 50,000 before are taken),
  and what follows is the real ticks from there: the same instrument's (a synthetic
  switch applied to them), or the second instrument's from its own 17:00 New York if it
  is a pair (a stock's from its first tick, as the other placements take it);
* every placement run with two files: the shipped one, and the same kinds with the fx
  kind learnt and muted with session 36's 90-minute window (``--no-window-file`` skips it).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drift_profile_live import BEFORE, RULES, verdict  # noqa: E402
from bench.drift_profile_rule import AFTER, read_data, stream_roles  # noqa: E402

NEW_YORK = ZoneInfo("America/New_York")
REAL = "rollover, real ticks"
PLACES = {"as recorded": None, "17:00": dt.time(17, 0), "18:35": dt.time(18, 35), REAL: None}
LEAST_BEFORE = 20_000  # a real rollover's stream needs the kind's warm-up (15,000) and more


def shift_to(ts, switch: int, at: dt.time) -> int:
    """The constant (µs) that moves tick ``switch`` of ``ts`` to ``at`` New York on its own
    day."""
    when = dt.datetime.fromtimestamp(int(ts[switch]) / 1e6, dt.UTC).astimezone(NEW_YORK)
    target = dt.datetime.combine(when.date(), at, NEW_YORK)
    return int(target.timestamp() * 1e6) - int(ts[switch])


def moved(stream, switch: int, at: dt.time | None):
    """``stream`` with every timestamp moved so that tick ``switch`` comes at ``at`` New
    York on its own day (None: as recorded)."""
    if at is None:
        return stream
    out = stream.take(0, len(stream))
    out.ts = stream.ts + shift_to(stream.ts, switch, at)
    return out


def is_fx(instrument: str) -> bool:
    """Whether ``instrument`` is a currency pair (its kind of market, as the research reads
    it: ``spark.research.select.MARKET``)."""
    from spark.research.select import MARKET

    return MARKET.get(instrument) == "fx"


def rollover_tick(ts, before: int, after: int) -> int | None:
    """The first tick at or after 17:00 New York, on any day ``ts`` covers, with at least
    ``before`` ticks before it and ``after`` from it on; None if there is none."""
    from spark.drift.releases import rollovers

    for at in rollovers(ts, 0, 1)[:, 0]:
        k = int(np.searchsorted(ts, at))
        if k >= before and len(ts) - k >= after:
            return k
    return None


def at_rollover(a, b, kind: str, before: int, after: int):
    """A stream whose switch is ``a``'s first tick at 17:00 New York (``rollover_tick``),
    every tick real: up to ``before`` of ``a`` before it, then ``after`` of ``a`` with the
    synthetic switch ``kind`` (``b`` None), or of ``b`` from its own 17:00 New York (a
    pair) or its first tick (a stock), its clock moved to follow; (stream, switch), or
    None when ``a``'s day has no such rollover."""
    from spark.research.drift import joined, synthetic
    from spark.research.select import load_day

    day = load_day(a, None)
    k = rollover_tick(day.ts, LEAST_BEFORE, after if b is None else 0)
    if k is None:
        return None
    first = day.take(max(0, k - before), k)
    if b is None:
        then = synthetic(day.take(k, k + after), kind)
    else:
        other = load_day(b, None)
        kb = rollover_tick(other.ts, 0, after) if is_fx(b.instrument) else 0
        then = other.take(kb or 0, (kb or 0) + after)
    return joined(first, then, kind)


def _run(task):
    role, name, kind, a, b, place, path, file = task
    from spark.research.drift import _stream, gate_alarms

    if place == REAL:
        made = at_rollover(a, b, kind, BEFORE, AFTER)
        if made is None:
            return None
        stream, switch = made
    else:
        stream, switch = _stream(a, b, kind, BEFORE, AFTER)
        stream = moved(stream, switch, PLACES[place])
    alarms = gate_alarms(stream, RULES[1], path)
    return {"role": role, "stream": name, "kind": kind, "place": place, "file": file,
            "symbol": stream.symbols[0], "switch_at": _new_york(stream.ts[switch]),
            **verdict(alarms, switch)}  # fmt: skip


def _new_york(us) -> str:
    return (
        dt.datetime.fromtimestamp(int(us) / 1e6, dt.UTC)
        .astimezone(NEW_YORK)
        .strftime("%m-%d %H:%M")
    )


def window_file(root, folder: Path) -> Path:
    """The shipped kinds with the fx kind learnt and muted with session 36's 90-minute
    rollover window, written to ``folder``."""
    from spark.research.drift import SHIPPED_SETTINGS, shipped_kinds

    settings = {**SHIPPED_SETTINGS, "fx": {**SHIPPED_SETTINGS["fx"], "rollover": 90}}
    path = folder / "kinds-window-90.json"
    shipped_kinds(root, settings)[0].save(path)
    return path


def main(argv=None) -> int:
    import multiprocessing

    from spark.research.drift import streams
    from spark.settings import BUNDLED_PATH

    started = time.perf_counter()
    window = "--no-window-file" not in (argv := list(sys.argv[1:] if argv is None else argv))
    args, root, by, loaded = read_data(__doc__, [a for a in argv if a != "--no-window-file"])
    roles = stream_roles({n: [len(b) for b in w] for n, w in loaded.items()})
    del loaded
    folder = tempfile.TemporaryDirectory(prefix="spark-rollover-")
    files = {"shipped": str(BUNDLED_PATH)}
    if window:
        files["window 90"] = str(window_file(root, Path(folder.name)))
    tasks = []
    for role, at in roles.items():
        for name, a, b, kind in streams(root, None, "last"):
            a_day = by[a.instrument][at[a.instrument]]
            b_day = by[b.instrument][at[b.instrument]] if b is not None else None
            for place in PLACES:
                if place == REAL and not is_fx(a.instrument):
                    continue
                for file, path in files.items():
                    tasks.append((role, name, kind, a_day, b_day, place, path, file))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rows = [r for r in pool.map(_run, tasks) if r is not None]
    folder.cleanup()
    out = {"seconds": round(time.perf_counter() - started), "rows": rows, "summary": {}}
    for file in files:
        for role in roles:
            for place in PLACES:
                for fx in (True, False):
                    mine = [r for r in rows if r["role"] == role and r["place"] == place
                            and r["file"] == file and is_fx(r["symbol"]) == fx]  # fmt: skip
                    if not mine:
                        continue
                    kinds: dict[str, list[int]] = {}
                    for r in mine:
                        k = kinds.setdefault(r["kind"], [0, 0])
                        k[0] += r["caught"]
                        k[1] += 1
                    out["summary"][f"{file}: {role} {place} {'fx' if fx else 'stock'}"] = {
                        "caught": sum(r["caught"] for r in mine),
                        "streams": len(mine),
                        "with_false_alarm": sum(r["false_alarms"] > 0 for r in mine),
                        "by_kind": kinds,
                    }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{out['seconds']} s; the default rule; file: role, switch placed at:")
    for key, s in out["summary"].items():
        kinds = ", ".join(f"{k} {c}/{n}" for k, (c, n) in s["by_kind"].items())
        print(f"  {key:<28} caught {s['caught']:>2}/{s['streams']}, with a false alarm "
              f"{s['with_false_alarm']} ({kinds})")  # fmt: skip
    print(f"streams at a real rollover ({REAL}):")
    for r in rows:
        if r["place"] == REAL:
            state = "caught" if r["caught"] else ("false alarm" if r["false_alarms"] else "missed")
            print(f"  {r['file']:<9} {r['role']:<5} {r['stream']:<28} switch {r['switch_at']} "
                  f"New York: {state}" + (f" by {r['by']} after {r['delay']}" if r["caught"]
                                          else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
