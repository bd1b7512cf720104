"""Online logistic regression on standardized features, compiled: the ``logreg`` learner.

The same update rules as river's ``StandardScaler() | LogisticRegression(SGD(0.01),
l2=1e-4)`` (the learner docs/ml.md measured): on each label the scaler's running mean
and (population) variance are updated first, the vector is standardized with them, then
one SGD step on the log loss (labels ±1, gradient clipped at 1e12) moves the intercept
(rate 0.01) and the weights (rate 0.01, L2 1e-4). A prediction standardizes with the
current statistics and applies the sigmoid (0 below -30, 1 above 30). A test compares it
with river's pipeline on real ticks.

The whole model is one array (``PARAMS`` long): count, intercept, means, variances,
weights, so a pipeline keeps many of them in a matrix and a snapshot is plain numbers.

>>> import numpy as np
>>> m = new_params(1)
>>> predict(m, np.array([1.0]))
0.5
>>> learn(m, np.array([1.0]), 1); learn(m, np.array([-1.0]), 0)
>>> predict(m, np.array([1.0])) > 0.5
True
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LEARNING_RATE = 0.01
INTERCEPT_RATE = 0.01
L2 = 1e-4
CLIP = 1e12
COUNT, INTERCEPT, MEANS = 0, 1, 2


def params_size(features: int) -> int:
    return 2 + 3 * features


def widen(params: np.ndarray, features: int) -> np.ndarray:
    """A model learned on the first features of a longer vector (a feature set that appended
    features), for ``features``: the new features' statistics and weights start at 0, so
    they count for nothing until the scaler has seen them vary.

    >>> m = new_params(1); learn(m, np.array([2.0]), 1)
    >>> w = widen(m, 3)
    >>> predict(w, np.array([2.0, 5.0, 7.0])) == predict(m, np.array([2.0]))
    True
    """
    old = (len(params) - 2) // 3
    if old == features:
        return params
    if old > features or len(params) != params_size(old):
        raise ValueError(f"a logreg of {old} features cannot take {features}")
    out = new_params(features)
    out[:MEANS] = params[:MEANS]
    for block in range(3):  # means, variances, weights
        out[MEANS + block * features : MEANS + block * features + old] = params[
            MEANS + block * old : MEANS + (block + 1) * old
        ]
    return out


def new_params(features: int) -> np.ndarray:
    """A model that has learned nothing: predicts 0.5."""
    return np.zeros(params_size(features))


@njit(cache=True)
def _standardize(m: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    f = x.shape[0]
    for j in range(f):
        var = m[MEANS + f + j]
        out[j] = (x[j] - m[MEANS + j]) / var**0.5 if var else 0.0


@njit(cache=True)
def _raw(m: np.ndarray, xt: np.ndarray) -> float:
    f = xt.shape[0]
    dot = 0.0
    for j in range(f):
        dot += m[MEANS + 2 * f + j] * xt[j]
    return dot + m[INTERCEPT]


@njit(cache=True)
def predict(m: np.ndarray, x: np.ndarray) -> float:
    """Probability of label 1 for the feature row ``x``."""
    xt = np.empty(x.shape[0])
    _standardize(m, x, xt)
    raw = _raw(m, xt)
    if raw < -30:
        return 0.0
    if raw > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-raw))


@njit(cache=True)
def learn(m: np.ndarray, x: np.ndarray, y: int) -> None:
    """One label: update the scaler, then one SGD step on the standardized row."""
    f = x.shape[0]
    m[COUNT] += 1.0
    n = m[COUNT]
    for j in range(f):
        old = m[MEANS + j]
        m[MEANS + j] += (x[j] - old) / n
        var = m[MEANS + f + j]
        m[MEANS + f + j] = var + ((x[j] - old) * (x[j] - m[MEANS + j]) - var) / n
    xt = np.empty(f)
    _standardize(m, x, xt)
    sign = 1.0 if y else -1.0
    z = _raw(m, xt) * sign
    if z > 18.0:
        gradient = math.exp(-z) * -sign
    elif z < -18.0:
        gradient = -sign
    else:
        gradient = -sign / (math.exp(z) + 1.0)
    gradient = min(max(gradient, -CLIP), CLIP)
    m[INTERCEPT] -= INTERCEPT_RATE * gradient
    w = MEANS + 2 * f
    for j in range(f):
        m[w + j] -= LEARNING_RATE * (xt[j] * gradient + L2 * m[w + j])
