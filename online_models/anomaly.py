"""Anomaly score for fraud patterns nobody has labelled yet: Half-Space Trees on behaviour features.

Half-Space Trees expects features in [0, 1], so a min-max scaler runs in front. The raw tree score
has no fixed scale; we report its rank against a running 50 % / 99 % quantile band instead, which
reads as "how unusual is this event compared with recent traffic" (0 = typical, 1 = top 1 %).

What it sees is ``online_models.bounds.bounded``: finite, so the scaler's range and the trees'
masses stay finite. One sender cannot fill the trees' window (the last ``window_size`` learned
events) with its own behaviour: an event whose user already made ``user_hourly_cap`` transactions
in the hour before it (``user_count_1h``, from that user's own state) is scored but not learned,
so a flood of one user adds at most ``user_hourly_cap`` events per hour of event time. A raw score
that is not finite teaches neither the trees nor the quantiles (``n_refused``).
"""

from __future__ import annotations

import math

from river import anomaly, base, preprocessing, stats

from online_models.bounds import bounded

# Behaviour features the anomaly model looks at; ids and pass-through columns are left out.
ANOMALY_FEATURES = (
    "log_amount", "user_amount_z", "user_count_1m", "user_count_1h", "user_sum_1h",
    "user_distinct_merchants_24h", "user_distinct_countries_24h", "user_distinct_devices_24h",
    "new_device", "new_country", "first_time_merchant", "log_secs_since_last",
)


def behaviour(x: dict[str, float]) -> dict[str, float]:
    """The subset of features the anomaly model sees (secs_since_last on a log scale).

    >>> behaviour({"log_amount": 3.0, "secs_since_last": 99.0, "hour_sin": 0.5})
    {'log_amount': 3.0, 'log_secs_since_last': 4.6051...}
    """
    out = {name: x[name] for name in ANOMALY_FEATURES if name in x}
    if "secs_since_last" in x:
        out["log_secs_since_last"] = math.log1p(max(x["secs_since_last"], 0.0))
    return bounded(out)


class AnomalyScorer(base.AnomalyDetector):
    """Min-max scaled Half-Space Trees, its score ranked against recent scores.

    Parameters
    ----------
    n_trees, height, window_size
        Half-Space Trees parameters (River's defaults are 10, 8, 250).
    seed
        Random seed of the trees.
    user_hourly_cap
        Events of one user learned per hour of event time, at most (see the module docstring).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> scorer = AnomalyScorer(seed=42)
    >>> for _ in range(2000):
    ...     x = {"log_amount": rng.gauss(3, 0.3), "user_count_1m": 0.0, "new_country": 0.0}
    ...     scorer.learn_one(x)
    >>> typical = scorer.score_one({"log_amount": 3.0, "user_count_1m": 0.0, "new_country": 0.0})
    >>> odd = scorer.score_one({"log_amount": 7.5, "user_count_1m": 9.0, "new_country": 1.0})
    >>> typical < 0.5 < odd
    True
    """

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int = 42,
                 user_hourly_cap: int = 10) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.user_hourly_cap = user_hourly_cap
        self.scaler = preprocessing.MinMaxScaler()
        self.trees = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
        self.median = stats.Quantile(0.5)
        self.top = stats.Quantile(0.99)
        self.n_seen = 0  # events learned
        self.n_capped = 0  # events not learned: their user was over the hourly cap
        self.n_refused = 0  # events not learned: a non-finite raw score

    def learn_one(self, x: dict) -> None:
        if x.get("user_count_1h", 0.0) >= self.user_hourly_cap:
            self.n_capped += 1
            return
        b = behaviour(x)
        if not b:  # nothing it looks at (the trees cannot be built from no feature)
            return
        self.scaler.learn_one(b)  # minima and maxima of finite values: finite
        scaled = self.scaler.transform_one(b)
        raw = self.trees.score_one(scaled)
        if not math.isfinite(raw):  # then neither the trees nor the quantiles learn it
            self.n_refused += 1
            return
        self.n_seen += 1
        self.median.update(raw)
        self.top.update(raw)
        self.trees.learn_one(scaled)

    def raw_score(self, x: dict) -> float:
        b = behaviour(x)
        return self.trees.score_one(self.scaler.transform_one(b))

    def score_one(self, x: dict) -> float:
        raw = self.raw_score(x)
        low, high = self.median.get(), self.top.get()
        if low is None or high is None or high <= low:
            return 0.0
        return min(max((raw - low) / (high - low), 0.0), 1.0)
