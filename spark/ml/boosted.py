"""Boosted trees that learn online: refit on a sliding window of the labels resolved so far.

river's online trees and forests did not beat a linear model on these ticks
(docs/ml.md), while batch gradient-boosted trees on the same features do by
0.03-0.07 AUC: what predicts the next second is an interaction (which side of
the quote moved last, how far from its recent range, in a busy or quiet
market). ``WindowedBoosting`` keeps the online contract of every Spark model:

- ``predict_proba_one`` uses only what was learned before it is called;
- ``learn_one`` receives each label once, when it resolves, and appends it to a
  window of the last ``window`` labelled vectors; every ``refit_every`` labels
  the trees are refit on that window (LightGBM, one thread, deterministic), so
  the model follows the market's regime within a few thousand labels;
- until the first fit, an online logistic regression answers.

A refit costs about a second for a 40,000-label window (docs/performance.md);
it runs in ``learn_one``, so a worker pauses that long every ``refit_every``
labels. Snapshots carry the trees (as LightGBM's text model, not as a pickle of
its C object) and the warm-up model, not the window (up to 40,000 vectors,
~15 MB): a restored model predicts with its trees at once and refits once its
window again holds as many labels as those trees were fit on, so restored trees
are never replaced by trees fit on fewer labels.

>>> import random
>>> rng = random.Random(1)
>>> m = WindowedBoosting(window=2_000, refit_every=1_000, min_leaf=20)
>>> for _ in range(2_000):  # XOR of two signs: no linear model can learn it
...     a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
...     m.learn_one({"a": a, "b": b}, int((a > 0) != (b > 0)))
>>> m.fits, round(m.predict_proba_one({"a": 0.5, "b": -0.5})[1], 1) > 0.8
(2, True)
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np


class _OneRow:
    """LightGBM's single-row fast prediction (its C API; ``Booster.predict`` spends ~100 µs
    per call on Python-side checks, this ~20 µs). Gives exactly ``Booster.predict``'s value."""

    def __init__(self, booster: Any, n_features: int) -> None:
        from lightgbm.basic import _LIB, _safe_call

        self._lib, self._check = _LIB, _safe_call
        self._booster = booster  # keeps the C booster alive while the handle is in use
        self._handle = ctypes.c_void_p()
        self._check(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(0),  # C_API_PREDICT_NORMAL: the probability
                ctypes.c_int(0),  # from the first tree
                ctypes.c_int(-1),  # to the last
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(n_features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        self._out = np.zeros(1)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._len = ctypes.c_int64()

    def __call__(self, row: np.ndarray) -> float:
        self._check(
            self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle,
                row.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(self._len),
                self._out_ptr,
            )
        )
        return float(self._out[0])

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.LGBM_FastConfigFree(self._handle)


class WindowedBoosting:
    """Gradient-boosted trees refit every ``refit_every`` labels on the last ``window`` ones."""

    def __init__(
        self,
        window: int = 40_000,
        refit_every: int = 5_000,
        trees: int = 100,
        leaves: int = 15,
        min_leaf: int = 200,
        learning_rate: float = 0.05,
        seed: int = 7,
    ) -> None:
        if not 0 < refit_every <= window:
            raise ValueError("refit_every must be positive and at most the window")
        from spark.ml.models import make_model

        self.window = window
        self.refit_every = refit_every
        self.trees = trees
        self.min_leaf = min_leaf
        self.params = {
            "objective": "binary",
            "learning_rate": learning_rate,
            "num_leaves": leaves,
            "feature_fraction": 0.8,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
        self.warmup = make_model("logreg").estimator  # the same pipeline as `logreg`
        self.names: tuple[str, ...] | None = None
        self.booster: Any = None
        self._one_row: _OneRow | None = None
        self.fits = 0
        self.fit_rows = 0  # labels the current trees were fit on
        self._reset_window()

    def _reset_window(self) -> None:
        self._x: np.ndarray | None = None
        self._y = np.zeros(self.window, dtype=np.int8)
        self._filled = 0  # rows of the window in use
        self._next = 0  # where the next label goes (ring buffer)
        self._since_fit = 0

    def _row(self, x: dict[str, float]) -> np.ndarray:
        # a feature the vector lacks is missing (NaN) to the trees, not zero
        return np.fromiter((x.get(n, math.nan) for n in self.names), float, len(self.names))

    def predict_proba_one(self, x: dict[str, float]) -> dict[int, float]:
        if self.booster is None or self.names is None:
            return self.warmup.predict_proba_one(x)
        if self._one_row is None:
            self._one_row = _OneRow(self.booster, len(self.names))
        p = self._one_row(self._row(x))
        return {0: 1.0 - p, 1: p}

    def learn_one(self, x: dict[str, float], y: int) -> None:
        if self.booster is None:
            self.warmup.learn_one(x, y)
        if self.names is None:
            self.names = tuple(x)
        if self._x is None:
            self._x = np.zeros((self.window, len(self.names)))
        self._x[self._next] = self._row(x)
        self._y[self._next] = 1 if y else 0
        self._next = (self._next + 1) % self.window
        self._filled = min(self._filled + 1, self.window)
        self._since_fit += 1
        # after a restore the window starts empty: the restored trees are not replaced by
        # trees fit on fewer labels (in an uninterrupted run the window only grows)
        if self._since_fit >= self.refit_every and self._filled >= min(self.fit_rows, self.window):
            self._refit()

    def _refit(self) -> None:
        import lightgbm

        # chronological order, so that a refit depends only on which labels are in the window
        order = np.roll(np.arange(self._filled), -self._next if self._filled == self.window else 0)
        labels = self._y[order]
        self._since_fit = 0
        if labels.min() == labels.max():  # one class only: nothing to split on yet
            return
        # leaves of at least min_leaf labels, fewer while the window is small (tests, demos)
        params = dict(self.params, min_data_in_leaf=min(self.min_leaf, max(20, len(order) // 20)))
        data = lightgbm.Dataset(self._x[order], labels, feature_name=list(self.names))
        self.booster = lightgbm.train(params, data, num_boost_round=self.trees)
        self._one_row = None  # made for the new trees at the next prediction
        self.fits += 1
        self.fit_rows = len(order)

    def __getstate__(self) -> dict:
        skip = ("_x", "_y", "booster", "_one_row")
        state = {k: v for k, v in self.__dict__.items() if k not in skip}
        state["booster"] = self.booster.model_to_string() if self.booster is not None else None
        return state

    def __setstate__(self, state: dict) -> None:
        model = state.pop("booster")
        self.fit_rows = 0  # snapshots from before session 4 lack it
        self.__dict__.update(state)
        self._reset_window()
        self._one_row = None
        if model is not None:
            import lightgbm

            self.booster = lightgbm.Booster(model_str=model)
        else:
            self.booster = None


__all__ = ["WindowedBoosting"]
