"""Spark: a streaming trading-signal platform on Kafka (README.md, docs/architecture.md)."""

import os

# LightGBM trains refits on OpenMP threads (libgomp). By default an idle OpenMP thread spins
# for a while before it sleeps, and with more threads than cores (a tick loop, refit
# threads, another worker on the same machine) the spinning threads take the cores the
# others need: measured on this 2-core machine, one worker ran at 10.7-11.0k ticks/s with
# spinning and 17.2-19.3k without, two workers at 4.1-23.5k and 20.4-23.0k (docs/hot-path.md,
# session 20). Set before anything loads libgomp; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
