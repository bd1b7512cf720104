"""What the rollover window costs: the streams of `bench/drift_kind_live.py --shipped` moved
in time so that their switch comes inside the window, or just after it (session 36).

    .venv/bin/python -m bench.drift_rollover_cost [DATA] [--json]

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
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drift_profile_live import BEFORE, RULES, verdict  # noqa: E402
from bench.drift_profile_rule import AFTER, read_data, stream_roles  # noqa: E402

NEW_YORK = ZoneInfo("America/New_York")
PLACES = {"as recorded": None, "17:00": dt.time(17, 0), "18:35": dt.time(18, 35)}


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


def _run(task):
    role, name, kind, a, b, place, path = task
    from spark.research.drift import _stream, gate_alarms

    stream, switch = _stream(a, b, kind, BEFORE, AFTER)
    alarms = gate_alarms(moved(stream, switch, PLACES[place]), RULES[1], path)
    return {"role": role, "stream": name, "kind": kind, "place": place,
            "symbol": stream.symbols[0], **verdict(alarms, switch)}  # fmt: skip


def main(argv=None) -> int:
    import multiprocessing

    from spark.research.drift import streams
    from spark.settings import BUNDLED_PATH

    started = time.perf_counter()
    args, root, by, loaded = read_data(__doc__, argv)
    roles = stream_roles({n: [len(b) for b in w] for n, w in loaded.items()})
    del loaded
    tasks = []
    for role, at in roles.items():
        for name, a, b, kind in streams(root, None, "last"):
            a_day = by[a.instrument][at[a.instrument]]
            b_day = by[b.instrument][at[b.instrument]] if b is not None else None
            for place in PLACES:
                tasks.append((role, name, kind, a_day, b_day, place, str(BUNDLED_PATH)))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rows = pool.map(_run, tasks)
    out = {"seconds": round(time.perf_counter() - started), "rows": rows, "summary": {}}
    for role in roles:
        for place in PLACES:
            for fx in (True, False):
                mine = [r for r in rows if r["role"] == role and r["place"] == place
                        and (r["symbol"] in ("EURUSD", "NZDUSD")) == fx]  # fmt: skip
                kinds: dict[str, list[int]] = {}
                for r in mine:
                    k = kinds.setdefault(r["kind"], [0, 0])
                    k[0] += r["caught"]
                    k[1] += 1
                out["summary"][f"{role} {place} {'fx' if fx else 'stock'}"] = {
                    "caught": sum(r["caught"] for r in mine),
                    "streams": len(mine),
                    "with_false_alarm": sum(r["false_alarms"] > 0 for r in mine),
                    "by_kind": kinds,
                }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{out['seconds']} s; the default rule with the shipped file; switch placed at:")
    for key, s in out["summary"].items():
        kinds = ", ".join(f"{k} {c}/{n}" for k, (c, n) in s["by_kind"].items())
        print(f"  {key:<28} caught {s['caught']:>2}/{s['streams']}, with a false alarm "
              f"{s['with_false_alarm']} ({kinds})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
