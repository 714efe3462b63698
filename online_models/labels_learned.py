"""Which labels the model has learned, so that a label delivered twice is learned once.

Labels reach the learner at least once: a label redelivered after its learn example was sent (the
worker died before committing the label's offset), or a transaction redelivered after its
decision took a parked label, sends the same example again. The learner keeps the events it
learned a label for, in the model's checkpoint (so a restored learner skips exactly what the
restored model holds), and learns each (event, observed) once: an example assumed legitimate at
the horizon and a real label later are two examples (the second corrects the first).

Entries are kept for ``keep_s`` of event time behind the newest example seen: a copy can only be
sent while the event's snapshot exists (``snapshot_ttl_s`` after its decision, which is at most
``max_past_s`` after its event time), and no example seen meanwhile is dated more than
``max_future_s`` ahead of the wall clock.

>>> seen = LabelsLearned(keep_s=100.0)
>>> seen.first("e1", True, ts=10.0), seen.first("e1", True, ts=10.0), seen.first("e1", False, ts=10.0)
(True, False, True)
>>> seen.first("e2", True, ts=500.0), len(seen.prune()), seen.first("e1", True, ts=10.0)
(True, 2, True)
"""

from __future__ import annotations

PRUNE_EVERY = 1024  # examples between prunes


class LabelsLearned:
    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.at: dict[tuple[str, bool], float] = {}  # (event_id, observed) -> event time
        self.newest = 0.0  # not -inf: a checkpoint refuses any number that is not finite
        self.n_repeated = 0  # examples not learned: their label was learned already
        self._since_prune = 0

    def first(self, event_id: str, observed: bool, ts: float) -> bool:
        """Whether this is the first time (``event_id``, ``observed``) is learned (it is recorded)."""
        key = (event_id, observed)
        if key in self.at:
            self.n_repeated += 1
            return False
        self.at[key] = ts
        self.newest = max(self.newest, ts)
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self.prune()
        return True

    def prune(self) -> list[tuple[str, bool]]:
        """Forget entries older than ``keep_s`` behind the newest; returns them."""
        self._since_prune = 0
        cutoff = self.newest - self.keep_s
        old = [key for key, ts in self.at.items() if ts < cutoff]
        for key in old:
            del self.at[key]
        return old
