"""Prometheus metrics shared by the CLI jobs and the worker's agents.

Names follow Prometheus conventions: units in names, ``_total`` on counters,
labels limited to bounded sets (topic ids and reason codes, never symbols of
unbounded count or offsets).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("spark_events_in_total", "Messages consumed by an agent, per topic.", ["topic"])
EVENTS_OUT = Counter("spark_events_out_total", "Messages produced by Spark, per topic.", ["topic"])
DEAD_LETTERS = Counter(
    "spark_dead_letters_total",
    "Messages sent to a dead-letter topic, per source topic, stage and reason.",
    ["topic", "stage", "reason"],
)
BATCH_SECONDS = Histogram(
    "spark_agent_batch_seconds",
    "Time an agent spends on one batch of messages.",
    ["agent"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REFIT_WAIT = Counter(
    "spark_refit_wait_seconds_total",
    "Time the tick loop waited for a model's new trees at their swap point (a backlog "
    "replayed faster than refits train; a live stream at tick rates does not wait).",
)
TICKS_ACCEPTED = Counter(
    "spark_ticks_accepted_total", "Ticks that passed the worker's ingest validation."
)
MODEL_LABELS = Counter(
    "spark_model_labels_total",
    "Labels resolved and learned, per model version.",
    ["model_id", "model_version"],
)
MODEL_AUC = Gauge(
    "spark_model_auc",
    "ROC AUC over the last 2,000 labelled predictions, per model version.",
    ["model_id", "model_version"],
)
MODEL_PRECISION_AT_20 = Gauge(
    "spark_model_precision_at_20",
    "Share correct among the 20 most confident of each 1,000 labelled predictions (last 2,000).",
    ["model_id", "model_version"],
)
SNAPSHOTS = Counter(
    "spark_model_snapshots_total",
    "Model snapshots published to the registry, per outcome.",
    ["outcome"],
)
CHECKPOINTS = Counter(
    "spark_pipeline_checkpoints_total",
    "Pipeline checkpoints per outcome: written (with a transaction) or restored (on assignment).",
    ["outcome"],
)
CHECKPOINT_BYTES = Gauge(
    "spark_pipeline_checkpoint_bytes", "Size of the last pipeline checkpoint written, bytes."
)
PROMOTIONS = Counter("spark_model_promotions_total", "Challengers promoted to champion.")
PROCESSING_LATENCY = Histogram(
    "spark_processing_latency_seconds",
    "Wall time from a tick's arrival on Kafka (its message timestamp) to its features, "
    "prediction or signal being produced.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
LAST_BATCH = Gauge(
    "spark_agent_last_batch_timestamp_seconds",
    "Unix time an agent last finished a batch (a stalled agent stops moving it).",
    ["agent"],
)
STAGE_HEALTHY = Gauge(
    "spark_stage_healthy",
    "1 when a stage of the worker is healthy (or starting), 0 when stalled or dead (/health).",
    ["stage"],
)
CONSUMER_LAG = Gauge(
    "spark_consumer_lag_messages",
    "Messages on a partition not yet committed by the worker group (true end offsets).",
    ["topic", "partition"],
)
DRIFT_ALERTS = Counter(
    "spark_drift_alerts_total",
    "Drift alerts raised, per detector and severity (warning closes the gate; info is a "
    "non-gating feature's data drift).",
    ["detector", "severity"],
)
SIGNALS_SUPPRESSED = Counter(
    "spark_signals_suppressed_total",
    "Signals a drift gate kept from the signals topic, per gate state.",
    ["state"],
)
GATE_STATES = Gauge(
    "spark_gates", "Symbols per drift gate state (open, closed, probation).", ["state"]
)
GATES_NOT_OPEN = Gauge(
    "spark_gates_not_open", "Symbols whose drift gate is closed or in probation."
)
# --- paper executor (labels: order outcome, limit name: bounded sets; no per-symbol labels)
EXECUTOR_WAITING = Gauge(
    "spark_executor_signals_waiting",
    "Signals the paper executor holds until a quote of their symbol at least the fill "
    "latency later arrives (then decided; with spark_executor_signals_total they account "
    "for every signal).",
)
EXECUTOR_SIGNALS = Counter(
    "spark_executor_signals_total",
    "Signals the paper executor decided, per outcome: order, rejected or no_change (target "
    "already held).",
    ["outcome"],
)
PAPER_ORDERS = Counter(
    "spark_paper_orders_total",
    "Paper orders decided by the executor, per outcome (accepted or rejected).",
    ["outcome"],
)
ORDER_REJECTIONS = Counter(
    "spark_order_rejections_total",
    "Orders the pre-trade risk checks refused, per limit (kill_switch included).",
    ["limit"],
)
PAPER_FILLS = Counter("spark_paper_fills_total", "Simulated fills of paper orders.")
PAPER_PNL = Gauge(
    "spark_paper_pnl",
    "Paper PnL over all symbols in the quote currency, realized (fees included) or unrealized.",
    ["kind"],
)
PAPER_DRAWDOWN = Gauge(
    "spark_paper_daily_drawdown",
    "Today's (UTC, event time) equity high-water mark minus equity, quote currency.",
)
PAPER_GROSS_NOTIONAL = Gauge(
    "spark_paper_gross_notional", "Sum over symbols of |position| x mid, quote currency."
)
PAPER_OPEN_POSITIONS = Gauge("spark_paper_open_positions", "Symbols with a non-zero position.")
KILL_SWITCH = Gauge(
    "spark_kill_switch_engaged", "1 while the executor's kill switch stops all orders, else 0."
)
RISK_LIMIT = Gauge(
    "spark_risk_limit",
    "The executor's risk limits in force (configured or set by command).",
    ["limit"],
)
# --- jobs (labels: job kind and status: bounded sets)
JOBS = Counter(
    "spark_jobs_total",
    "Jobs finished by a worker, per kind and status (ok or failed).",
    ["kind", "status"],
)
JOB_SECONDS = Histogram(
    "spark_job_duration_seconds",
    "Wall time of a job from start to result, per kind.",
    ["kind"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
JOBS_RUNNING = Gauge("spark_jobs_running", "Jobs a worker is running now, per kind.", ["kind"])
# --- topic exports run as jobs (docs/export.md)
EXPORT_ROWS = Counter("spark_export_rows_total", "Rows written by topic export jobs.")
EXPORT_SKIPPED = Counter(
    "spark_export_skipped_total", "Records topic export jobs read and did not write."
)
EXPORT_BYTES = Counter("spark_export_bytes_total", "Bytes of the files topic export jobs wrote.")
EXPORT_SECONDS = Histogram(
    "spark_export_seconds",
    "Wall time of one topic export job's read and write.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
