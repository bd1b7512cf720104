"""The signal pipeline: one pure composition of every stage, stepped on batches of ticks.

``SignalPipeline`` (spark.pipeline.pipeline) is what the live worker, backtests, model
and drift evaluations and the optimizer run; docs/hot-path.md explains the design.
"""

from spark.pipeline.batch import TickBatch
from spark.pipeline.pipeline import SignalPipeline, StepResult

__all__ = ["SignalPipeline", "StepResult", "TickBatch"]
