"""Incremental per-symbol features of ticks: O(1) time and memory per tick, compiled
(``spark.features.kernel``; docs/features.md lists them)."""

from spark.features.kernel import FEATURE_NAMES, FEATURE_SET, N_FEATURES

__all__ = ["FEATURE_NAMES", "FEATURE_SET", "N_FEATURES"]
