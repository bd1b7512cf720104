"""Job parameters from a topic are untrusted: whatever JSON arrives, checking it either
passes or raises InvalidParams (which the jobs agent turns into a failed result), never
anything that would stop the agent. (The first version of this test found
``{"objective": []}`` raising TypeError in the optimizer's check.)"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from spark.backtest.engine import InvalidParams
from spark.jobs.runner import check

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "data",
        "format",
        "symbol",
        "tz",
        "limit",
        "model",
        "band",
        "horizon",
        "fee_bp",
        "objective",
        "grid",
        "limits",
        "output",
        "topic",
        "fields",
    ]  # fmt: skip
)
FX = "spark/data/fxcm/eurusd/20140501_quote.zip"
# with a real data file, so the checks get past the path to every other field
WITH_DATA = st.fixed_dictionaries(
    {"data": st.just(FX)},
    optional={k: JSON for k in ["format", "limit", "model", "band", "objective", "grid"]},
)
PARAMS = st.dictionaries(KEYS | st.text(max_size=8), JSON, max_size=6) | JSON | WITH_DATA


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["backtest", "optimizer", "export"]), PARAMS)
def test_any_json_is_accepted_or_refused_with_invalid_params(kind, params):
    with contextlib.suppress(InvalidParams):
        check(kind, params)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["band", "limits.max_orders_per_minute", "model"]), JSON))
def test_any_optimizer_grid_is_accepted_or_refused(grid):
    with contextlib.suppress(InvalidParams):
        check("optimizer", {"data": FX, "grid": grid})
