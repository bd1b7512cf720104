"""A pipeline's learners as arrays for the compiled loop, and gbm refits off the hot path.

Learners (docs/ml.md):

* ``logreg`` — ``spark.ml.linear``: standardized features, online logistic regression.
* ``gbm`` — LightGBM trees (30 trees of 15 leaves, learning rate 0.15, 63 bins from 5,000
  sampled rows, ≥ 200 labels a leaf, deterministic; chosen by docs/ml.md's session-13
  protocol for a 3× cheaper refit; two threads a fit since session 16, the same trees as
  one thread grows, a test checks) fit on the last ``window`` labelled
  vectors; until its first trees a logreg warm-up answers and learns, and after them it
  goes on learning and answers a quarter of the probability (``core.GBM_BLEND``, chosen by
  bench/gbm_blend.py in session 34).

Refits, deterministic and in the background. When a gbm model's label count reaches its
next refit point k (every ``refit`` labels) at a tick boundary, the window as of that
boundary is copied and trained on in a background thread (LightGBM's calls release the
GIL), while the loop goes on with the old trees. At the first tick boundary where the
count reaches k + ``swap`` labels the new trees take over; if the training has not
finished by then, the loop waits for it. Which trees answer a tick depends on label
counts only, so a replay reproduces a live run whatever the machine's speed.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from spark.features.kernel import FEATURE_NAMES, FEATURE_SET, N_FEATURES
from spark.ml import linear
from spark.ml.trees import Forest, concat
from spark.pipeline.core import GBM, LINEAR, NONE
from spark.settings import ModelSettings

KINDS = {"logreg": LINEAR, "gbm": GBM}
GBM_TREES = 30
GBM_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.15,
    "num_leaves": 15,
    "max_bin": 63,
    "bin_construct_sample_cnt": 5_000,
    "feature_fraction": 0.8,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
GBM_MIN_LEAF = 200
# labels after which a window row's weight in a fit halves (0: every row weighs the same);
# bench/gbm_recency.py is the protocol that tried it (docs/ml.md, session 29)
GBM_HALF_LIFE = 0
_TRAINER: list[ThreadPoolExecutor] = []


TRAINERS = 2  # refits of different pipelines (partitions) run side by side


def _trainer() -> ThreadPoolExecutor:
    """The background threads that train refits (LightGBM releases the GIL while it trains)."""
    if not _TRAINER:
        _TRAINER.append(ThreadPoolExecutor(TRAINERS, thread_name_prefix="spark-refit"))
    return _TRAINER[0]


SHARED_SPIN = 1_000  # GOMP_SPINCOUNT where cores are shared (libgomp's default: 300,000)


def share_cores() -> None:
    """Refit threads spin only briefly before they sleep, in a process whose cores other
    work needs (a worker's tick loop, another worker, a research pool's other processes).

    LightGBM trains on OpenMP threads (libgomp), and an idle libgomp thread spins before it
    sleeps (GOMP_SPINCOUNT 300,000). With more threads than cores the spinning threads take
    the cores the tick loop needs: on this 2-core machine one worker ran at 10.7-11.0k
    ticks/s with that spinning and 17.2-19.3k without, two workers at 4.1-23.5k and
    20.4-23.0k (docs/hot-path.md, session 20). Not spinning at all (OMP_WAIT_POLICY=PASSIVE,
    session 20's fix) makes every fit slower instead: a thread then sleeps at each of the
    fit's many short parallel regions. A spin of 1,000 keeps the fit's threads awake
    between regions and lets idle ones sleep within microseconds: fits 200 ms instead of
    240-280 ms, a worker's waits for trees 4.6-5.2 s instead of 5.4-5.9 s on a 299k-tick
    backlog (session 21). A standalone `spark backtest run`, alone on its cores, keeps
    libgomp's default. Takes effect only before LightGBM loads libgomp; an OMP_WAIT_POLICY
    or GOMP_SPINCOUNT the user set is kept."""
    if "lightgbm" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", str(SHARED_SPIN))


def fit_forest(x: np.ndarray, y: np.ndarray) -> Forest | None:
    """Trees fit on labelled rows in time order; None when they hold one class only."""
    import lightgbm

    if y.min() == y.max():
        return None  # nothing to split on yet: the current trees stay
    # leaves of at least GBM_MIN_LEAF labels, fewer while the window is small (tests, demos)
    params = dict(GBM_PARAMS, min_data_in_leaf=min(GBM_MIN_LEAF, max(20, len(y) // 20)))
    weight = None
    if GBM_HALF_LIFE > 0:  # oldest row first: the newest weighs 1
        weight = 0.5 ** (np.arange(len(y) - 1, -1, -1) / GBM_HALF_LIFE)
    data = lightgbm.Dataset(x, y, weight=weight, feature_name=list(FEATURE_NAMES))
    return Forest.from_booster(lightgbm.train(params, data, num_boost_round=GBM_TREES))


@dataclass
class ModelSlot:
    """One model version in a pipeline: its name, version, role, and gbm's trees."""

    model_id: str
    role: str  # champion | challenger
    version: int = 1
    forest: Forest | None = None
    fits: int = 0
    fit_rows: int = 0  # labels the current trees were fit on
    training: Future | None = field(default=None, repr=False)
    trained_rows: int = 0

    @property
    def kind(self) -> int:
        return KINDS[self.model_id]


class Learners:
    """The pipeline's models: arrays the compiled loop reads and writes, plus their slots."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        names = [settings.model, *settings.challengers]
        self.slots = [
            ModelSlot(name, "champion" if i == 0 else "challenger") for i, name in enumerate(names)
        ]
        m = len(self.slots)
        self.kind = np.array([s.kind for s in self.slots], np.int8)
        self.lin = np.zeros((m, linear.params_size(N_FEATURES)))
        self.counts = np.zeros(m, np.int64)
        gbm = [i for i, s in enumerate(self.slots) if s.kind == GBM]
        self.gidx = np.full(m, NONE, np.int64)
        self.gidx[gbm] = np.arange(len(gbm))
        self.has_trees = np.zeros(m, np.bool_)
        window = settings.gbm_window if gbm else 1
        self.win_x = np.zeros((len(gbm), window, N_FEATURES))
        self.win_y = np.zeros((len(gbm), window), np.int8)
        self.win_pos = np.zeros((len(gbm), 2), np.int64)  # next row, rows filled
        self.refit_at = np.full(m, NONE, np.int64)
        self.refit_at[gbm] = settings.gbm_refit
        self.swap_at = np.full(m, NONE, np.int64)
        self.waited_s = 0.0  # time steps spent waiting for trees at their swap point
        self._forests()

    def _forests(self) -> None:
        installed = [(i, s.forest) for i, s in enumerate(self.slots) if s.forest is not None]
        self.forest, ranges = concat([f for _, f in installed])
        self.tree_range = np.zeros((len(self.slots), 2), np.int64)
        for (i, _), r in zip(installed, ranges, strict=True):
            self.tree_range[i] = r

    def arrays(self) -> tuple:
        return (
            self.kind,
            self.lin,
            self.counts,
            self.gidx,
            self.has_trees,
            self.tree_range,
            self.win_x,
            self.win_y,
            self.win_pos,
            self.refit_at,
            self.swap_at,
        )

    @property
    def champion(self) -> int:
        return next(i for i, s in enumerate(self.slots) if s.role == "champion")

    # --- refits ------------------------------------------------------------------------------
    def at_boundary(self) -> None:
        """Act on every model whose label count reached a swap or refit point."""
        for m, slot in enumerate(self.slots):
            while True:
                if self.swap_at[m] != NONE and self.counts[m] >= self.swap_at[m]:
                    self._swap(m, slot)
                elif self.refit_at[m] != NONE and self.counts[m] >= self.refit_at[m]:
                    self._start_refit(m, slot)
                else:
                    break

    def blocked(self) -> bool:
        """Whether acting at this boundary would wait: a swap point reached whose trees
        are still training."""
        for m, slot in enumerate(self.slots):
            due = self.swap_at[m] != NONE and self.counts[m] >= self.swap_at[m]
            if due and slot.training is not None and not slot.training.done():
                return True
        return False

    def _window(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The gbm window's rows and labels, oldest first (a copy)."""
        g = self.gidx[m]
        at, filled = self.win_pos[g]
        size = self.win_x.shape[1]
        order = (np.arange(filled) + (at if filled == size else 0)) % size
        return self.win_x[g, order], self.win_y[g, order].astype(np.int32)

    def _start_refit(self, m: int, slot: ModelSlot) -> None:
        x, y = self._window(m)
        slot.training = _trainer().submit(fit_forest, x, y)
        slot.trained_rows = len(y)
        # the swap point counts from the scheduled refit point, not from the boundary that
        # reached it, so with swap == refit a swap and the next refit fall on one boundary
        self.swap_at[m] = self.refit_at[m] + self.settings.swap
        refit = self.settings.gbm_refit
        self.refit_at[m] = (self.counts[m] // refit + 1) * refit

    def _swap(self, m: int, slot: ModelSlot) -> None:
        training, forest = slot.training, None
        if training is not None:
            if not training.done():  # the step waits for the trees (a backlog replayed fast)
                before = time.perf_counter()
                training.result()
                self.waited_s += time.perf_counter() - before
            forest = training.result()
        slot.training = None
        self.swap_at[m] = NONE
        if forest is None:
            return
        slot.forest, slot.fits, slot.fit_rows = forest, slot.fits + 1, slot.trained_rows
        self.has_trees[m] = True
        self._forests()

    # --- one model's learned parameters (the registry) -----------------------------------------
    def export(self, m: int) -> tuple[dict, dict[str, np.ndarray]]:
        """What model ``m`` has learned: its parameters, not its window or pending state."""
        slot = self.slots[m]
        arrays = {"lin": self.lin[m]}
        if slot.forest is not None:
            arrays.update(
                {f"forest.{n}": a for n, a in zip(FOREST_FIELDS, slot.forest.arrays(), strict=True)}
            )
        meta = {
            "model_id": slot.model_id,
            "fits": slot.fits,
            "fit_rows": slot.fit_rows,
            "trees": slot.forest is not None,
            "labels": int(self.counts[m]),
            "feature_set": FEATURE_SET,
        }
        return meta, arrays

    def adopt(self, m: int, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Give model ``m`` the parameters another one learned (``export``)."""
        slot = self.slots[m]
        if meta["model_id"] != slot.model_id:
            raise ValueError(f"a {meta['model_id']} model cannot become {slot.model_id}")
        # a version learned on an earlier feature set (each set appended to the one before:
        # v2's 48, v3's 52 are the first of v4's 54): the trees index features by position
        # and answer as before; logreg's new weights start at 0 (``linear.widen``)
        self.lin[m] = linear.widen(arrays["lin"], N_FEATURES)
        if meta["trees"]:
            slot.forest = Forest(*(arrays[f"forest.{n}"] for n in FOREST_FIELDS))
            slot.fits, slot.fit_rows = meta["fits"], meta["fit_rows"]
            self.has_trees[m] = True
        self._forests()

    def add(self, model_id: str, role: str = "challenger") -> int:
        """A new model slot (untrained); its index."""
        old = self
        names = [s.model_id for s in old.slots] + [model_id]
        grown = Learners(
            ModelSettings(
                **{**asdict(old.settings), "model": names[0], "challengers": tuple(names[1:])}
            )
        )
        m = len(old.slots)
        grown.slots[:m] = old.slots
        grown.slots[m].role = role
        for name in self._ARRAYS:
            mine, theirs = getattr(grown, name), getattr(old, name)
            if name.startswith("win_"):
                mine[: theirs.shape[0]] = theirs
            else:
                mine[:m] = theirs
        self.__dict__.update(grown.__dict__)
        self._forests()
        return m

    # --- state ---------------------------------------------------------------------------------
    _ARRAYS = ("lin", "counts", "has_trees", "win_x", "win_y", "win_pos", "refit_at", "swap_at")

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able part, arrays) of every model, trees in training included (finished
        first: a checkpoint holds trees, never a thread)."""
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        slots = []
        for m, slot in enumerate(self.slots):
            pending = slot.training.result() if slot.training is not None else None
            for key, forest in (("forest", slot.forest), ("pending", pending)):
                if forest is not None:
                    arrays.update(
                        {
                            f"{key}{m}.{n}": a
                            for n, a in zip(FOREST_FIELDS, forest.arrays(), strict=True)
                        }
                    )
            slots.append(
                {
                    "model_id": slot.model_id,
                    "role": slot.role,
                    "version": slot.version,
                    "fits": slot.fits,
                    "fit_rows": slot.fit_rows,
                    "trained_rows": slot.trained_rows,
                    "forest": slot.forest is not None,
                    "training": slot.training is not None,
                    "pending": pending is not None,
                }
            )
        return {"slots": slots, "settings": asdict(self.settings)}, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Learners:
        """Learners exactly as ``state()`` saw them, with the settings they ran with."""
        saved = dict(meta["settings"], challengers=tuple(meta["settings"]["challengers"]))
        self = cls(ModelSettings(**saved))
        for name in self._ARRAYS:
            getattr(self, name)[...] = arrays[name]
        for m, (slot, kept) in enumerate(zip(self.slots, meta["slots"], strict=True)):
            slot.role, slot.version, slot.fits = kept["role"], kept["version"], kept["fits"]
            slot.fit_rows, slot.trained_rows = kept["fit_rows"], kept["trained_rows"]
            if kept["forest"]:
                slot.forest = Forest(*(arrays[f"forest{m}.{n}"] for n in FOREST_FIELDS))
            if kept["training"]:
                slot.training = Future()
                slot.training.set_result(
                    Forest(*(arrays[f"pending{m}.{n}"] for n in FOREST_FIELDS))
                    if kept["pending"]
                    else None
                )
        self._forests()
        return self


FOREST_FIELDS = (
    "feature",
    "threshold",
    "default_left",
    "missing",
    "left",
    "right",
    "leaf_value",
    "roots",
)
