"""What the models see is bounded, so that whatever they learn, parameters and scores stay finite.

A sender controls the pass-through ``features`` and, through amounts and timing, the computed
ones. A value near 1.7e308 overflows to inf as soon as it is squared or subtracted from its
opposite, and one inf turns a running mean, a variance or a weight into NaN for good (every later
score is NaN). So every model input goes through ``bounded``:

- a non-finite value is dropped: the model sees that feature as missing;
- a magnitude beyond ``SOFT_LIMIT`` is compressed logarithmically, ``L * (1 + ln(|v| / L))``:
  the identity inside [-L, L] (ordinary traffic sees no change), continuous and monotone beyond,
  and at most ``HARD_LIMIT`` (7.0e8) for the largest double.

>>> bounded({"amount": 12.5, "big": 1e7, "huge": -1.7e308, "nan": float("nan")})
{'amount': 12.5, 'big': 3302585.09..., 'huge': -696...}
>>> squash(1e6), squash(-2e6) < -1e6
(1000000.0, True)
>>> squash(1.7976931348623157e308) <= HARD_LIMIT
True

Bounded inputs keep sums of squares finite, but a model may still be driven somewhere it should
not go; ``finite`` is the check each model runs on what one update changed before keeping it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SOFT_LIMIT = 1e6
HARD_LIMIT = 7.0e8  # squash(largest double) = 1e6 * (1 + ln(1.8e308 / 1e6)) = 6.97e8


def squash(value: float) -> float:
    """``value`` itself within [-SOFT_LIMIT, SOFT_LIMIT]; logarithmically compressed beyond."""
    magnitude = abs(value)
    if magnitude <= SOFT_LIMIT:
        return value
    return math.copysign(SOFT_LIMIT * (1.0 + math.log(magnitude / SOFT_LIMIT)), value)


def bounded(x: Mapping[str, float]) -> dict[str, float]:
    """The features a model sees: finite values only, each within HARD_LIMIT."""
    # The usual case costs one pass: when the magnitudes sum to at most SOFT_LIMIT, every value is
    # finite (a NaN or an inf makes the sum fail the test) and squash is the identity on each.
    if sum(map(abs, x.values())) <= SOFT_LIMIT:
        return dict(x)
    return {name: squash(value) for name, value in x.items() if math.isfinite(value)}


def finite(values: Iterable[float | None]) -> bool:
    """Whether every value (None for "absent") is a finite number.

    >>> finite([1.0, None, -3e300]), finite([0.0, float("inf")])
    (True, False)
    """
    return all(v is None or math.isfinite(v) for v in values)
