"""Export@Scale benchmark: N real ticks on the tick topic, exported by `spark export topic`
to CSV, Parquet and XLSX, each in its own process; rows/s and that process's peak RSS.

    .venv/bin/python bench/bench_export.py [DATA] [--ticks 1000000] [--formats csv,parquet,xlsx]

Past the 2.08M FX quotes of the data folder the ticks come from the equity quote files
(BAC, AIG, IBM top of book): 10M real ticks with ``--ticks 10000000 --formats csv,parquet``.

Targets (issue 15): 1M rows to XLSX in <= 60 s under 300 MB RSS; CSV and Parquet in
constant memory. The raw read of the same topic (consume, no decode) is the baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_broker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def raw_read() -> float:
    """Records per second of a bare assign()-read of the tick topic to its end."""
    from spark.consume import messages
    from spark.topics import catalog

    t0, n = time.perf_counter(), 0
    for _ in messages(catalog()["ticks"], from_beginning=True):
        n += 1
    return n / (time.perf_counter() - t0)


def real_ticks(data: Path, n: int):
    """(batch, order): the first n real ticks by event time of the FX quote days, then of
    the equity quote days when the FX ones are not enough."""
    import numpy as np
    from chaos import good_ticks

    from spark.pipeline.batch import TickBatch
    from spark.ticks.columns import read_batch

    fx, order = good_ticks(data, n)
    if len(order) >= n:
        return fx, order
    batches = [fx]
    for path in sorted((data / "equity").glob("*/*_quote.zip")):
        batches.append(read_batch([path], "lean-quote")[0])
        if sum(len(b) for b in batches) >= n:
            break
    merged = TickBatch.concat(batches)  # FX first (in time order), then each equity file
    return merged, np.concatenate([order, np.arange(len(fx), len(merged))])[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,parquet,xlsx", help="comma-separated")
    args = parser.parse_args()

    with bench_broker():
        from spark.kafka import clients
        from spark.ticks.model import Tick
        from spark.ticks.producer import default_serde
        from spark.topics import catalog

        batch, order = real_ticks(args.data, args.ticks)
        serde, name = default_serde(), catalog()["ticks"].name
        producer = clients.producer(**{"queue.buffering.max.messages": 2_000_000})
        nan = lambda v: None if v != v else float(v)  # noqa: E731
        for i in order.tolist():
            tick = Tick(batch.symbol_at(i), int(batch.ts[i]), nan(batch.bid[i]), nan(batch.ask[i]))
            while True:
                try:
                    producer.produce(name, serde.encode(name, "Tick", tick.to_record()))
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(300)
        print(f"{len(order):,} real ticks on {name}", flush=True)
        figures = {"ticks": len(order), "raw_read_per_s": round(raw_read())}
        out = Path(tempfile.mkdtemp(prefix="spark-export-"))
        for fmt in args.formats.split(","):
            done = subprocess.run(
                [sys.executable, "-m", "spark.cli", "export", "topic", "ticks",
                 "-o", str(out / f"ticks.{fmt}"), "--json", "--no-progress"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(done.stdout)
            figures[fmt] = {
                "rows_per_s": result["rows_per_second"],
                "seconds": result["seconds"],
                "peak_rss_mb": result["peak_rss_mb"],
                "mb": round(result["bytes"] / 1e6, 1),
                "exported": result["exported"],
                "sheets": result["sheets"],
            }
            print(fmt, json.dumps(figures[fmt]), flush=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
