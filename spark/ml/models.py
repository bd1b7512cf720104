"""Online classifiers for "will the mid be higher in H?", with one tiny protocol.

Each model is a river pipeline; ``prob_up`` predicts, ``learn`` updates.

>>> m = make_model("logreg")
>>> m.prob_up({"x": 1.0})
0.5
>>> m.learn({"x": 1.0}, 1); m.prob_up({"x": 1.0}) > 0.5
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from river import forest, linear_model, optim, preprocessing, tree

from spark.ml import DEFAULT_MODEL, MODEL_NAMES


def _logreg() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.01), l2=1e-4
    )


def _hoeffding() -> Any:
    return tree.HoeffdingAdaptiveTreeClassifier(grace_period=200, seed=7)


def _arf() -> Any:
    return forest.ARFClassifier(n_models=10, seed=7)


def _gbm() -> Any:
    """SPARK_GBM_WINDOW (40000) labels refit every SPARK_GBM_REFIT (5000) labels."""
    import os

    from spark.ml.boosted import WindowedBoosting

    try:
        window = int(os.environ.get("SPARK_GBM_WINDOW", "40000"))
        refit = int(os.environ.get("SPARK_GBM_REFIT", "5000"))
        return WindowedBoosting(window=window, refit_every=refit)
    except ValueError as exc:
        raise ValueError(f"SPARK_GBM_WINDOW / SPARK_GBM_REFIT: {exc}") from None


def _amf() -> Any:
    return forest.AMFClassifier(n_estimators=10, use_aggregation=True, dirichlet=0.5, seed=7)


MODELS: dict[str, Callable[[], Any]] = {
    "logreg": _logreg,
    "hoeffding": _hoeffding,
    "arf": _arf,
    "amf": _amf,
    "gbm": _gbm,
}
assert tuple(MODELS) == MODEL_NAMES


class OnlineModel:
    """A named river classifier; labels are 1 (mid went up) and 0 (went down)."""

    def __init__(self, name: str, estimator: Any) -> None:
        self.name = name
        self.estimator = estimator

    def prob_up(self, x: dict[str, float]) -> float:
        proba = self.estimator.predict_proba_one(x)
        return float(proba.get(1, proba.get(True, 0.5))) if proba else 0.5

    def learn(self, x: dict[str, float], y: int) -> None:
        self.estimator.learn_one(x, y)


def make_model(name: str = DEFAULT_MODEL) -> OnlineModel:
    try:
        return OnlineModel(name, MODELS[name]())
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


__all__ = ["DEFAULT_MODEL", "MODELS", "OnlineModel", "make_model"]
