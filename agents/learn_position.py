"""Where the learner stands in the learn topic: the model holds exactly the examples up to it.

A checkpoint records this position; a worker that restores the checkpoint resumes right after it,
whatever offsets the consumer group committed meanwhile:

- an example at or before the position is already in the model: skipped (never learned twice);
- an example beyond the next one means the ones in between are missing from the model (learned
  by a worker that died before publishing, and committed): they are read again first (never lost).

>>> pos = LearnPosition()
>>> pos.resume_after({"learn/0": 9})
>>> pos.admit("learn", 0, 9), pos.admit("learn", 0, 10)
('skip', 'learn')
>>> pos.learned("learn", 0, 10); pos.admit("learn", 0, 14)
('gap', 11)
"""

from __future__ import annotations

from collections.abc import Mapping


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class LearnPosition:
    def __init__(self) -> None:
        self.through: dict[str, int] = {}  # "topic/partition" -> last offset the model holds

    def resume_after(self, offsets: Mapping[str, int]) -> None:
        """Take a checkpoint's position: the model now holds what it held when published."""
        self.through = {k: int(v) for k, v in offsets.items()}

    def admit(self, topic: str, partition: int, offset: int):
        """``"learn"``, ``"skip"`` (already held), or ``("gap", first missing offset)``."""
        last = self.through.get(partition_key(topic, partition))
        if last is None or offset == last + 1:
            return "learn"
        if offset <= last:
            return "skip"
        return "gap", last + 1

    def learned(self, topic: str, partition: int, offset: int) -> None:
        self.through[partition_key(topic, partition)] = offset
