"""Should a refit weigh recent labels more? The protocol, on the selection split of every
instrument.

    .venv/bin/python -m bench.gbm_recency [DATA] [--ticks N] [--json]

Why: session 14 found that the trees go stale fast (refitting every 7,500 labels instead of
5,000 cost 0.002 of mean AUC, every 10,000 cost 0.007; docs/ml.md), and refitting more often
costs the worker CPU it does not have (docs/hot-path.md). Weighing each row of the 40,000-
label window by its age is free: the same fits, the same refit points, the recent labels
counting more. Session 27 saw gbm follow the last trend on AIG 2013-10-09 (a test day), so
recency may as well hurt there; nothing is fit on that day.

Candidates (``HALF_LIVES``): a row's weight halves every H labels of age (the newest weighs
1), H = 2,500, 5,000, 10,000 or 20,000, or every row the same (shipped, H = 0); everything
else shipped (30 trees of 15 leaves, leaves of at least 200 labels, learning rate 0.15,
refit every 5,000 labels on the last 40,000).

Days and rule: ``bench/gbm_protocol.py``, the rule of session 27, written down again here
before this bench was first run (session 29): a half-life replaces equal weights if, over
the 16 train day-files, its mean AUC is at least 0.005 above the shipped setting's and it is
below it on at most 4 of them; of several, the largest mean gain.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gbm_protocol import main  # noqa: E402

HALF_LIVES = (0, 2_500, 5_000, 10_000, 20_000)
SHIPPED = 0


def apply(half_life) -> None:
    """Put a candidate half-life in force in this process's learners."""
    from spark.pipeline import learners

    learners.GBM_HALF_LIFE = half_life


def label(half_life) -> str:
    return "equal weights" if not half_life else f"half-life {half_life:>6,}"


if __name__ == "__main__":
    sys.exit(main("bench.gbm_recency", __doc__, HALF_LIVES, SHIPPED, label))
