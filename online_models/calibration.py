"""Online Platt scaling: the blended score made into a probability, learned from labels.

The engine's blend (classifier, anomaly rank, rule bumps) ranks well but is not a probability,
while the decision thresholds (0.5 review, 0.85 decline) read it as one. This layer maps it as

    p = sigmoid(a * logit(s) + b)

and learns ``a`` and ``b`` by stochastic gradient descent on the log loss of every label, the
score the event was decided with (before calibration) as input. It starts as the identity
(a = 1, b = 0), so before any label nothing changes; it is strictly increasing (a is kept
positive), so the ranking -- and every ROCAUC -- is the blend's own.

>>> platt = OnlinePlatt()
>>> platt.predict(0.3), platt.predict(0.0)
(0.3, 0.0)
>>> for i in range(3000):
...     platt.learn(0.6, i % 10 == 0)  # events scored 0.6 turn out fraud one time in ten
>>> round(platt.predict(0.6), 2), platt.predict(0.9) > platt.predict(0.6) > platt.predict(0.2)
(0.1, True)
"""

from __future__ import annotations

import math

EDGE = 1e-4  # scores are clipped to [EDGE, 1 - EDGE] before the logit
MIN_SLOPE = 0.05


def _logit(s: float) -> float:
    s = min(max(s, EDGE), 1.0 - EDGE)
    return math.log(s / (1.0 - s))


def calibrated(score: float, params: tuple[float, float] | None) -> float:
    """``score`` through the calibration ``params`` (a, b); None is the identity.

    >>> calibrated(0.0, None), round(calibrated(0.5, (2.0, -1.0)), 4)
    (0.0, 0.2689)
    """
    if params is None:
        return score
    t = params[0] * _logit(score) + params[1]
    return 1.0 / (1.0 + math.exp(-min(max(t, -30.0), 30.0)))


class OnlinePlatt:
    """Parameters: ``learning_rate`` of the SGD steps on (a, b)."""

    def __init__(self, learning_rate: float = 0.01) -> None:
        self.learning_rate = learning_rate
        self.a = 1.0
        self.b = 0.0
        self.n_learned = 0

    def predict(self, score: float) -> float:
        return calibrated(score, self.params())

    def params(self) -> tuple[float, float] | None:
        """(a, b), or None while nothing is learned (then it is exactly the identity)."""
        return (self.a, self.b) if self.n_learned else None

    def learn(self, score: float, y: bool) -> None:
        z = _logit(score)
        g = self.predict(score) - float(y)
        self.a = max(self.a - self.learning_rate * g * z, MIN_SLOPE)
        self.b -= self.learning_rate * g
        self.n_learned += 1
