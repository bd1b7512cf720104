"""Every setting of the signal pipeline, read from the environment once into one object.

``Settings.from_env()`` is called once by each entry point (worker, CLI command, job);
the object is passed down, and nothing below reads the environment again. Every field
has the default the documentation gives; a bad value is a SettingsError (a SparkError)
naming the variable.

=============================  ==============================================  =========
variable                       meaning                                         default
=============================  ==============================================  =========
SPARK_MODEL                    champion learner: gbm or logreg                  gbm
SPARK_CHALLENGERS              learners run in shadow, comma-separated          (none)
SPARK_HORIZON_S                label horizon, seconds                           1.0
SPARK_HORIZON_MOVES            > 0: label horizon in event time instead, this   0
                               many moves of the symbol's mid; 0: SPARK_HORIZON_S
SPARK_SIGNAL_BAND              signal band around 0.5                           0.1
SPARK_MIN_EDGE                 cost-aware policy: enter only where the          4
                               predicted edge >= this x (spread + 2 fees);
                               0: the band alone decides (docs/policy.md)
SPARK_MIN_HOLD_S               cost-aware policy: seconds a position is held    1
                               before it may change
SPARK_GBM_WINDOW               gbm: labels its trees are fit on                 40000
SPARK_GBM_REFIT                gbm: labels between refits                       5000
SPARK_GBM_SWAP                 gbm: labels from a refit's start to its use      500
SPARK_PROMOTION_MARGIN         challenger AUC over champion to be promoted      0.01
SPARK_PROMOTION_MIN_LABELS     labels each needs before a comparison            2000
SPARK_GATE_RULE                break (a jump of the mid, a frozen quote),       break+dt_spread
                               dt_spread, confirmed, profile (the file of       +profile
                               SPARK_DRIFT_PROFILE), a feature name (one PSI
                               on it), or several joined by +: docs/drift.md
SPARK_DRIFT_PROFILE            the profile part's file (`spark drift            bundled
                               profile`), bundled (the shipped kinds of market:
                               currency pairs and stock tickers against their
                               own recent level) or none; without
                               SPARK_GATE_RULE the rule is then
                               break+dt_spread+profile (none: break+dt_spread)
SPARK_DRIFT_RELEASES           payrolls: the gate rule's alarms from 5 minutes  payrolls
                               before to 30 after the US payrolls release
                               (08:30 New York, by the BLS's rule) are
                               info, not warnings (a jump's and a frozen
                               feed's still close the gate); calendar
                               files (lines when,name[,min before,min
                               after]) joined by commas, with or without
                               payrolls; the FX day's rollover for the
                               kinds of a profile learnt with one (`spark
                               drift profile --rollover`; the shipped file
                               has none since session 37), unless none
SPARK_GATE_CONCEPT             on: the champion's ADWIN alarms close gates      off
SPARK_DRIFT_FEATURES           core, all, none, or names: informational PSIs    core
SPARK_DRIFT_WINDOW             window of the informational PSIs                 5000
SPARK_DRIFT_THRESHOLD          their PSI threshold                              4.0
SPARK_GATE_COOLDOWN            labels a closed gate waits before probation      1000
SPARK_GATE_PROBATION           labels scored in probation                       2000
SPARK_GATE_MIN_AUC             probation AUC needed to reopen                   0.55
SPARK_ORDER_NOTIONAL ...       paper executor (spark.execution.risk)            see there
SPARK_FEE_BP, SPARK_MAKER_FEE_BP, SPARK_FEE_SCHEDULE, SPARK_FILL_LATENCY_MS,
SPARK_LATENCY_JITTER_MS, SPARK_SLIPPAGE_BP, SPARK_DEPTH_SPREADS, SPARK_FILL_MODEL,
SPARK_PASSIVE_TIMEOUT_MS, SPARK_PASSIVE_ON_TIMEOUT
                               cost and fill models: docs/costs.md              see there
SPARK_SIGNAL_TTL_MS            a signal held back by earlier orders of its      10000
                               symbol longer than this is refused
                               (signal_expired; 0: no limit): docs/executor.md
SPARK_SNAPSHOT_S               seconds between pipeline checkpoints             30
SPARK_SESSION_TIMEOUT_MS       consumer group session timeout of the workers    see below
SPARK_FETCH_WAIT_MS            the tick loop's fetch.wait.max.ms                5 (50 on the
                                                                               embedded broker's
                                                                               S3 storage)
SPARK_DELIVERY                 exactly_once or at_least_once (the tick loop)    see below
SPARK_EMBEDDED_BROKER          1: KAFKA_BOOTSTRAP_SERVERS is an embedded broker (unset)
SPARK_KAFKA_DEBUG              librdkafka debug contexts (cgrp, fetch, ...):   (unset)
                               its lines go to stderr
SPARK_PRICE_BAND               a price this share away from its symbol's       0.5
                               reference mid is refused (price_jump); 0: off
SPARK_PRICE_RELEARN            ... until this many in a row: the new level      20
SPARK_IDLE_EVICT_TICKS         ticks of its partition after which an idle       10000000
                               symbol is forgotten (it starts fresh if it
                               returns)
=============================  ==============================================  =========

The session timeout: the embedded broker forms a group in about half of it
(docs/broker.md), Apache Kafka refuses less than 6 s (``group.min.session.timeout.ms``).
Default: 2,000 ms when the workers' broker is the embedded one this machine recorded,
else 10,000 ms.

Delivery (docs/hot-path.md): ``exactly_once`` commits a batch's records and its input
offsets in one Kafka transaction; ``at_least_once`` commits the offsets once the records
are acknowledged, and a re-processed batch repeats its records byte for byte. Default:
``at_least_once`` on the embedded broker (whose aborted transactions stay visible, so
they would add ~30 ms a batch and guarantee nothing more), ``exactly_once`` elsewhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from spark.errors import SparkError
from spark.execution.costs import CostModelError, CostModels
from spark.execution.risk import LIMIT_ENV, LIMIT_NAMES, ExecutionSettings, Limits

MODEL_NAMES = ("gbm", "logreg")
DEFAULT_MODEL = "gbm"  # the selection protocol's choice (docs/policy.md, run 7, session 16)
CONFIRMED = "confirmed"  # PSI on spread_bp confirmed by vol_bp (the default until session 7)
# PSI on dt_s confirmed by PSI on spread_bp within 1,000 vectors: chosen by `spark research
# drift` on train streams (docs/drift.md, session 7) (the default gate rule until session 14)
DT_SPREAD = "dt_spread"
# a jump of the mid or a frozen quote (spark.drift.breaks)
BREAK = "break"
# the spread and move size against the instrument's time-of-day profile of earlier days
# (spark.drift.profile; needs SPARK_DRIFT_PROFILE; docs/drift.md, session 27)
PROFILE = "profile"
CONFIRMED_RULES = (CONFIRMED, DT_SPREAD)
# the default gate rule: the break detectors or dt_spread, whichever alarms first; chosen by
# `spark research drift` on train streams (docs/drift.md, session 14)
GATE_RULE = f"{BREAK}+{DT_SPREAD}"
# SPARK_DRIFT_PROFILE's default: the shipped profile of kinds of market only (fx for currency
# pairs, stock for tickers), learnt on the train days (docs/drift.md, session 31); NO_PROFILE
# turns the profile part off
BUNDLED, NO_PROFILE = "bundled", "none"
BUNDLED_PATH = Path(__file__).resolve().parent / "drift" / "kinds.json"


def profile_path(value: str) -> str:
    """The file a SPARK_DRIFT_PROFILE value names ('' for none)."""
    return str(BUNDLED_PATH) if value == BUNDLED else ("" if value == NO_PROFILE else value)


class SettingsError(SparkError):
    """A setting with a value that cannot be used."""


def parse_horizon(text: str) -> dict:
    """A label horizon as people write it: seconds ("1", "0.5s") or mid moves in event time
    ("1move", "3 moves", "2mv"); the ModelSettings fields it sets. ValueError says why not.

    >>> parse_horizon("2s"), parse_horizon("1 move")
    ({'horizon_s': 2.0, 'horizon_moves': 0}, {'horizon_moves': 1})
    """
    raw = str(text).strip().lower().replace(" ", "")
    for unit in ("moves", "move", "mv"):
        if raw.endswith(unit):
            count = raw.removesuffix(unit)
            if count.isdigit() and 0 < int(count) <= 1_000:
                return {"horizon_moves": int(count)}
            raise ValueError(f"{text!r}: the moves must be a whole number from 1 to 1000")
    try:
        seconds = float(raw.removesuffix("s"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a horizon: seconds (1, 0.5s) or mid moves (1move, 3moves)"
        ) from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{text!r}: the seconds must be a positive number")
    return {"horizon_s": seconds, "horizon_moves": 0}


def horizon_name(seconds: float, moves: int) -> str:
    """A label horizon for people: "1s", "1 move", "3 moves"."""
    return f"{moves} move{'s' if moves > 1 else ''}" if moves else f"{seconds:g}s"


@dataclass(frozen=True)
class ModelSettings:
    model: str = DEFAULT_MODEL
    challengers: tuple[str, ...] = ()
    horizon_s: float = 1.0
    # > 0: labels in event time instead, the sign of the mid after this many moves of the
    # symbol's mid (spark.pipeline.core); horizon_s is then unused by the labels
    horizon_moves: int = 0  # run 7 (session 16) chose 1 s; run 6 had chosen 1 move
    band: float = 0.1
    # the cost-aware policy (spark.ml.signals), as `spark research select` chose on train
    # days (docs/policy.md, docs/selection.md); min_edge 0: the band policy alone
    min_edge: float = 4.0
    min_hold_s: float = 1.0
    gbm_window: int = 40_000
    gbm_refit: int = 5_000
    gbm_swap: int | None = None  # None: 500 labels, or the refit period if shorter
    promotion_margin: float = 0.01
    promotion_min_labels: int = 2_000

    def __post_init__(self) -> None:
        for name in (self.model, *self.challengers):
            if name not in MODEL_NAMES:
                raise SettingsError(
                    f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}"
                )
        if len({self.model, *self.challengers}) != 1 + len(self.challengers):
            raise SettingsError(
                f"SPARK_CHALLENGERS {','.join(self.challengers)!r} names the champion "
                f"({self.model}) or one model twice: a challenger is another model"
            )
        if not (self.horizon_s > 0 and math.isfinite(self.horizon_s)):
            raise SettingsError(
                f"the horizon must be a positive number of seconds, not {self.horizon_s!r}"
            )
        if not 0 <= self.horizon_moves <= 1_000:
            raise SettingsError(
                "SPARK_HORIZON_MOVES must be between 0 (labels in seconds) and 1000, "
                f"not {self.horizon_moves!r}"
            )
        if not 0 < self.band < 0.5:
            raise SettingsError(f"the signal band must be between 0 and 0.5, not {self.band!r}")
        if not (0 <= self.min_edge < 1_000 and 0 <= self.min_hold_s < 86_400):
            raise SettingsError(
                "SPARK_MIN_EDGE must be between 0 and 1000 and SPARK_MIN_HOLD_S between 0 and "
                f"86400, not {self.min_edge!r} and {self.min_hold_s!r}"
            )
        if not 0 < self.gbm_refit <= self.gbm_window:
            raise SettingsError("SPARK_GBM_REFIT must be positive and at most SPARK_GBM_WINDOW")
        if self.gbm_swap is not None and not 0 <= self.gbm_swap <= self.gbm_refit:
            raise SettingsError("SPARK_GBM_SWAP must be between 0 and SPARK_GBM_REFIT")

    @property
    def swap(self) -> int:
        """Labels between a refit's start and its trees' first prediction (docs/ml.md: 500
        costs 0.001 AUC against waiting for every refit, a full refit period 0.012)."""
        return min(500, self.gbm_refit) if self.gbm_swap is None else self.gbm_swap

    @property
    def horizon_us(self) -> int:
        return round(self.horizon_s * 1e6)

    @property
    def horizon_ms(self) -> int:
        """The prediction record's ``horizon_ms``: 0 for labels in event time."""
        return 0 if self.horizon_moves else round(self.horizon_s * 1000)

    @property
    def horizon_name(self) -> str:
        return horizon_name(self.horizon_s, self.horizon_moves)

    @property
    def label_horizon(self) -> int:
        """The labels' horizon as the compiled loop takes it: microseconds, or minus the
        number of mid moves in event time."""
        return -self.horizon_moves if self.horizon_moves else self.horizon_us


