"""Champion / challenger: the champion serves; a challenger, started when the drift monitor sees
the champion's error or the label rate move, learns in shadow on the same labels; it is promoted
when its rolling accuracy beats the champion's by ``margin`` over ``window`` labelled events.

Every label is first scored by both (prequentially) and only then learned, so the comparison is
on the same events, before either has seen them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from online_models.drift import DriftMonitor


@dataclass
class Contender:
    name: str
    model: object
    hits: deque = field(default_factory=deque)

    def proba(self, x: dict) -> float:
        return self.model.predict_proba_one(x).get(True, 0.0)

    def accuracy(self) -> float:
        return sum(self.hits) / len(self.hits) if self.hits else 0.0


class ChampionChallenger:
    """
    Parameters
    ----------
    champion
        The model serving at start.
    challenger_factory
        ``name -> model``: builds the challenger when a drift is signalled.
    window, margin
        Promotion: after ``window`` shadow labels, when the challenger's accuracy over the last
        ``window`` labels beats the champion's by ``margin``.
    """

    def __init__(self, champion: object, challenger_factory: Callable[[], object], *, window: int = 500,
                 margin: float = 0.01, monitor: DriftMonitor | None = None, champion_name: str = "classifier",
                 challenger_name: str = "challenger") -> None:
        self.champion = Contender(champion_name, champion)
        self.challenger: Contender | None = None
        self.challenger_factory = challenger_factory
        self.challenger_name = challenger_name
        self.window = window
        self.margin = margin
        self.monitor = monitor or DriftMonitor(champion_name, features=())
        self.generation = 1
        self.events: list[dict] = []  # started / promoted, for logs and the model-events topic

    def predict_proba_one(self, x: dict) -> dict[bool, float]:
        p = self.champion.proba(x)
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict, y: bool, index: int | str = 0, ts: float = 0.0, measure: bool = True) -> list:
        """Score ``x`` with both, then learn it; returns the drift signals it raised. ``measure=False``
        (a label assumed, not observed) teaches both models but neither the comparison nor the monitor."""
        if not measure:
            for contender in filter(None, (self.champion, self.challenger)):
                self._learn(contender.model, x, y, index)
            return []
        for contender in filter(None, (self.champion, self.challenger)):
            contender.hits.append((contender.proba(x) >= 0.5) == y)
            if len(contender.hits) > self.window:
                contender.hits.popleft()
        signals = self.monitor.observe_label(y, self.champion.proba(x), ts, str(self.generation))
        if signals and self.challenger is None:
            self.challenger = Contender(f"{self.challenger_name}-{self.generation + 1}", self.challenger_factory())
            self.events.append({"event": "challenger_started", "at": index, "model": self.challenger.name,
                                "because": f"{signals[0].target} drift ({signals[0].detector})"})
        self._learn(self.champion.model, x, y, index)
        if self.challenger is not None:
            self._learn(self.challenger.model, x, y, index)
            if len(self.challenger.hits) >= self.window and \
                    self.challenger.accuracy() >= self.champion.accuracy() + self.margin:
                self.promote(index)
        return signals

    def promote(self, index: int | str = 0) -> None:
        if self.challenger is None:
            return
        self.events.append({"event": "promoted", "at": index, "model": self.challenger.name,
                            "replaces": self.champion.name, "accuracy": round(self.challenger.accuracy(), 4),
                            "champion_accuracy": round(self.champion.accuracy(), 4)})
        self.champion, self.challenger = self.challenger, None
        self.generation += 1

    @staticmethod
    def _learn(model: object, x: dict, y: bool, index: int | str) -> None:
        try:
            model.learn_one(x, y, event_id=str(index))
        except TypeError:  # River models take no event id
            model.learn_one(x, y)
