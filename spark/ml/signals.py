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