@dataclass(frozen=True)
class BreakSettings:
    """The break detectors (spark.drift.breaks), as `spark research drift` chose them on the
    train streams (docs/drift-rules.md)."""

    jump: float = 1_000.0  # a mid move of this many typical moves
    frozen: float = 50.0  # a run without a mid move of this many usual gaps between moves
    move_span: int = 100  # moves in the typical move size (EW mean of |ret_bp|)
    rate_span: int = 2_000  # ticks in the rate of mid moves (EW mean)
    warm: int = 5_000  # ticks of a symbol before either says anything


RELEASES_PAYROLLS, RELEASES_NONE = "payrolls", "none"  # SPARK_DRIFT_RELEASES


@dataclass(frozen=True)
class DriftSettings:
    watch: tuple[str, ...] | str = "core"  # feature names, or core / all / none
    rule: str = f"{GATE_RULE}+{PROFILE}"
    breaks: BreakSettings = field(default_factory=BreakSettings)
    # the profile part's file (`spark drift profile`), BUNDLED (the shipped kinds of market)
    # or NO_PROFILE; ``profile_path`` gives the file
    profile: str = BUNDLED
    # scheduled releases (spark.drift.releases) in whose windows the gate rule's alarms are
    # info, not warnings: RELEASES_PAYROLLS, RELEASES_NONE or calendar files (comma-joined)
    releases: str = RELEASES_PAYROLLS
    concept_gates: bool = False
    window: int = 5_000
    threshold: float = 4.0
    cooldown_labels: int = 1_000
    probation_labels: int = 2_000
    min_auc: float = 0.55


