"""Build Spark's Grafana dashboards from code (grafana-foundation-sdk) into dashboards/*.json.

    python -m monitoring.grafana.build          # rewrite the committed JSON
    python -m monitoring.grafana.build --check  # exit 1 if the JSON is not what the code builds

Never edit the JSON by hand: tests/test_dashboards.py fails when it differs
from this code, and runs every panel's query against a real Prometheus that
scrapes a real worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")


def query(expr: str, legend: str | None = None, ref: str = "A") -> Dataquery:
    q = Dataquery().expr(expr).ref_id(ref)
    return q.legend_format(legend) if legend else q


def series(title: str, unit: str, *queries: Dataquery, description: str = "") -> Timeseries:
    panel = Timeseries().title(title).unit(unit).datasource(DATASOURCE).description(description)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def stat(title: str, unit: str, q: Dataquery, description: str = "") -> Stat:
    return (
        Stat()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .description(description)
        .with_target(q)
    )


def pipeline() -> Dashboard:
    return (
        Dashboard("Spark — pipeline health")
        .uid("spark-pipeline")
        .tags(["spark"])
        .refresh("10s")
        .time("now-1h", "now")
        .with_row(Row("Throughput"))
        .with_panel(
            series(
                "Messages consumed per topic",
                "ops",
                query("sum by (topic) (rate(spark_events_in_total[1m]))", "{{topic}}"),
            )
        )
        .with_panel(
            series(
                "Messages produced per topic",
                "ops",
                query("sum by (topic) (rate(spark_events_out_total[1m]))", "{{topic}}"),
            )
        )
        .with_panel(
            series(
                "Dead letters per reason",
                "ops",
                query(
                    "sum by (topic, stage, reason) (rate(spark_dead_letters_total[1m]))",
                    "{{topic}} {{stage}} {{reason}}",
                ),
            )
        )
        .with_panel(stat("Ticks accepted", "short", query("sum(spark_ticks_accepted_total)")))
        .with_row(Row("Lag and latency"))
        .with_panel(
            series(
                "Consumer lag",
                "short",
                query("sum by (topic) (spark_consumer_lag_messages)", "{{topic}}"),
                description="Messages not yet committed by the worker group (true end offsets).",
            )
        )
        .with_panel(
            series(
                "Latency from tick arrival, p95",
                "s",
                query(
                    "histogram_quantile(0.95, sum by (le, stage) "
                    "(rate(spark_processing_latency_seconds_bucket[1m])))",
                    "{{stage}}",
                ),
                description="SLO: prediction p95 under 80 ms.",
            )
        )
        .with_panel(
            series(
                "Agent batch time, p95",
                "s",
                query(
                    "histogram_quantile(0.95, sum by (le, agent) "
                    "(rate(spark_agent_batch_seconds_bucket[1m])))",
                    "{{agent}}",
                ),
            )
        )
        .with_panel(
            series(
                "Tick loop waiting for refits (share of time)",
                "percentunit",
                query("rate(spark_refit_wait_seconds_total[1m])", "{{instance}}"),
                description="Time the tick loop waits for a gbm refit's trees at their swap "
                "point. 0 on a live stream at tick rates; about a third while a worker "
                "catches up a backlog on 2 cores (docs/hot-path.md, session 21).",
            )
        )
        .with_panel(
            series(
                "Seconds since an agent's last batch",
                "s",
                query(
                    "time() - spark_agent_last_batch_timestamp_seconds", "{{agent}} {{instance}}"
                ),
            )
        )
    )


def ml_quality() -> Dashboard:
    return (
        Dashboard("Spark — ML quality")
        .uid("spark-ml")
        .tags(["spark"])
        .refresh("10s")
        .time("now-1h", "now")
        .with_row(Row("Quality per model version"))
        .with_panel(
            series(
                "Rolling AUC (last 2,000 labels)",
                "none",
                query("spark_model_auc", "{{model_id}} v{{model_version}}"),
                description="SLO: 0.62.",
            )
        )
        .with_panel(
            series(
                "Rolling precision@20",
                "percentunit",
                query("spark_model_precision_at_20", "{{model_id}} v{{model_version}}"),
            )
        )
        .with_panel(
            series(
                "Labels learned per second",
                "ops",
                query(
                    "sum by (model_id, model_version) (rate(spark_model_labels_total[1m]))",
                    "{{model_id}} v{{model_version}}",
                ),
            )
        )
        .with_row(Row("Output and registry"))
        .with_panel(
            series(
                "Predictions and signals per second",
                "ops",
                query(
                    "sum by (topic) "
                    '(rate(spark_events_out_total{topic=~"predictions|signals"}[1m]))',
                    "{{topic}}",
                ),
            )
        )
        .with_panel(
            series(
                "Registry snapshots",
                "short",
                query(
                    "sum by (outcome) (increase(spark_model_snapshots_total[5m]))", "{{outcome}}"
                ),
            )
        )
        .with_panel(
            stat(
                "Promotions (1 h)",
                "short",
                query("sum(increase(spark_model_promotions_total[1h]))"),
            )
        )
    )


def drift_gates() -> Dashboard:
    return (
        Dashboard("Spark — drift and gates")
        .uid("spark-drift")
        .tags(["spark"])
        .refresh("10s")
        .time("now-6h", "now")
        .with_row(Row("Detection"))
        .with_panel(
            series(
                "Drift alerts per detector (per 10 min)",
                "short",
                query(
                    "sum by (detector) (increase(spark_drift_alerts_total[10m]))", "{{detector}}"
                ),
                description="psi: data drift of spread_bp against a reference window; adwin: "
                "concept drift of the champion's errors (docs/drift.md).",
            )
        )
        .with_panel(
            stat(
                "Gates closed or in probation",
                "short",
                query("sum(spark_gates_not_open)"),
                description="GET /ml/gates on a worker lists them; alert SparkGateClosedLong.",
            )
        )
        .with_panel(
            series(
                "Symbols per gate state",
                "short",
                query("sum by (state) (spark_gates)", "{{state}}"),
                description="open: signals flow; closed: suppressed after drift or by an "
                "operator; probation: suppressed until quality recovers.",
            )
        )
        .with_row(Row("Effect on signals"))
        .with_panel(
            series(
                "Signals sent vs suppressed per second",
                "ops",
                query('sum(rate(spark_events_out_total{topic="signals"}[1m]))', "sent", "A"),
                query(
                    "sum by (state) (rate(spark_signals_suppressed_total[1m]))",
                    "suppressed while {{state}}",
                    "B",
                ),
            )
        )
        .with_panel(
            series(
                "Champion rolling AUC (recovery decides probation)",
                "none",
                query("max by (model_id) (spark_model_auc)", "{{model_id}}"),
            )
        )
    )


def executor() -> Dashboard:
    return (
        Dashboard("Spark — paper executor")
        .uid("spark-executor")
        .tags(["spark"])
        .refresh("10s")
        .time("now-6h", "now")
        .with_row(Row("Orders"))
        .with_panel(
            stat(
                "Kill switch",
                "none",
                query("max(spark_kill_switch_engaged)"),
                description="1 = every order refused until `spark risk clear`.",
            )
        )
        .with_panel(
            series(
                "Signals by outcome per second",
                "ops",
                query("sum by (outcome) (rate(spark_executor_signals_total[1m]))", "{{outcome}}"),
                description="order: risk checks passed and filled; rejected: a limit refused it; "
                "no_change: the target position was already held.",
            )
        )
        .with_panel(
            series(
                "Rejections per limit (per 10 min)",
                "short",
                query("sum by (limit) (increase(spark_order_rejections_total[10m]))", "{{limit}}"),
            )
        )
        .with_panel(
            series(
                "Fills per second",
                "ops",
                query("sum(rate(spark_paper_fills_total[1m]))", "fills"),
            )
        )
        .with_row(Row("PnL and risk"))
        .with_panel(
            series(
                "Paper PnL (quote currency, fees in)",
                "none",
                query("sum by (kind) (spark_paper_pnl)", "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Daily drawdown vs limit",
                "none",
                query("max(spark_paper_daily_drawdown)", "drawdown", "A"),
                query('max(spark_risk_limit{limit="max_daily_drawdown"})', "limit", "B"),
            )
        )
        .with_panel(
            series(
                "Gross notional vs limit",
                "none",
                query("sum(spark_paper_gross_notional)", "gross notional", "A"),
                query('max(spark_risk_limit{limit="max_gross_notional"})', "limit", "B"),
            )
        )
        .with_panel(stat("Open positions", "short", query("sum(spark_paper_open_positions)")))
    )


def jobs() -> Dashboard:
    return (
        Dashboard("Spark — jobs")
        .uid("spark-jobs")
        .tags(["spark"])
        .refresh("30s")
        .time("now-24h", "now")
        .with_row(Row("Backtest jobs"))
        .with_panel(
            series(
                "Jobs finished per hour, by status",
                "short",
                query(
                    "sum by (kind, status) (increase(spark_jobs_total[1h]))", "{{kind}} {{status}}"
                ),
                description="A failed job has its error on the results topic "
                "(alert SparkJobFailures).",
            )
        )
        .with_panel(
            series(
                "Job duration p50 / p95",
                "s",
                query(
                    "histogram_quantile(0.5, sum by (le, kind) "
                    "(rate(spark_job_duration_seconds_bucket[1h])))",
                    "{{kind}} p50",
                    "A",
                ),
                query(
                    "histogram_quantile(0.95, sum by (le, kind) "
                    "(rate(spark_job_duration_seconds_bucket[1h])))",
                    "{{kind}} p95",
                    "B",
                ),
            )
        )
        .with_panel(stat("Jobs running", "short", query("sum(spark_jobs_running)")))
        .with_panel(
            series(
                "Requests waiting (consumer lag)",
                "short",
                query(
                    'sum by (topic) (spark_consumer_lag_messages{topic=~".*backtest.requests"})',
                    "{{topic}}",
                ),
            )
        )
    )


DASHBOARDS = {
    "spark-pipeline.json": pipeline,
    "spark-ml.json": ml_quality,
    "spark-drift.json": drift_gates,
    "spark-executor.json": executor,
    "spark-jobs.json": jobs,
}


def render() -> dict[str, str]:
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {name: encoder.encode(build().build()) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        stale = [
            n
            for n, text in rendered.items()
            if not (OUT / n).exists() or (OUT / n).read_text() != text
        ]
        if stale:
            print(f"dashboards differ from monitoring/grafana/build.py: {stale}; rebuild them")
            return 1
        return 0
    for name, text in rendered.items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
