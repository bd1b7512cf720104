"""``spark demo``: the whole walking pipeline on real ticks, with a live status and a summary.

Starts what is missing (embedded broker, topics, a background worker),
replays the bundled slice of real quotes, adds three malformed messages as a
careless third-party producer would, and shows every row ending in exactly
one place: accepted by the worker, or dead-lettered (by the replay or by the
worker) with a reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from spark.agents.app import AGENTS
from spark.agents.worker import start_detached, stop_detached, wait_ready, worker_status
from spark.broker import embedded
from spark.config import external_bootstrap
from spark.errors import SparkError
from spark.kafka import clients
from spark.kafka.topics import create_topics
from spark.status import worker_samples
from spark.ticks.model import Tick
from spark.ticks.producer import TickProducer, default_serde
from spark.ticks.replay import ReplayResult, replay
from spark.topics import catalog

CATCH_UP_TIMEOUT_S = 180


def bundled_files() -> list[Path]:
    """The real tick files shipped in the package (see spark/data/README.md)."""
    root = resources.files("spark") / "data"
    return [
        Path(str(root / "fxcm" / "eurusd" / "20140501_quote.zip")),
        Path(str(root / "equity" / "ibm" / "20131007_quote.zip")),
    ]


def send_third_party_garbage() -> int:
    """Three bad messages straight onto the tick topic, bypassing producer-side checks."""
    ticks = catalog()["ticks"]
    serde = default_serde()
    crossed = Tick("EURUSD", 1_398_920_500_000_000, bid=1.5, ask=1.4, source="demo:bad-feed")
    good = Tick("EURUSD", 1_398_920_500_000_000, bid=1.38, ask=1.39, source="demo:bad-feed")
    messages = [
        (b"EURUSD", b"{'symbol': 'EURUSD', 'bid': 1.38}"),  # JSON-ish, not Avro
        (b"EURUSD", serde.encode(ticks.name, "Tick", crossed.to_record())),  # bid > ask
        (b"GBPUSD", serde.encode(ticks.name, "Tick", good.to_record())),  # key is not the symbol
    ]
    producer = clients.producer()
    for key, value in messages:
        producer.produce(ticks.name, value, key)
    if producer.flush(30):
        raise SparkError("the demo's malformed messages were not acknowledged")
    return len(messages)


class WorkerView:
    """Worker counters from its /metrics, relative to when the demo started."""

    def __init__(self, web_port: int) -> None:
        self.web_port = web_port
        self.base = self._read()

    def _read(self) -> dict:
        cur = {
            "consumed": 0.0,
            "accepted": 0.0,
            "features": 0.0,
            "predictions": 0.0,
            "signals": 0.0,
            "labels": 0.0,
            "alerts": 0.0,
            "info_alerts": 0.0,
            "suppressed": 0.0,
            "gates_not_open": 0.0,
            "executor_signals": 0.0,
            "waiting": 0.0,
            "orders": 0.0,
            "fills": 0.0,
            "rejected": 0.0,
            "no_change": 0.0,
            "pnl_realized": 0.0,
            "pnl_unrealized": 0.0,
            "rejections": Counter(),
            "auc": float("nan"),
            "p20": float("nan"),
            "dead": Counter(),
        }
        outputs = {"features": "features", "predictions": "predictions", "signals": "signals"}
        for name, labels, value in worker_samples(self.web_port):
            if name == "spark_events_in_total" and labels.get("topic") == "ticks":
                cur["consumed"] = value
            elif name == "spark_ticks_accepted_total":
                cur["accepted"] = value
            elif name == "spark_events_out_total" and labels.get("topic") in outputs:
                cur[outputs[labels["topic"]]] = value
            elif name == "spark_model_labels_total":
                cur["labels"] += value
            elif name == "spark_model_auc":
                cur["auc"] = value
            elif name == "spark_model_precision_at_20":
                cur["p20"] = value
            elif name == "spark_drift_alerts_total" and labels.get("severity") == "info":
                cur["info_alerts"] += value
            elif name == "spark_drift_alerts_total":
                cur["alerts"] += value
            elif name == "spark_signals_suppressed_total":
                cur["suppressed"] += value
            elif name == "spark_gates_not_open":
                cur["gates_not_open"] = value
            elif name == "spark_executor_signals_waiting":
                cur["waiting"] = value
            elif name == "spark_executor_signals_total":
                cur["executor_signals"] += value
                if labels.get("outcome") == "no_change":
                    cur["no_change"] = value
            elif name == "spark_paper_orders_total" and labels.get("outcome") == "accepted":
                cur["orders"] = value
            elif name == "spark_paper_orders_total" and labels.get("outcome") == "rejected":
                cur["rejected"] = value
            elif name == "spark_paper_fills_total":
                cur["fills"] = value
            elif name == "spark_order_rejections_total":
                cur["rejections"][labels["limit"]] += value
            elif name == "spark_paper_pnl":
                cur[f"pnl_{labels['kind']}"] = value
            elif name == "spark_dead_letters_total" and labels.get("stage") == "ingest":
                cur["dead"][labels["reason"]] += value
        return cur

    def now(self) -> dict:
        """Counters since the demo started; AUC and precision@20 as the worker reports them."""
        cur = self._read()
        out = {
            k: int(cur[k] - self.base[k])
            for k in (
                "consumed",
                "accepted",
                "features",
                "predictions",
                "signals",
                "labels",
                "alerts",
                "info_alerts",
                "suppressed",
                "executor_signals",
                "waiting",
                "orders",
                "fills",
                "rejected",
                "no_change",
            )
        }
        # PnL is the portfolio's, not the demo's: positions survive from earlier runs
        out["pnl_realized"], out["pnl_unrealized"] = cur["pnl_realized"], cur["pnl_unrealized"]
        out["rejections"] = Counter(
            {
                r: int(n - self.base["rejections"][r])
                for r, n in cur["rejections"].items()
                if n - self.base["rejections"][r] > 0
            }
        )
        out["auc"], out["p20"] = cur["auc"], cur["p20"]
        out["gates_not_open"] = int(cur["gates_not_open"])
        out["dead"] = Counter(
            {
                r: int(n - self.base["dead"][r])
                for r, n in cur["dead"].items()
                if n - self.base["dead"][r] > 0
            }
        )
        return out


def _status_table(phase: str, result: ReplayResult, worker: dict, started: float) -> Table:
    elapsed = max(time.monotonic() - started, 1e-6)
    table = Table(title=f"spark demo — {phase}", title_justify="left", show_header=True)
    for col in ("", "count", "rate/s"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("replay: rows read", f"{result.rows:,}", f"{result.rows / elapsed:,.0f}")
    for label, key in (
        ("worker: ticks consumed", "consumed"),
        ("features", "features"),
        ("predictions", "predictions"),
        ("signals", "signals"),
        ("labels learned", "labels"),
        ("paper orders", "orders"),
        ("paper fills", "fills"),
        ("orders rejected by risk limits", "rejected"),
    ):
        table.add_row(label, f"{worker[key]:,}", f"{worker[key] / elapsed:,.0f}")
    table.add_row("ticks dead-lettered by the worker", f"{sum(worker['dead'].values()):,}", "")
    auc, p20 = worker["auc"], worker["p20"]
    table.add_row(
        "rolling AUC / precision@20",
        "—" if auc != auc else f"{auc:.3f} / {'—' if p20 != p20 else f'{p20:.3f}'}",
        "",
    )
    pnl = worker["pnl_realized"] + worker["pnl_unrealized"]
    table.add_row("paper PnL (quote currency, fees in)", f"{pnl:,.2f}", "")
    return table


def run_demo(
    rate: float = 0.0,
    keep: bool = False,
    paths: list[Path] | None = None,
    console: Console | None = None,
    limit: int | None = None,
) -> dict:
    """Run the demo; returns the summary figures (tests check them)."""
    console = console or Console()
    paths = paths or bundled_files()
    started_broker = False
    if external_bootstrap():
        clients.ensure_reachable()
        console.print(f"Kafka: {external_bootstrap()} (KAFKA_BOOTSTRAP_SERVERS)")
    else:
        started_broker = not embedded.status().running
        st = embedded.start()
        console.print(f"Kafka: embedded broker at {st.address}")
    created = create_topics()
    console.print(
        f"topics: {len(created)} in the catalog, "
        f"{sum(s == 'created' for s in created.values())} created now"
    )
    existing = worker_status()
    started_worker = not (existing and existing["running"])
    record = existing if not started_worker else start_detached(AGENTS)
    wait_ready(record)
    console.print(
        f"worker: pid {record['pid']}, metrics http://127.0.0.1:{record['web_port']}/metrics"
    )
    try:
        summary = _replay_and_watch(paths, rate, limit, WorkerView(record["web_port"]), console)
    finally:
        if not keep:
            if started_worker:
                stop_detached()
            if started_broker:
                embedded.stop()
    dlq = catalog()[catalog()["ticks"].dlq].name
    if keep or not started_broker:
        console.print(
            f"Left running. Look closer: spark consume {dlq} --from-beginning --limit 5; "
            "spark status; spark down stops it all."
        )
    else:
        console.print(
            "Stopped what the demo started; `spark demo --keep` leaves it running "
            "to look around (spark status, spark consume ...)."
        )
    return summary


def _replay_and_watch(
    paths: list[Path], rate: float, limit: int | None, view: WorkerView, console: Console
) -> dict:
    result = ReplayResult()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = replay(
                paths,
                "lean-quote",
                max_rate=rate,
                limit=limit,
                producer=TickProducer(stage="replay"),
                on_row=lambda r, _row: result.__setattr__("rows", r.rows),
            )
            outcome["garbage"] = send_third_party_garbage()
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, name="demo-replay", daemon=True)
    thread.start()
    worker = view.now()
    with Live(
        _status_table("replaying", result, worker, started),
        console=console,
        refresh_per_second=4,
        transient=False,
    ) as live:
        deadline = previous = None
        still = 0
        while True:
            time.sleep(0.25)
            worker = view.now()
            if thread.is_alive():
                live.update(_status_table("replaying", result, worker, started))
                continue
            if "error" in outcome:
                raise outcome["error"]
            final = outcome["result"]
            expected = final.produced + outcome["garbage"]
            live.update(_status_table("worker catching up", final, worker, started))
            # caught up, and no counter moved for 1.5 s: the worker counts a batch's outputs
            # topic by topic as it produces them (one look can fall between two), and its
            # gauges (signals still waiting) refresh once a second
            still = still + 1 if worker == previous else 0
            previous = worker
            if (
                worker["consumed"] >= expected
                and worker["predictions"] >= worker["accepted"]
                and still >= 6
            ):
                live.update(_status_table("done", final, worker, started))
                break
            deadline = deadline or time.monotonic() + CATCH_UP_TIMEOUT_S
            if time.monotonic() > deadline:
                raise SparkError(
                    f"the worker consumed {worker['consumed']} of {expected} "
                    f"messages in {CATCH_UP_TIMEOUT_S}s; see `spark status`"
                )
    final = outcome["result"]
    summary = {
        "rows": final.rows,
        "produced": final.produced,
        "replay_dead_lettered": final.dead_lettered,
        "replay_reasons": dict(final.reasons),
        "third_party_bad": outcome["garbage"],
        "worker_consumed": worker["consumed"],
        "worker_accepted": worker["accepted"],
        "worker_dead_lettered": sum(worker["dead"].values()),
        "worker_reasons": dict(worker["dead"]),
        "features": worker["features"],
        "predictions": worker["predictions"],
        "signals": worker["signals"],
        "labels": worker["labels"],
        "drift_alerts": worker["alerts"],
        "drift_info_alerts": worker["info_alerts"],
        "signals_suppressed": worker["suppressed"],
        "gates_not_open": worker["gates_not_open"],
        "executor_signals": worker["executor_signals"],
        "signals_waiting": worker["waiting"],
        "orders": worker["orders"],
        "fills": worker["fills"],
        "orders_rejected": worker["rejected"],
        "signals_without_order": worker["no_change"],
        "rejections": dict(worker["rejections"]),
        "pnl_realized": round(worker["pnl_realized"], 2),
        "pnl_unrealized": round(worker["pnl_unrealized"], 2),
        "rolling_auc": None if worker["auc"] != worker["auc"] else round(worker["auc"], 4),
        "rolling_precision_at_20": None
        if worker["p20"] != worker["p20"]
        else round(worker["p20"], 4),
        "seconds": round(time.monotonic() - started, 1),
        "policy": _policy(),
    }
    _print_summary(console, summary)
    return summary


def _policy() -> dict:
    """The signal policy as this environment configures it (a worker started here uses it)."""
    from spark.settings import Settings

    rule = Settings.from_env().models
    return {"band": rule.band, "min_edge": rule.min_edge, "min_hold_s": rule.min_hold_s}


def _policy_text(policy: dict) -> str:
    if policy["min_edge"] <= 0:
        return f"band policy: a signal at every crossing of 0.5 ± {policy['band']:g}"
    return (
        f"cost-aware policy: a side only where the model's edge pays {policy['min_edge']:g} x "
        "(spread + fees), docs/policy.md; SPARK_MIN_EDGE=0 trades every band crossing"
    )


def _print_summary(console: Console, s: dict) -> None:
    ticks = catalog()["ticks"]
    dlq = catalog()[ticks.dlq].name
    replay_reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(s["replay_reasons"].items()))
    worker_reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(s["worker_reasons"].items()))
    console.print()
    console.print(
        f"[bold]Replay[/] read {s['rows']:,} rows of real quotes: {s['produced']:,} "
        f"ticks produced to {ticks.name}, {s['replay_dead_lettered']:,} dead-lettered "
        f"to {dlq} ({replay_reasons or 'none'})."
    )
    console.print(
        f"[bold]Third-party producer[/] sent {s['third_party_bad']} malformed messages "
        "straight to the tick topic."
    )
    console.print(
        f"[bold]Worker[/] consumed {s['worker_consumed']:,}: accepted "
        f"{s['worker_accepted']:,}, dead-lettered {s['worker_dead_lettered']:,} "
        f"({worker_reasons or 'none'})."
    )
    console.print(
        f"[bold]Streams and ML[/] {s['features']:,} feature vectors, {s['predictions']:,} "
        f"predictions ({s['labels']:,} labels learned so far; rolling AUC {s['rolling_auc']}, "
        f"precision@20 {s['rolling_precision_at_20']}), {s['signals']:,} signals "
        f"({_policy_text(s['policy'])})."
    )
    console.print(
        f"[bold]Drift gates[/] {s['drift_alerts']:,} gate-closing drift alerts "
        f"({s['drift_info_alerts']:,} informational: other features, concept drift), "
        f"{s['gates_not_open']} "
        f"gate(s) not open at the end, {s['signals_suppressed']:,} signals suppressed."
    )
    limits = ", ".join(f"{r} {n:,}" for r, n in sorted(s["rejections"].items())) or "none"
    console.print(
        f"[bold]Paper trading[/] {s['executor_signals']:,} signals decided by the executor: "
        f"{s['orders']:,} orders ({s['fills']:,} filled), {s['orders_rejected']:,} rejected "
        f"({limits}), {s['signals_without_order']:,} needed no order (target held), "
        f"{s['signals_waiting']:,} wait for their fill quote; PnL "
        f"{s['pnl_realized']:,.2f} realized (fees included) + {s['pnl_unrealized']:,.2f} "
        "unrealized, quote currency (GET /executor on the worker for positions)."
    )
    accounted = (
        s["produced"] + s["replay_dead_lettered"] == s["rows"]
        and s["worker_accepted"] + s["worker_dead_lettered"] == s["worker_consumed"]
    )
    verdict = "[green]every row accounted for[/]" if accounted else "[red]rows unaccounted for[/]"
    console.print(
        f"{verdict}: {s['rows']:,} rows = {s['produced']:,} produced + "
        f"{s['replay_dead_lettered']:,} dead-lettered; {s['worker_consumed']:,} consumed "
        f"= {s['worker_accepted']:,} accepted + {s['worker_dead_lettered']:,} "
        f"dead-lettered; {s['seconds']}s."
    )
