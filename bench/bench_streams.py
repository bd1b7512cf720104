"""Streams and ML benchmark: µs per tick of each step, and ticks -> predictions end to end.

Prints, in one run on one broker:
  features   µs per tick of TickFeatures.update
  predict    µs per tick of the model's prob_up
  learn      µs per label of the model's learn
  quote      µs per quote of the paper executor (buffer, mark, drawdown)
  signal     µs per signal of the paper executor (risk checks, order, fill)
  pure       ticks/s of features + learner (labels, predict, learn) without Kafka
  e2e        ticks/s through a Faust worker: ticks -> features -> predictions (+ signals)
  raw        ticks/s of a plain confluent-kafka loop doing the same work and producing
             the predictions: the ceiling for one process on this broker

Usage: python -m bench.bench_streams [--model NAME] [FILE]   (from the repository root)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def feats_mid(tick) -> float:
    bid, ask = tick.bid or tick.ask, tick.ask or tick.bid
    return (bid + ask) / 2 if bid and ask else tick.last


def main() -> None:
    from bench.common import bench_broker, drain, worker_rate
    from spark.config import model_settings
    from spark.demo import bundled_files
    from spark.features import TickFeatures
    from spark.kafka import clients
    from spark.ml.evaluate import Learner, Progressive
    from spark.ml.models import make_model
    from spark.serde.avro import AvroSerde
    from spark.serde.registry import EmbeddedRegistry
    from spark.ticks.check import check_tick_message
    from spark.ticks.replay import replay, valid_ticks
    from spark.topics import catalog

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=model_settings()["model"])
    parser.add_argument("file", nargs="?", type=Path)
    args = parser.parse_args()
    path = args.file or bundled_files()[0]
    ticks = list(valid_ticks([path], "lean-quote"))
    horizon = model_settings()["horizon_s"]

    feats = TickFeatures()
    t = time.perf_counter()
    vectors = [feats.update(tick) for tick in ticks]
    features_us = (time.perf_counter() - t) / len(ticks) * 1e6
    model = make_model(args.model)
    mids = [feats_mid(tick) for tick in ticks]
    # learn first (labels: is the mid 10 ticks later higher?), so that predict is timed on a
    # trained model (for gbm: on its trees, not on the warm-up model); learn includes refits
    t = time.perf_counter()
    for i, x in enumerate(vectors):
        model.learn(x, int(mids[min(i + 10, len(mids) - 1)] > mids[i]))
    learn_us = (time.perf_counter() - t) / len(vectors) * 1e6
    t = time.perf_counter()
    for x in vectors:
        model.prob_up(x)
    predict_us = (time.perf_counter() - t) / len(vectors) * 1e6
    run = Progressive(make_model(args.model), horizon)
    t = time.perf_counter()
    for tick in ticks:
        run.step(tick)
    pure = len(ticks) / (time.perf_counter() - t)
    from spark.execution.paper import PaperExecutor
    from spark.execution.risk import ExecutionSettings, Limits

    executor = PaperExecutor(ExecutionSettings(), Limits(max_orders_per_minute=1e9))
    t = time.perf_counter()
    mids = {}
    for tick in ticks:
        bid, ask = tick.bid or tick.ask, tick.ask or tick.bid
        mid = (bid + ask) / 2 if bid and ask else tick.last
        mids[tick.symbol] = mid
        executor.on_quote(tick.symbol, tick.ts, bid, ask, mid)
    quote_us = (time.perf_counter() - t) / len(ticks) * 1e6
    sides = ("BUY", "SELL")
    chosen = ticks[:: max(len(ticks) // 2000, 1)][:-1]
    t = time.perf_counter()
    for i, tick in enumerate(chosen):  # quotes are buffered: each signal executes at once
        executor.on_signal({"symbol": tick.symbol, "ts": tick.ts, "side": sides[i % 2]})
    signal_us = (time.perf_counter() - t) / len(chosen) * 1e6
    print(f"features  {features_us:>8.1f} µs/tick")
    print(f"predict   {predict_us:>8.1f} µs/tick   ({args.model})")
    print(f"learn     {learn_us:>8.1f} µs/label")
    print(f"pure      {pure:>8,.0f} ticks/s  (features + labels + predict + learn, no Kafka)")
    print(f"quote     {quote_us:>8.1f} µs/quote  (paper executor)")
    print(f"signal    {signal_us:>8.1f} µs/signal (paper executor: risk checks, order, fill)")

    with bench_broker():
        spec = catalog()["ticks"]
        predictions = catalog()["predictions"]
        result = replay([path], "lean-quote")
        rate, delay = worker_rate("spark_events_out_total", 'topic="predictions"', result.produced)
        print(
            f"e2e       {rate:>8,.0f} ticks/s  (Faust worker: ticks -> features -> predictions; "
            f"first after {delay:.1f}s)"
        )

        serde = AvroSerde(EmbeddedRegistry())
        producer = clients.producer()
        book: dict[str, TickFeatures] = {}
        learner = Learner(make_model(args.model), horizon)

        def predict_and_produce(msg) -> None:
            tick = check_tick_message(serde, msg.key(), msg.value())
            state = book.setdefault(tick.symbol, TickFeatures())
            x = state.update(tick)
            p = learner.step(tick.symbol, tick.ts, state.prev_mid, x)
            record = {
                "symbol": tick.symbol,
                "ts": tick.ts,
                "prob_up": p,
                "model_id": "raw",
                "model_version": 0,
            }
            producer.produce(
                predictions.name + ".bench",
                serde.encode(predictions.name, "Prediction", record),
                msg.key(),
            )
            producer.poll(0)

        t = time.perf_counter()
        n = drain(spec.name, predict_and_produce)
        producer.flush(60)
        raw = n / (time.perf_counter() - t)
        print(f"raw       {raw:>8,.0f} ticks/s  (confluent-kafka consume -> same work -> produce)")


if __name__ == "__main__":
    main()
