"""LightGBM's trees as flat arrays, walked by compiled code: gbm predictions without a C call.

``Forest.from_booster`` reads a trained binary LightGBM model (``dump_model``) into
arrays; ``predict`` walks every tree for one feature row and returns LightGBM's
probability, the sigmoid of the summed leaf values. Numerical splits follow LightGBM's
rule exactly: a NaN feature is 0 unless the split's missing type is NaN; a missing value
(NaN, or zero when the missing type is Zero) goes the split's default way; otherwise
``value <= threshold`` goes left. A test compares it with ``Booster.predict``.

Node arrays: ``feature``, ``threshold``, ``default_left``, ``missing`` (0 none, 1 zero,
2 NaN), ``left``/``right`` (an internal node's index, or ``-(leaf + 1)``), ``leaf_value``
and the root of each tree (``roots``; a tree that is one leaf has ``-(leaf + 1)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold


@dataclass
class Forest:
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray
    roots: np.ndarray

    @classmethod
    def empty(cls) -> Forest:
        i32, f8 = np.zeros(0, np.int32), np.zeros(0)
        return cls(i32, f8, np.zeros(0, np.bool_), np.zeros(0, np.int8), i32, i32, f8, i32)

    @classmethod
    def from_booster(cls, booster) -> Forest:
        """The trees of a trained binary LightGBM ``Booster``."""
        nodes: list[tuple] = []
        leaves: list[float] = []
        roots: list[int] = []

        def add(node: dict) -> int:
            if "leaf_value" in node:
                leaves.append(float(node["leaf_value"]))
                return -len(leaves)
            if node.get("decision_type", "<=") != "<=":
                raise ValueError(f"unsupported split {node.get('decision_type')!r}")
            at = len(nodes)
            nodes.append(None)
            left, right = add(node["left_child"]), add(node["right_child"])
            nodes[at] = (
                int(node["split_feature"]),
                float(node["threshold"]),
                bool(node["default_left"]),
                _MISSING[node.get("missing_type", "None")],
                left,
                right,
            )
            return at

        for tree in booster.dump_model()["tree_info"]:
            roots.append(add(tree["tree_structure"]))
        columns = list(zip(*nodes, strict=True)) if nodes else [[]] * 6
        return cls(
            np.array(columns[0], np.int32),
            np.array(columns[1], np.float64),
            np.array(columns[2], np.bool_),
            np.array(columns[3], np.int8),
            np.array(columns[4], np.int32),
            np.array(columns[5], np.int32),
            np.array(leaves, np.float64),
            np.array(roots, np.int32),
        )

    @property
    def trees(self) -> int:
        return len(self.roots)

    def arrays(self) -> tuple:
        return (self.feature, self.threshold, self.default_left, self.missing,
                self.left, self.right, self.leaf_value, self.roots)  # fmt: skip


@njit(cache=True)
def raw_score(forest: tuple, lo: int, hi: int, x: np.ndarray) -> float:
    """Sum of the leaf values ``x`` reaches in trees ``roots[lo:hi]``."""
    feature, threshold, default_left, missing, left, right, leaf_value, roots = forest
    total = 0.0
    for t in range(lo, hi):
        node = roots[t]
        while node >= 0:
            value = x[feature[node]]
            kind = missing[node]
            if math.isnan(value) and kind != 2:
                value = 0.0
            if (kind == 1 and abs(value) <= ZERO_THRESHOLD) or (kind == 2 and math.isnan(value)):
                node = left[node] if default_left[node] else right[node]
            elif value <= threshold[node]:
                node = left[node]
            else:
                node = right[node]
        total += leaf_value[-node - 1]
    return total


@njit(cache=True)
def predict(forest: tuple, lo: int, hi: int, x: np.ndarray) -> float:
    """LightGBM's probability for the binary objective: sigmoid of the raw score."""
    return 1.0 / (1.0 + math.exp(-raw_score(forest, lo, hi, x)))


def _shift(links: np.ndarray, nodes: int, leaves: int) -> np.ndarray:
    """Node links of a forest placed after ``nodes`` nodes and ``leaves`` leaves."""
    return np.where(links >= 0, links + nodes, links - leaves).astype(np.int32)


def concat(forests: list[Forest]) -> tuple[tuple, np.ndarray]:
    """One set of arrays holding several forests, and each one's (first, end) tree."""
    parts, ranges, nodes, leaves, trees = [], [], 0, 0, 0
    for f in forests:
        left, right, roots = (_shift(a, nodes, leaves) for a in (f.left, f.right, f.roots))
        parts.append((f.feature, f.threshold, f.default_left, f.missing,
                      left, right, f.leaf_value, roots))  # fmt: skip
        ranges.append((trees, trees + f.trees))
        nodes, leaves, trees = nodes + len(f.feature), leaves + len(f.leaf_value), trees + f.trees
    if not parts:
        return Forest.empty().arrays(), np.zeros((0, 2), np.int64)
    arrays = tuple(
        np.concatenate([p[k] for p in parts]).astype(parts[0][k].dtype) for k in range(8)
    )
    return arrays, np.array(ranges, np.int64)
