"""Champion / challenger: the champion serves; a challenger, started when the drift monitor sees
the champion's error or the label rate move, learns in shadow on the same labels; it is promoted
when its rolling accuracy beats the champion's by ``margin`` over ``window`` labelled events.

Every label is first scored by both (prequentially) and only then learned, so the comparison is
on the same events, before either has seen them.

The wrapper is itself a River classifier (``learn_one(x, y)``, ``predict_proba_one(x)``), so
River's contract checks, clone and metrics apply to it as to the models it wraps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from river import base

from online_models.drift import DriftMonitor
from online_models.fraud_model import FraudClassifier, SamplesByEventId


@dataclass
class Contender:
    name: str
    model: base.Classifier
    hits: deque = field(default_factory=deque)

    def proba(self, x: dict) -> float:
        return self.model.predict_proba_one(x).get(True, 0.0)

    def accuracy(self) -> float:
        return sum(self.hits) / len(self.hits) if self.hits else 0.0

    def learn(self, x: dict, y: bool, event_id: str | None) -> None:
        # An explicit capability, not a guess from the signature: only a model that samples by
        # event id is given one; any other River classifier learns (x, y).
        if isinstance(self.model, SamplesByEventId):
            self.model.learn_one(x, y, event_id=event_id)
        else:
            self.model.learn_one(x, y)


class ChampionChallenger(base.Wrapper, base.Classifier):
    """
    Parameters
    ----------
    champion
        The classifier serving (after a promotion, the promoted one).
    challenger_factory
        ``() -> classifier``: builds the challenger when a drift is signalled (by default a fresh
        clone of the champion: same hyper-parameters, nothing learned).
    window, margin
        Promotion: after ``window`` shadow labels, when the challenger's accuracy over the last
        ``window`` labels beats the champion's by ``margin``.
    monitor
        The drift monitor whose error and label-rate signals start a challenger (a private one,
        watching no features, when None).
    champion_name, challenger_name
        Names in the model events; a challenger is named ``{challenger_name}-{generation}``.

    Examples
    --------
    >>> cc = ChampionChallenger(FraudClassifier(), window=50)
    >>> for i in range(200):
    ...     signals = cc.learn_one({"amount": 900.0 if i % 10 == 0 else 20.0}, i % 10 == 0, event_id=f"e{i}")
    >>> cc.predict_proba_one({"amount": 900.0})[True] > cc.predict_proba_one({"amount": 20.0})[True]
    True
    >>> cc.serving.name, cc.shadow, cc.generation
    ('classifier', None, 1)
    """

    def __init__(self, champion: base.Classifier, challenger_factory: Callable[[], base.Classifier] | None = None,
                 *, window: int = 500, margin: float = 0.01, monitor: DriftMonitor | None = None,
                 champion_name: str = "classifier", challenger_name: str = "challenger") -> None:
        self.champion = champion
        self.challenger_factory = challenger_factory
        self.window = window
        self.margin = margin
        self.monitor = monitor
        self.champion_name = champion_name
        self.challenger_name = challenger_name
        self.serving = Contender(champion_name, champion)
        self.shadow: Contender | None = None
        self.generation = 1
        self.events: list[dict] = []  # started / promoted, for logs and the model-events topic
        self._own_monitor = DriftMonitor(champion_name, features=()) if monitor is None else None

    @classmethod
    def _unit_test_params(cls):
        yield {"champion": FraudClassifier()}

    @property
    def _wrapped_model(self) -> base.Classifier:
        return self.serving.model

    def __setstate__(self, state: dict) -> None:
        # Checkpoints written before the contenders moved out of the parameters held them under
        # ``champion`` / ``challenger``: read them into today's layout.
        if isinstance(state.get("champion"), Contender):
            state["serving"], state["shadow"] = state["champion"], state.pop("challenger", None)
            state["champion"] = state["serving"].model
            state.setdefault("champion_name", state["serving"].name)
            state.setdefault("_own_monitor", None)
        self.__dict__.update(state)

    @property
    def drift_monitor(self) -> DriftMonitor:
        return self.monitor if self.monitor is not None else self._own_monitor

    def predict_proba_one(self, x: dict, **kwargs) -> dict[bool, float]:
        p = self.serving.proba(x)
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict, y: bool, event_id: int | str | None = None, ts: float = 0.0,
                  measure: bool = True, **kwargs) -> list:
        """Score ``x`` with both, then learn it; returns the drift signals it raised. ``measure=False``
        (a label assumed, not observed) teaches both models but neither the comparison nor the monitor.
        ``event_id`` goes to the models that sample by it (and names the event in model events)."""
        y = bool(y)
        key = None if event_id is None else str(event_id)
        contenders = [c for c in (self.serving, self.shadow) if c is not None]
        if not measure:
            for contender in contenders:
                contender.learn(x, y, key)
            return []
        for contender in contenders:
            contender.hits.append((contender.proba(x) >= 0.5) == y)
            if len(contender.hits) > self.window:
                contender.hits.popleft()
        signals = self.drift_monitor.observe_label(y, self.serving.proba(x), ts, str(self.generation))
        if signals and self.shadow is None:
            challenger = self.challenger_factory() if self.challenger_factory else self.champion.clone()
            self.shadow = Contender(f"{self.challenger_name}-{self.generation + 1}", challenger)
            self.events.append({"event": "challenger_started", "at": event_id, "model": self.shadow.name,
                                "because": f"{signals[0].target} drift ({signals[0].detector})"})
        self.serving.learn(x, y, key)
        if self.shadow is not None:
            self.shadow.learn(x, y, key)
            if len(self.shadow.hits) >= self.window and \
                    self.shadow.accuracy() >= self.serving.accuracy() + self.margin:
                self.promote(event_id)
        return signals

    def promote(self, event_id: int | str | None = None) -> None:
        if self.shadow is None:
            return
        self.events.append({"event": "promoted", "at": event_id, "model": self.shadow.name,
                            "replaces": self.serving.name, "accuracy": round(self.shadow.accuracy(), 4),
                            "champion_accuracy": round(self.serving.accuracy(), 4)})
        self.serving, self.shadow = self.shadow, None
        self.champion = self.serving.model
        self.generation += 1
