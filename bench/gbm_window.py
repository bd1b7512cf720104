"""Should a refit see more labels? The protocol, on the selection split of every instrument.

    .venv/bin/python -m bench.gbm_window [DATA] [--ticks N] [--json]

Why: weighing the recent labels more (``bench/gbm_recency.py``, session 29) lowered the
mean train AUC at every half-life tried (−0.010 at 2,500 labels, −0.002 at 20,000), and
session 13 measured a window of 20,000 labels below one of 40,000. Both point the other
way from "trees go stale": more labels per fit may help. A longer window costs CPU per fit
(the rows binned and scanned), which the worker's throughput pays (docs/hot-path.md); this
bench measures only the quality, and a window that passes would be measured for speed
before it ships.

Candidates (``WINDOWS``): the last 40,000 labels (shipped), 60,000 or 80,000; everything
else shipped (30 trees of 15 leaves, leaves of at least 200 labels, learning rate 0.15,
refit every 5,000 labels). Run with ``--ticks 200000`` (written before the run): at the
protocol's usual 50,000 ticks a day-file no window past 40,000 labels ever fills.

Days and rule: ``bench/gbm_protocol.py``, the rule of session 27, written down again here
before this bench was first run (session 29): a window replaces 40,000 if, over the 16
train day-files, its mean AUC is at least 0.005 above the shipped setting's and it is below
it on at most 4 of them; of several, the largest mean gain.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gbm_protocol import main  # noqa: E402

WINDOWS = (40_000, 60_000, 80_000)
SHIPPED = 40_000


def apply(window) -> None:
    """Put a candidate window in force for this process's pipelines."""
    from bench import gbm_protocol

    gbm_protocol.MODEL_CHANGES["gbm_window"] = window


def label(window) -> str:
    return f"window {window:>6,}"


if __name__ == "__main__":
    sys.exit(main("bench.gbm_window", __doc__, WINDOWS, SHIPPED, label))
