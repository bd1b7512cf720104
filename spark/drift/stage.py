"""The drift stage of a SignalPipeline: detectors, alerts and gates over a batch.

Per symbol (docs/drift.md):

* the gate rule (``SPARK_GATE_RULE``, parts joined by ``+``, any of which closes the gate;
  ``rule_parts``) raises alerts with severity "warning" that close the symbol's gate. The
  default, ``break+dt_spread``: the break detectors (``spark.drift.breaks``: a jump of the
  mid, a frozen quote; alerts ``jump`` / ``frozen``) or PSI on ``dt_s`` confirmed by PSI
  on ``spread_bp`` within 1,000 vectors (``psi_confirmed``). Other parts: ``confirmed``
  (PSI on ``spread_bp`` confirmed by ``vol_bp`` within 250), a feature name (one PSI);
* one PSI per watched feature (``SPARK_DRIFT_FEATURES``), severity "info";
* ADWIN (delta 1e-4) on each model's prediction errors |prob_up − label|, per symbol and
  model; the champion's alarms are "warning" with ``concept_gates``, else "info".

Gates follow ``spark.drift.gate.Gate``. For each tick, in order: the PSI alerts, the break
alerts, the champion's then each challenger's concept alerts, then the gate sees the
warnings and the champion's labels resolved at that tick; a GateState record is produced
when the gate moved or a warning came. ``allowed`` (may the tick's signal pass?) is the
gate's state after that. Signals the gate holds back are counted in the gate
(``suppressed``) by ``count_suppressed`` once the policy has run.
"""

from __future__ import annotations

import pickle
from collections import defaultdict

import numpy as np

from spark.drift import adwin
from spark.drift.adwin import AdwinSet
from spark.drift.breaks import JUMP, BreakSet
from spark.drift.breaks import KINDS as BREAK_KINDS
from spark.drift.gate import CLOSED, OPEN, Gate
from spark.drift.kernel import Detector, DetectorSet
from spark.drift.profile import FEATURES as PROFILE_FEATURES
from spark.drift.profile import KINDS as PROFILE_KINDS
from spark.drift.profile import Profile, ProfileSet
from spark.drift.releases import ROLLOVER_BEFORE_S, Calendar, inside, rollovers
from spark.features.kernel import CORE_FEATURE_NAMES, FEATURE_NAMES
from spark.settings import (
    BREAK,
    CONFIRMED,
    CONFIRMED_RULES,
    DT_SPREAD,
    NO_PROFILE,
    PROFILE,
    DriftSettings,
    SettingsError,
    profile_path,
)

DETECTOR_NAMES = ("psi", "psi_confirmed", "adwin", *BREAK_KINDS, *PROFILE_KINDS)  # alert labels
_RESTART = -1
RET = FEATURE_NAMES.index("ret_bp")
SPREAD = FEATURE_NAMES.index("spread_bp")
ADWIN_DELTA = adwin.DELTA
# each confirmed gate rule's members: (feature, window, threshold, check every), and within
CONFIRMED_GROUPS = {
    CONFIRMED: ((("spread_bp", 2000, 4.0, 250), ("vol_bp", 1500, 3.0, 100)), 250),
    DT_SPREAD: ((("dt_s", 2000, 2.0, 250), ("spread_bp", 2000, 4.0, 250)), 1000),
}


def watched_features(watch: tuple[str, ...] | str) -> tuple[str, ...]:
    """Feature names of a SPARK_DRIFT_FEATURES value: core, all, none or a list."""
    if isinstance(watch, tuple):
        names = watch
    elif watch.strip() in ("", "core"):
        return tuple(CORE_FEATURE_NAMES)
    elif watch.strip() == "all":
        return tuple(FEATURE_NAMES)
    elif watch.strip() == "none":
        return ()
    else:
        names = tuple(n.strip() for n in watch.split(",") if n.strip())
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise SettingsError(f"unknown features {unknown}; known: {', '.join(FEATURE_NAMES)}")
    return names


class Adwin:
    """The drift stage's ADWIN before session 16: river's detector in a Python object. Only
    here so that a checkpoint that pickled these can be read (``spark.drift.adwin``)."""

    drift_detected: bool
    _helper: object  # river._river_rust.drift.AdaptiveWindowing


