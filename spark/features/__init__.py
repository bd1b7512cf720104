"""Incremental per-symbol features of ticks: O(1) time and memory per tick."""

from spark.features.ticks import FEATURE_NAMES, FEATURE_SET, TickFeatures

__all__ = ["FEATURE_NAMES", "FEATURE_SET", "TickFeatures"]