@dataclass(frozen=True)
class Settings:
    """What a SignalPipeline and the worker around it run with."""

    models: ModelSettings = field(default_factory=ModelSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    limits: Limits = field(default_factory=Limits)
    gate: bool = True  # drift gates between the policy and the signals
    trading: bool = True  # signal policy and paper executor (off: features, models, scores)
    snapshot_s: float = 30.0
    idle_evict_ticks: int = 10_000_000
    session_timeout_ms: int = 10_000
    fetch_wait_ms: int = 5  # the tick loop's fetch.wait.max.ms (see _default_fetch_wait_ms)
    delivery: str = "exactly_once"  # or at_least_once
    max_future_s: float = 600.0  # a tick stamped further ahead of its broker time is refused
    # a price further than this share from its symbol's reference mid (either way, in log
    # terms) is refused as price_jump, until price_relearn such ticks in a row make the new
    # level the reference (spark.pipeline.screen); 0: off
    price_band: float = 0.5
    price_relearn: int = 20
    stall_s: float = 60.0  # /health: lag and no messages taken, or no loop round, this long
    command_max_age_s: float = 300.0  # a command's ts this far from its broker time: stale

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> Settings:
        """Settings from ``as_dict()``."""
        models = dict(saved["models"], challengers=tuple(saved["models"]["challengers"]))
        # saved before session 15: its queued labels wait on a clock, not on mid moves
        models.setdefault("horizon_moves", 0)
        watch = saved["drift"]["watch"]
        drift = dict(saved["drift"], watch=tuple(watch) if isinstance(watch, list) else watch)
        if "breaks" in drift:  # a checkpoint from before session 14 has none: the defaults
            drift["breaks"] = BreakSettings(**drift["breaks"])
        return cls(
            models=ModelSettings(**models),
            drift=DriftSettings(**drift),
            execution=ExecutionSettings(**saved["execution"]),
            limits=Limits(**saved["limits"]),
            **{
                k: v
                for k, v in saved.items()
                if k not in ("models", "drift", "execution", "limits")
            },
        )

    def with_models(self, **changes) -> Settings:
        return replace(self, models=replace(self.models, **changes))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        read = _Reader(env)
        challengers = tuple(
            c.strip() for c in env.get("SPARK_CHALLENGERS", "").split(",") if c.strip()
        )
        swap = env.get("SPARK_GBM_SWAP", "").strip()
        models = ModelSettings(
            model=env.get("SPARK_MODEL", DEFAULT_MODEL).strip() or DEFAULT_MODEL,
            challengers=challengers,
            horizon_s=read.number("SPARK_HORIZON_S", 1.0),
            horizon_moves=read.whole("SPARK_HORIZON_MOVES", 0),
            band=read.number("SPARK_SIGNAL_BAND", 0.1),
            min_edge=read.number("SPARK_MIN_EDGE", ModelSettings.min_edge),
            min_hold_s=read.number("SPARK_MIN_HOLD_S", ModelSettings.min_hold_s),
            gbm_window=read.whole("SPARK_GBM_WINDOW", 40_000),
            gbm_refit=read.whole("SPARK_GBM_REFIT", 5_000),
            gbm_swap=read.whole("SPARK_GBM_SWAP", 0) if swap else None,
            promotion_margin=read.number("SPARK_PROMOTION_MARGIN", 0.01),
            promotion_min_labels=read.whole("SPARK_PROMOTION_MIN_LABELS", 2_000),
        )
        concept = env.get("SPARK_GATE_CONCEPT", "off").strip().lower()
        if concept not in ("on", "off"):
            raise SettingsError(f"SPARK_GATE_CONCEPT must be on or off, not {concept!r}")
        # a profile given and no rule named: the default rule with its profile part
        profile = env.get("SPARK_DRIFT_PROFILE", "").strip() or BUNDLED
        if profile.lower() in (BUNDLED, NO_PROFILE):
            profile = profile.lower()
        gate_rule = env.get("SPARK_GATE_RULE", "").strip() or (
            f"{GATE_RULE}+{PROFILE}" if profile != NO_PROFILE else GATE_RULE
        )
        releases = env.get("SPARK_DRIFT_RELEASES", "").strip() or RELEASES_PAYROLLS
        if releases.lower() in (RELEASES_PAYROLLS, RELEASES_NONE):
            releases = releases.lower()
        else:  # calendar files too: read now, so that a bad one is said at the start
            from spark.drift.releases import Calendar, ReleasesError

            try:
                Calendar.parse(releases)
            except ReleasesError as exc:
                raise SettingsError(
                    f"SPARK_DRIFT_RELEASES must be {RELEASES_PAYROLLS}, {RELEASES_NONE} or "
                    f"calendar files joined by commas: {exc}"
                ) from None
        drift = DriftSettings(
            watch=env.get("SPARK_DRIFT_FEATURES", "core").strip() or "core",
            releases=releases,
            rule=gate_rule,
            profile=profile,
            concept_gates=concept == "on",
            window=read.whole("SPARK_DRIFT_WINDOW", 5_000),
            threshold=read.number("SPARK_DRIFT_THRESHOLD", 4.0),
            cooldown_labels=read.whole("SPARK_GATE_COOLDOWN", 1_000),
            probation_labels=read.whole("SPARK_GATE_PROBATION", 2_000),
            min_auc=read.number("SPARK_GATE_MIN_AUC", 0.55),
        )
        d = ExecutionSettings()
        execution = ExecutionSettings(
            order_notional=read.number("SPARK_ORDER_NOTIONAL", d.order_notional),
            fee_bp=read.number("SPARK_FEE_BP", d.fee_bp),
            latency_ms=read.number("SPARK_FILL_LATENCY_MS", d.latency_ms),
            maker_fee_bp=read.number("SPARK_MAKER_FEE_BP", d.maker_fee_bp, signed=True),
            fee_schedule=env.get("SPARK_FEE_SCHEDULE", "").strip(),
            latency_jitter_ms=read.number("SPARK_LATENCY_JITTER_MS", d.latency_jitter_ms),
            slippage_bp=read.number("SPARK_SLIPPAGE_BP", d.slippage_bp),
            depth_spreads=read.number("SPARK_DEPTH_SPREADS", d.depth_spreads),
            fill_model=env.get("SPARK_FILL_MODEL", d.fill_model).strip().lower() or d.fill_model,
            passive_timeout_ms=read.number("SPARK_PASSIVE_TIMEOUT_MS", d.passive_timeout_ms),
            signal_ttl_ms=read.number("SPARK_SIGNAL_TTL_MS", d.signal_ttl_ms),
            passive_on_timeout=env.get("SPARK_PASSIVE_ON_TIMEOUT", d.passive_on_timeout)
            .strip()
            .lower()
            or d.passive_on_timeout,
        )
        try:
            CostModels.from_settings(execution)
        except CostModelError as exc:
            raise SettingsError(f"cost and fill models (docs/costs.md): {exc}") from None
        limits = Limits(**{n: read.number(LIMIT_ENV[n], getattr(Limits(), n)) for n in LIMIT_NAMES})
        return cls(
            models=models,
            drift=drift,
            execution=execution,
            limits=limits,
            snapshot_s=read.number("SPARK_SNAPSHOT_S", 30.0),
            idle_evict_ticks=read.whole("SPARK_IDLE_EVICT_TICKS", 10_000_000),
            session_timeout_ms=read.whole("SPARK_SESSION_TIMEOUT_MS", _default_session_ms(env)),
            fetch_wait_ms=read.whole("SPARK_FETCH_WAIT_MS", _default_fetch_wait_ms(env)),
            delivery=_delivery(env),
            max_future_s=read.number("SPARK_MAX_FUTURE_S", 600.0),
            price_band=read.number("SPARK_PRICE_BAND", 0.5),
            price_relearn=read.whole("SPARK_PRICE_RELEARN", 20),
            stall_s=read.number("SPARK_STALL_S", 60.0),
            command_max_age_s=read.number("SPARK_COMMAND_MAX_AGE_S", 300.0),
        )


def _embedded(env: Mapping[str, str]) -> bool:
    """Whether the workers' broker is the embedded one (as this machine recorded it), or
    SPARK_EMBEDDED_BROKER says so (the test suite reaches it through an address)."""
    from spark.config import read_state

    if env.get("SPARK_EMBEDDED_BROKER", "").strip() in ("1", "yes", "true"):
        return True
    embedded = read_state("broker")
    external = env.get("KAFKA_BOOTSTRAP_SERVERS")
    return not external or bool(embedded and embedded.get("address") == external)


def _default_session_ms(env: Mapping[str, str]) -> int:
    return 2_000 if _embedded(env) else 10_000


def _default_fetch_wait_ms(env: Mapping[str, str]) -> int:
    """5 ms: the embedded broker answers a fetch only when this wait is over, data or not,
    so it sets the latency of every hop. But on S3 storage its reads take longer than 5 ms
    on a loaded machine, and then it answers every fetch empty: a consumer with a 5 ms wait
    got 0 records in 20 s where one with 20–500 ms got 5,000 in 0.2–0.4 s (the stalled
    chaos run of session 26, docs/reliability.md). 50 ms there."""
    from spark.config import read_state

    embedded = read_state("broker") if _embedded(env) else None
    storage = str((embedded or {}).get("storage", ""))
    return 50 if storage.startswith("s3") else 5


def _delivery(env: Mapping[str, str]) -> str:
    chosen = env.get("SPARK_DELIVERY", "").strip().lower()
    if chosen in ("exactly_once", "at_least_once"):
        return chosen
    if chosen:
        raise SettingsError(f"SPARK_DELIVERY must be exactly_once or at_least_once, not {chosen!r}")
    return "at_least_once" if _embedded(env) else "exactly_once"


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def number(self, name: str, default: float, signed: bool = False) -> float:
        raw = self.env.get(name, "")
        if raw.strip() == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, not {raw!r}") from None
        if not math.isfinite(value) or (value < 0 and not signed):
            raise SettingsError(f"{name} must be a finite number >= 0, not {raw!r}")
        return value

    def whole(self, name: str, default: int) -> int:
        value = self.number(name, default)
        if value != int(value):
            raise SettingsError(f"{name} must be a whole number, not {self.env.get(name)!r}")
        return int(value)
