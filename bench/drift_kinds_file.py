"""Writes the shipped default drift profile, ``spark/drift/kinds.json`` (session 31).

    .venv/bin/python -m bench.drift_kinds_file [DATA] [--out FILE] [--check]

A profile of kinds of market only (``spark.research.drift.shipped_kinds``): ``fx`` from
EURUSD and NZDUSD, ``stock`` from AIG, BAC and IBM (their regular session), learnt with the
settings the fifth run of bench/drift_self_rule.py chose, on each instrument's train days
only (its day-files up to and including its train stream day); ``@pair`` symbols watched by
``fx``, ``@ticker`` symbols by ``stock``. Workers read it when SPARK_DRIFT_PROFILE is unset
(``bundled``). The days after (FX 2014-05-07 on, stocks 2013-10-10 on) are out of sample
for it: `python -m bench.drift_kind_live --shipped` reports it on them. ``--check``: write
nothing, exit 1 if FILE differs from what the data gives.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHIPPED = Path(__file__).resolve().parent.parent / "spark" / "drift" / "kinds.json"


def main(argv=None) -> int:
    from spark.research.drift import shipped_kinds

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2]
                                                      / "shared" / "data"))  # fmt: skip
    parser.add_argument("--out", default=str(SHIPPED))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    profile, dates = shipped_kinds(Path(args.data))
    text = json.dumps(profile.as_dict(), indent=1) + "\n"
    took = time.perf_counter() - started
    for name, days in sorted(dates.items()):
        print(f"{name}: {len(days)} train day-files, {days[0]} .. {days[-1]}")
    if args.check:
        same = Path(args.out).read_text() == text
        print(f"{args.out}: {'as the data gives' if same else 'DIFFERS from the data'} "
              f"({took:.0f} s)")  # fmt: skip
        return 0 if same else 1
    Path(args.out).write_text(text)
    print(f"wrote {args.out} ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