def rule_parts(rule: str) -> tuple[str, ...]:
    """The parts of a SPARK_GATE_RULE value, any of which closes the gate: ``break`` (the jump
    and frozen detectors), ``profile`` (the time-of-day profile detectors), one confirmed rule
    (``dt_spread``, ``confirmed``), feature names (one PSI each), joined by ``+``."""
    parts = tuple(p.strip() for p in rule.split("+") if p.strip())
    unknown = [p for p in parts if p not in (BREAK, PROFILE, *CONFIRMED_RULES, *FEATURE_NAMES)]
    if not parts or unknown:
        raise SettingsError(
            f"SPARK_GATE_RULE must be {BREAK}, {PROFILE}, {DT_SPREAD}, {CONFIRMED} or a feature "
            f"name, or several joined by '+' (e.g. {BREAK}+{DT_SPREAD}), not {rule!r}"
        )
    if sum(p in CONFIRMED_RULES for p in parts) > 1:
        raise SettingsError(
            f"SPARK_GATE_RULE {rule!r}: at most one of {', '.join(CONFIRMED_RULES)}"
        )
    return parts


class DriftStage:
    def __init__(self, settings: DriftSettings, models: int = 0) -> None:
        """``models``: how many models the pipeline runs (0: as many as the first batch
        has)."""
        self.settings = settings
        self.watch = watched_features(settings.watch)
        index = FEATURE_NAMES.index
        detectors = [
            Detector(index(f), settings.window, settings.threshold, 250) for f in self.watch
        ]
        self.n_info = len(detectors)
        parts = rule_parts(settings.rule)
        within: list[int] = []
        self.rule_features = ""
        for part in parts:  # the confirmed group's members right after the informational ones
            if part in CONFIRMED_RULES:
                members, span = CONFIRMED_GROUPS[part]
                detectors += [Detector(index(f), w, t, c, group=0) for f, w, t, c in members]
                within = [span]
                self.rule_features = "&".join(m[0] for m in members)
        for part in parts:
            if part in FEATURE_NAMES:
                detectors.append(Detector(index(part), settings.window, settings.threshold, 250))
        self.detectors = DetectorSet(detectors, within)
        self.breaks = BreakSet(settings.breaks) if BREAK in parts else None
        self.profiles = None
        if PROFILE in parts:
            path = profile_path(settings.profile)
            if not path:
                raise SettingsError(
                    f"SPARK_GATE_RULE {settings.rule!r} has the {PROFILE} part but "
                    f"SPARK_DRIFT_PROFILE is {NO_PROFILE}: leave it unset for the shipped "
                    "kinds of market, or build one from earlier days with `spark drift profile`"
                )
            self.profiles = ProfileSet(Profile.load(path))
        self.gates: dict[str, Gate] = {}
        self.concept = AdwinSet(models)  # ADWIN per (symbol slot, model)
        self.calendar = Calendar.parse(settings.releases)  # SPARK_DRIFT_RELEASES

    def gate(self, symbol: str) -> Gate:
        gate = self.gates.get(symbol)
        if gate is None:
            s = self.settings
            gate = self.gates[symbol] = Gate(
                symbol,
                cooldown_labels=s.cooldown_labels,
                probation_labels=s.probation_labels,
                min_auc=s.min_auc,
            )
        return gate

    def grow(self, symbols: int) -> None:
        self.detectors.grow(symbols)
        self.concept.grow(symbols)
        if self.breaks is not None:
            self.breaks.grow(symbols)
        if self.profiles is not None:
            self.profiles.grow(symbols)

    def forget(self, slots: np.ndarray, names: list[str]) -> None:
        self.detectors.reset(slots)
        if self.breaks is not None:
            self.breaks.reset(slots)
        if self.profiles is not None:
            self.profiles.reset(slots)
        self.concept.reset(slots)
        for name in names:
            self.gates.pop(name, None)

    # --- alerts -----------------------------------------------------------------------------
    def _psi_record(self, symbol: str, ts: int, d: int, statistic: float) -> dict:
        cfg = self.detectors.detectors
        if d >= len(cfg):  # the confirmed group: reported with its head detector's settings
            head = cfg[self.n_info]
            detector, feature, severity = "psi_confirmed", self.rule_features, "warning"
        else:
            head = cfg[d]
            detector, feature = "psi", FEATURE_NAMES[head.feature]
            severity = "info" if d < self.n_info else "warning"
        return {
            "symbol": symbol,
            "model_id": None,
            "model_version": None,
            "detector": detector,
            "feature": feature,
            "statistic": float(statistic),
            "threshold": head.threshold,
            "window": head.window,
            "severity": severity,
            "ts": ts,
        }

    def _break_record(self, symbol: str, ts: int, kind: int, statistic: float) -> dict:
        b = self.settings.breaks
        return {
            "symbol": symbol,
            "model_id": None,
            "model_version": None,
            "detector": BREAK_KINDS[kind],
            "feature": "ret_bp",
            "statistic": float(statistic),
            "threshold": b.jump if kind == JUMP else b.frozen,
            "window": b.move_span if kind == JUMP else b.rate_span,
            "severity": "warning",
            "ts": ts,
        }

    def _profile_record(self, symbol: str, s: int, ts: int, kind: int, statistic: float) -> dict:
        hold, margin = self.profiles.config[s, 0], self.profiles.config[s, 2]  # its entry's
        return {
            "symbol": symbol,
            "model_id": None,
            "model_version": None,
            "detector": PROFILE_KINDS[kind],
            "feature": PROFILE_FEATURES[kind],
            "statistic": float(statistic),
            # the limit the residual went beyond (+ or - log margin as the side is)
            "threshold": float(self.profiles.limits[s, kind])
            + (1.0 if kind < 2 else -1.0) * float(np.log(margin)),
            "window": int(hold),
            "severity": "warning",
            "ts": ts,
        }

    def step(self, *, symbols, slot, ts, x, valid, events, champion, models, reset=None) -> tuple:
        """Alerts and gates over one batch.

        ``symbols``: slot -> name; ``events``: label events (tick, label, each model's
        prob_up); ``champion``: index of the champion model per tick; ``models``:
        (model_id, version) per model. Returns (alerts, gate records, allowed per tick);
        alerts and records are lists of (tick, record).
        """
        alerts: dict[int, list[dict]] = defaultdict(list)
        reset = np.zeros(len(slot), np.bool_) if reset is None else reset
        tick, det, stat = self.detectors.step(slot, x, valid, reset)
        for i, d, value in zip(tick.tolist(), det.tolist(), stat.tolist(), strict=True):
            alerts[i].append(self._psi_record(symbols[slot[i]], int(ts[i]), d, value))
        if self.breaks is not None:
            tick, kind, stat, _ = self.breaks.step(slot, x[:, RET], valid, reset)
            for i, k, value in zip(tick.tolist(), kind.tolist(), stat.tolist(), strict=True):
                alerts[i].append(self._break_record(symbols[slot[i]], int(ts[i]), k, value))
        if self.profiles is not None:
            tick, kind, stat, _ = self.profiles.step(
                symbols, slot, ts, x[:, SPREAD], x[:, RET], valid, reset
            )
            for i, k, value in zip(tick.tolist(), kind.tolist(), stat.tolist(), strict=True):
                s = int(slot[i])
                alerts[i].append(self._profile_record(symbols[s], s, int(ts[i]), k, value))
        ev_tick, ev_y, ev_p = events
        # each tick's labels, a range of events (they come in tick order)
        labels_at: dict[int, range] = {}
        if len(ev_tick):
            starts = np.flatnonzero(np.r_[True, ev_tick[1:] != ev_tick[:-1]]).tolist()
            for lo, hi in zip(starts, [*starts[1:], len(ev_tick)], strict=True):
                labels_at[int(ev_tick[lo])] = range(lo, hi)
        self._concept(symbols, slot, ts, ev_tick, ev_y, ev_p, champion, models, reset, alerts)
        self._mute_releases(symbols, slot, ts, alerts)
        allowed = np.ones(len(slot), np.bool_)
        records: list[tuple[int, dict]] = []
        warned = {
            slot[i] for i, found in alerts.items() if any(a["severity"] == "warning" for a in found)
        }
        watched = [
            s
            for s in np.unique(slot[valid]).tolist()
            if s in warned or not self.gate(symbols[s]).allows_signals
        ]
        # per watched symbol: (tick, gate state from that tick on, record index | RESTART)
        self._changes: dict[str, list[tuple[int, str, int | None]]] = {}
        self._suppressed_before = {}
        for s in watched:
            symbol = symbols[s]
            gate = self.gate(symbol)
            self._suppressed_before[symbol] = gate.suppressed
            ticks = np.flatnonzero((slot == s) & valid)
            changes = self._changes[symbol] = [(int(ticks[0]), gate.state, None)]
            for i in sorted({i for i in ticks.tolist() if i in alerts or i in labels_at}):
                before, moves = gate.state, gate.moves
                gating = [a for a in alerts.get(i, ()) if a["severity"] == "warning"]
                for alert in gating:
                    gate.on_alert(alert["detector"], int(ts[i]))
                champ = champion[i]
                for e in labels_at.get(i, ()):
                    gate.on_label(float(ev_p[e, champ]), int(ev_y[e]), int(ts[i]))
                if gate.moves != moves and gate.state != CLOSED:
                    changes.append((i, gate.state, _RESTART))
                if gate.state != before or gating:
                    changes.append((i, gate.state, len(records)))
                    records.append((i, gate.to_record()))
            starts = [c[0] for c in changes]
            opened = np.array([c[1] == OPEN for c in changes])
            allowed[ticks] = opened[np.searchsorted(starts, ticks, side="right") - 1]
        ordered = [(i, a) for i in sorted(alerts) for a in alerts[i]]
        return ordered, records, allowed

    def _mute_releases(self, symbols, slot, ts, alerts) -> None:
        """The gate rule's warnings inside a scheduled release window (``SPARK_DRIFT_RELEASES``,
        ``spark.drift.releases``), or inside the FX day's rollover for a symbol whose kind of
        market has one (``ProfileSet.rollover``), become info: the spread and the moves are
        expected to change there. The break part's are not muted: no release or rollover
        moves the mid by a thousand of its usual moves in one tick (an instrument switch
        does), nor freezes a feed (session 36; until then a jump was muted too)."""
        if self.calendar.empty or not alerts:
            return
        at = sorted(i for i, found in alerts.items() if any(a["severity"] == "warning"
                                                             for a in found))  # fmt: skip
        if not at:
            return
        muted = inside(ts[at], self.calendar.windows(ts[at]))
        if self.calendar.rollover and self.profiles is not None:
            for k, i in enumerate(at):
                minutes = self.profiles.rollover(symbols[slot[i]])
                if minutes and not muted[k]:
                    spans = rollovers(ts[i : i + 1], ROLLOVER_BEFORE_S, minutes * 60)
                    muted[k] = inside(ts[i : i + 1], spans)[0]
        for i in np.asarray(at)[muted].tolist():
            for a in alerts[i]:
                if (
                    a["severity"] == "warning"
                    and a["detector"] not in BREAK_KINDS
                    and a["model_id"] is None
                ):
                    a["severity"] = "info"

    def _concept(self, symbols, slot, ts, ev_tick, ev_y, ev_p, champion, models, reset, alerts):
        """Each label's |prob_up − label| into its symbol's ADWIN of each model, compiled
        (``spark.drift.adwin``); a symbol back after a silence (``reset``) starts fresh
        detectors first. A detection's alert goes after the tick's other alerts: the
        champion's first, then each challenger's, in label order."""
        if self.concept.models != len(models):
            if self.concept.models:
                raise ValueError(f"{len(models)} models, not {self.concept.models}")
            self.concept = AdwinSet(len(models), self.detectors.symbols)
        errors = np.ascontiguousarray(np.abs(ev_p - ev_y[:, None]), np.float64)
        ev_slot = slot[ev_tick].astype(np.int64)
        found: list[tuple] = []
        lo = 0
        for r in np.flatnonzero(reset).tolist():  # labels before a fresh start, then the start
            hi = int(np.searchsorted(ev_tick, r, side="left"))
            found.append(self.concept.step(ev_slot, errors, lo, hi))
            self.concept.reset(slot[r])
            lo = hi
        found.append(self.concept.step(ev_slot, errors, lo, len(ev_tick)))
        detections = []
        for events, model, values in found:
            for e, m, (estimation, width) in zip(
                events.tolist(), model.tolist(), values.tolist(), strict=True
            ):
                i = int(ev_tick[e])
                champ = int(champion[i])
                detections.append((i, m != champ, m - (m > champ), e, m, estimation, width))
        concept_gates = self.settings.concept_gates
        for i, _, _, _, m, estimation, width in sorted(detections):
            model_id, version = models[m]
            gating = m == int(champion[i]) and concept_gates
            alerts[i].append(
                {
                    "symbol": symbols[slot[i]],
                    "model_id": model_id,
                    "model_version": version,
                    "detector": "adwin",
                    "feature": None,
                    "statistic": float(estimation),
                    "threshold": ADWIN_DELTA,
                    "window": int(width),
                    "severity": "warning" if gating else "info",
                    "ts": int(ts[i]),
                }
            )

    def count_suppressed(
        self, symbols, slot, suppressed: np.ndarray, records, counts: dict | None = None
    ) -> dict[str, int]:
        """Count the signals the gates held back (``suppressed``: their ticks) in their gates
        and in this batch's GateState records, which count the suppressions before them since
        their gate last opened or went on probation; the counts per gate state. ``counts``:
        a second policy's own counts per symbol (a research pipeline's variant), kept there
        instead of in the gates."""
        by_state: dict[str, int] = defaultdict(int)
        held: dict[str, list[int]] = defaultdict(list)
        for i in suppressed.tolist():
            held[symbols[slot[i]]].append(i)
        for symbol, changes in self._changes.items():
            # a variant's gate not yet watched is open, and opening starts its count at 0
            count = self._suppressed_before[symbol] if counts is None else counts.get(symbol, 0)
            events = sorted(
                [(i, 0, state, r) for i, state, r in changes]
                + [(i, 1, None, None) for i in held.get(symbol, ())],
                key=lambda e: e[:2],  # at one tick: the gate first, then the policy
            )
            state = changes[0][1]
            for _i, kind, new_state, r in events:
                if kind == 1:
                    count += 1
                    by_state[state] += 1
                    continue
                state = new_state
                if r == _RESTART:
                    count = 0
                elif r is not None:
                    records[r][1]["suppressed"] = count
            if counts is None:
                self.gate(symbol).suppressed = count
            else:
                counts[symbol] = count
        return dict(by_state)

    # --- state ---------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray], bytes]:
        """(gates, detector arrays, b""): the last part held the ADWIN detectors pickled
        before session 16; they are arrays now."""
        gates = {
            symbol: {**vars(g), "_probation": [list(pair) for pair in g._probation]}
            for symbol, g in self.gates.items()
        }
        arrays = {f"drift.{k}": a for k, a in enumerate(self.detectors.state)}
        if self.breaks is not None:
            arrays["drift.breaks"] = self.breaks.state
        if self.profiles is not None:
            arrays["drift.profiles"] = self.profiles.state
            arrays["drift.profiles_ring"] = self.profiles.ring
        arrays.update(self.concept.arrays())
        return {"gates": gates}, arrays, b""

    def restore(
        self,
        meta: dict,
        arrays: dict[str, np.ndarray],
        concept: bytes,
        symbols: list[str] | None = None,
        model_ids: list[str] | None = None,
    ) -> None:
        """A checkpoint's state. One written before session 16 pickled river's ADWIN
        detectors by (symbol, model id) in ``concept`` (loaded only from a checkpoint whose
        signature was checked): they are read into arrays, by ``symbols`` (slot -> name)
        and ``model_ids`` (model -> id)."""
        self.detectors.state = tuple(arrays[f"drift.{k}"] for k in range(len(self.detectors.state)))
        if self.breaks is not None:
            self.breaks.restore(arrays.get("drift.breaks"), self.detectors.symbols)
        if self.profiles is not None:
            self.profiles.restore(
                arrays.get("drift.profiles"),
                self.detectors.symbols,
                arrays.get("drift.profiles_ring"),
            )
        self.gates = {}
        for symbol, fields_ in meta["gates"].items():
            gate = Gate(symbol)
            for name, value in fields_.items():
                setattr(gate, name, value)
            gate._probation = [tuple(pair) for pair in fields_["_probation"]]
            self.gates[symbol] = gate
        if self.concept.load(arrays):
            return
        self.concept = AdwinSet(len(model_ids or ()), self.detectors.symbols)
        if not concept:
            return
        old = pickle.loads(concept)  # noqa: S301 - a signed checkpoint's own bytes
        slot_of = {name: k for k, name in enumerate(symbols or ()) if name}
        for (symbol, model_id), detector in old.items():
            if symbol in slot_of and model_id in model_ids:
                state = adwin.from_river(detector._helper.__getstate__(), detector.drift_detected)
                self.concept.put(slot_of[symbol], model_ids.index(model_id), state)

    def command(self, symbol: str, action: str, reason: str, ts: int) -> dict:
        """An operator's open or close; the GateState record to publish."""
        return self.gate(symbol).operator(action, reason, ts).to_record()

    def states(self) -> dict[str, int]:
        counts = {OPEN: 0, CLOSED: 0, "probation": 0}
        for gate in self.gates.values():
            counts[gate.state] += 1
        return counts
