"""The champion fraud classifier: scaled logistic regression with negative downsampling.

Fraud is rare (around 1-2 % of transactions), so most labels say "legitimate". Learning from
every legitimate event wastes time and drowns the few positives in gradient noise. We keep every
positive and a deterministic share ``negative_rate`` of the negatives (chosen by a hash of the
event_id, so every replica of the model drops the same ones), and correct the predicted
probability for the sampling afterwards (He et al., "Practical lessons from predicting clicks on
ads at Facebook", 2014):

    p = q / (q + (1 - q) / negative_rate)

where ``q`` is the probability the model learned on the downsampled stream. The ranking is
unchanged by the correction; the probability is calibrated back to the true base rate.

Soundness: the model sees ``online_models.bounds.bounded(x)`` (finite, at most 7e8 in magnitude),
and the weights see standardised values clipped to ``SCALED_LIMIT`` standard deviations, so one
step moves a weight by at most ``learning_rate * SCALED_LIMIT`` and, with the L2 penalty, no weight
can leave [-SCALED_LIMIT / l2, SCALED_LIMIT / l2]. Should an update still produce a non-finite
parameter, it is rolled back and counted in ``n_refused``.
"""

from __future__ import annotations

import hashlib

from river import base, linear_model, optim, preprocessing

from online_models.bounds import bounded, finite

SCALED_LIMIT = 10.0  # standard deviations: a value further out tells the weights nothing more


def keep_negative(event_id: str, rate: float) -> bool:
    """Deterministic Bernoulli(rate) draw from the event_id.

    >>> sum(keep_negative(f"e{i}", 0.1) for i in range(10_000))
    1046
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


class SamplesByEventId:
    """Capability: ``learn_one(x, y, event_id=...)`` keeps or drops a negative by its event id, so
    every replica of the model keeps the same examples. Wrappers (``online_models.champion``) give
    the id to the models that declare this, and ``learn_one(x, y)`` to any other River classifier."""


class FraudClassifier(base.Classifier, SamplesByEventId):
    """Standard scaler + logistic regression, learning from downsampled negatives.

    Parameters
    ----------
    negative_rate
        Share of negative labels learned from (positives are always learned from).
    learning_rate
        SGD step of the logistic regression.
    l2
        L2 regularisation of the weights.

    Examples
    --------
    >>> model = FraudClassifier(negative_rate=0.5)
    >>> for i in range(200):
    ...     model.learn_one({"amount": 1000.0 if i % 10 == 0 else 20.0}, i % 10 == 0, event_id=f"e{i}")
    >>> round(model.predict_proba_one({"amount": 1000.0})[True], 2)
    0.69
    >>> round(model.predict_proba_one({"amount": 20.0})[True], 2)
    0.1
    >>> model.n_positives, model.n_negatives
    (20, 84)
    """

    def __init__(self, negative_rate: float = 0.5, learning_rate: float = 0.05, l2: float = 1e-2) -> None:
        self.negative_rate = negative_rate
        self.learning_rate = learning_rate
        self.l2 = l2
        self.scaler = preprocessing.StandardScaler()
        self.lr = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2, intercept_lr=0.05)
        self.n_positives = 0
        self.n_negatives = 0
        self.n_refused = 0

    def learn_one(self, x: dict, y: bool, event_id: str | None = None) -> None:  # type: ignore[override]
        if not y and event_id is not None and not keep_negative(event_id, self.negative_rate):
            return
        seen = bounded(x)
        before = self._parameters(seen)
        self.scaler.learn_one(seen)
        self.lr.learn_one(self._scaled(seen), bool(y))
        after = self._parameters(seen)
        if not (finite(v for values in after[0].values() for v in values) and finite(after[1:])):
            self._restore(before)
            self.n_refused += 1
            return
        if y:
            self.n_positives += 1
        else:
            self.n_negatives += 1

    def predict_proba_one(self, x: dict) -> dict[bool, float]:
        q = self.lr.predict_proba_one(self._scaled(bounded(x)))[True]
        p = q / (q + (1.0 - q) / self.negative_rate)
        return {False: 1.0 - p, True: p}

    def contributions(self, x: dict) -> dict[str, float]:
        """Each feature's additive share of the log-odds (weight times scaled value)."""
        scaled = self._scaled(bounded(x))
        weights = self.lr._weights
        return {name: weights.get(name, 0.0) * value for name, value in scaled.items()}

    def _scaled(self, seen: dict) -> dict[str, float]:
        return {name: min(max(value, -SCALED_LIMIT), SCALED_LIMIT)
                for name, value in self.scaler.transform_one(seen).items()}

    def _parameters(self, seen: dict) -> tuple:
        """What one update on ``seen`` can change (River 0.26.1, pinned: the scaler's statistics and
        the weights of those features, the intercept, the optimiser's step count); None = absent."""
        scaler, weights = self.scaler, self.lr._weights
        per_feature = {name: (scaler.counts.get(name), scaler.means.get(name), scaler.vars.get(name),
                              weights.get(name)) for name in seen}
        return per_feature, self.lr.intercept, self.lr.optimizer.n_iterations

    def _restore(self, saved: tuple) -> None:
        per_feature, self.lr.intercept, self.lr.optimizer.n_iterations = saved
        tables = (self.scaler.counts, self.scaler.means, self.scaler.vars, self.lr._weights)
        for name, values in per_feature.items():
            for table, value in zip(tables, values, strict=True):
                if value is None:
                    table.pop(name, None)
                else:
                    table[name] = value

    @property
    def n_learned(self) -> int:
        return self.n_positives + self.n_negatives

    @property
    def _multiclass(self) -> bool:
        return False
