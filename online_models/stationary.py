"""What the drift detectors watch: each feature in a form that stays put while nothing changes.

Raw feature levels move for reasons that are not drift, and a detector on them cries wolf:

- daily rhythm: the hour of day goes round by construction, and what is counted over the last
  hour or since the user's previous event (``*_1h``, ``secs_since_last``) follows the rhythm of
  traffic (a quiet night, a busy afternoon); these are not watched (their 24-hour counterparts
  are, and a change in behaviour shows there too);
- cumulative: ``user_history_count`` and ``merchant_tx_count`` only grow while state fills, so
  they are watched as a rate: divided by the event time this view has been watching (days);
- windowed: a feature over a window (``_24h``) means nothing until its window has filled, so
  nothing is watched before ``warmup_s`` of event time (by default a day, the longest window).

Everything else (amounts, z-scores, first-time flags, pass-through ``f_*`` columns) is watched at
its level.

>>> view = StationaryView(warmup_s=3600.0)
>>> view({"amount": 10.0, "user_history_count": 3.0}, 0.0) is None  # warming up
True
>>> view({"amount": 12.0, "user_history_count": 48.0, "hour_sin": 0.5, "user_count_1h": 1.0}, 2 * 86400.0)
{'amount': 12.0, 'user_history_count': 24.0}
>>> view.warmup_of("user_sum_24h"), view.warmup_of("amount")
(86400.0, 3600.0)
"""

from __future__ import annotations

DAY = 86400.0
DAILY_RHYTHM = frozenset({"hour_of_day", "hour_sin", "hour_cos", "secs_since_last", "user_count_1h", "user_sum_1h",
                          "merchant_count_1h"})
CUMULATIVE = frozenset({"user_history_count", "merchant_tx_count"})


class StationaryView:
    """Maps a decision's features to the values the detectors watch; None while warming up.

    Parameters
    ----------
    warmup_s
        Event time after the first event seen before anything is watched (a day by default: the
        longest feature window, and long enough for a cumulative count to read as a rate).
    """

    def __init__(self, warmup_s: float = DAY) -> None:
        self.warmup_s = warmup_s
        self.first_ts: float | None = None

    @staticmethod
    def watched(names) -> list[str]:
        return sorted(set(names) - DAILY_RHYTHM)

    def warmup_of(self, name: str) -> float:
        """Event time before ``name`` is watched: a day for 24-hour and cumulative counts, at least ``warmup_s``."""
        return max(DAY if name in CUMULATIVE or name.endswith("_24h") else 0.0, self.warmup_s)

    def __call__(self, x: dict[str, float], ts: float) -> dict[str, float] | None:
        if self.first_ts is None:
            self.first_ts = ts
        elapsed = ts - self.first_ts
        if elapsed < self.warmup_s:
            return None
        out = {}
        for name, value in x.items():
            if name in DAILY_RHYTHM or elapsed < self.warmup_of(name):
                continue
            out[name] = value / (elapsed / DAY) if name in CUMULATIVE else value
        return out
