"""The signal policy: when a prediction becomes a trading signal.

Policy (documented in docs/streams-ml.md): with band θ (default 0.1), the
desired side is BUY when prob_up ≥ 0.5 + θ, SELL when prob_up ≤ 0.5 − θ, else
FLAT. A signal is emitted only when a symbol's desired side differs from the
last side emitted for it (initially FLAT), so the execution system sees
changes of intent, not a stream of repeats. Strength = |prob_up − 0.5| × 2.

>>> policy = SignalPolicy(band=0.1)
>>> policy.decide("EURUSD", 0.55), policy.decide("EURUSD", 0.7)[0]
(None, 'BUY')
>>> policy.decide("EURUSD", 0.72), policy.decide("EURUSD", 0.5)[0]
(None, 'FLAT')
"""

from __future__ import annotations

from numba import njit


class SignalPolicy:
    def __init__(self, band: float = 0.1) -> None:
        if not 0 < band < 0.5:
            raise ValueError("the band must be between 0 and 0.5")
        self.band = band
        self.last_side: dict[str, str] = {}

    def decide(
        self, symbol: str, prob_up: float, commit: bool = True
    ) -> tuple[str, float, str] | None:
        """(side, strength, reason) when the symbol's intent changes, else None.

        With ``commit=False`` the side is not remembered (a signal the gate suppresses
        never reached the execution system, so it must not count as sent).
        """
        if prob_up >= 0.5 + self.band:
            side, rule = "BUY", f"prob_up {prob_up:.3f} >= {0.5 + self.band:.2f}"
        elif prob_up <= 0.5 - self.band:
            side, rule = "SELL", f"prob_up {prob_up:.3f} <= {0.5 - self.band:.2f}"
        else:
            side, rule = (
                "FLAT",
                f"prob_up {prob_up:.3f} inside {0.5 - self.band:.2f}..{0.5 + self.band:.2f}",
            )
        if side == self.last_side.get(symbol, "FLAT"):
            return None
        if commit:
            self.last_side[symbol] = side
        return side, min(abs(prob_up - 0.5) * 2, 1.0), rule


SIDES = ("FLAT", "BUY", "SELL")  # side codes of ``decide`` (0 = FLAT, a symbol's start)
NO_DECISION, SIGNAL, SUPPRESSED = 0, 1, 2


@njit(cache=True)
def decide(slot, valid, reset, prob_up, allowed, band, last_side, decision, side) -> None:
    """``SignalPolicy.decide`` over a batch: for each valid tick the desired side (codes of
    SIDES); where it differs from the symbol's last side sent, ``SIGNAL`` if the tick is
    ``allowed`` (and the side is remembered) else ``SUPPRESSED`` (not remembered). A symbol
    that starts fresh (``reset``) starts FLAT."""
    up, down = 0.5 + band, 0.5 - band
    for i in range(slot.shape[0]):
        s = slot[i]
        if reset[i]:
            last_side[s] = 0
        if not valid[i]:
            continue
        p = prob_up[i]
        want = 1 if p >= up else (2 if p <= down else 0)
        if want == last_side[s]:
            continue
        side[i] = want
        if allowed[i]:
            decision[i] = SIGNAL
            last_side[s] = want
        else:
            decision[i] = SUPPRESSED
