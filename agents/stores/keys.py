"""Every Redis key streamsense writes, in one place, versioned and pseudonymised.

User and merchant ids never appear in a key: they are replaced by a keyed HMAC that starts with
the pseudonym key's id (schemas.keyring), so a Redis scan, a slowlog or a memory dump does not
reveal them, and state written under a retired key is recognisable by name.

>>> from schemas.settings import Settings, SecretStr
>>> keys = RedisKeys.from_settings(Settings(pseudonym_key=SecretStr("k"), app_id="streamsense-v1"))
>>> keys.user("alice")
'ss:streamsense-v1:u:p0.ec631a55bb81f5b9dc96'
>>> "alice" in keys.user("alice")
False
>>> keys.decision("evt-1")
'ss:streamsense-v1:d:evt-1'
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.keyring import Pseudonyms
from schemas.settings import Settings


@dataclass(frozen=True)
class RedisKeys:
    prefix: str
    pseudonyms: Pseudonyms

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisKeys:
        return cls(settings.redis_key_prefix, settings.pseudonyms())

    def user(self, user_id: str) -> str:
        """Windowed feature state of one user (a blob, written by the user's partition owner)."""
        return f"{self.prefix}:u:{self.pseudonyms.of(user_id)}"

    def merchant(self, merchant_id: str) -> str:
        """Shared merchant counters (a hash, updated with atomic increments by every worker)."""
        return self.merchant_of(self.pseudonyms.of(merchant_id))

    def merchant_of(self, pseudonym: str) -> str:
        """The merchant counters named by a pseudonym (decision-time snapshots keep only that)."""
        return f"{self.prefix}:m:{pseudonym}"

    def decision(self, event_id: str) -> str:
        """The one effective decision for an event_id, with the input offset that produced it."""
        return f"{self.prefix}:d:{event_id}"

    def snapshot(self, event_id: str) -> str:
        """Features as they were at decision time, kept until the label arrives."""
        return f"{self.prefix}:s:{event_id}"

    def early_label(self, event_id: str) -> str:
        """A label that arrived before its transaction was decided, parked until it is."""
        return f"{self.prefix}:l:{event_id}"

    def label_consumed(self, event_id: str) -> str:
        """Which label input offset took the snapshot (a redelivery of that label takes it again)."""
        return f"{self.prefix}:lc:{event_id}"

    def label_counted(self, event_id: str, observed: bool) -> str:
        """Set once a label's effect on its merchant's counters is applied (a copy of the label is not)."""
        return f"{self.prefix}:lm:{'o' if observed else 'h'}:{event_id}"

    def parked_labels(self) -> str:
        """Sorted set event_id -> when parked, of labels waiting for their transaction."""
        return f"{self.prefix}:parked"

    def partition_owner(self, topic: str, partition: int) -> str:
        """The consumer-group generation in which the partition's current owner got it (fencing)."""
        return f"{self.prefix}:owner:{topic}:{partition}"

    def pending_labels(self) -> str:
        """Sorted set event_id -> event ts of decisions still waiting for a label."""
        return f"{self.prefix}:pending"

    def unpublished(self) -> str:
        """Sorted set event_id -> commit time of HTTP decisions the broker has not acknowledged yet."""
        return f"{self.prefix}:unpublished"

    def epoch(self) -> str:
        """Written once, never expires: its absence later means Redis lost its data (agents.stores.trust)."""
        return f"{self.prefix}:epoch"

    # -- model checkpoints --------------------------------------------------------------------
    def checkpoint(self, role: str, version: int) -> str:
        """One signed checkpoint blob."""
        return f"{self.prefix}:ckpt:{role}:{version}"

    def checkpoint_index(self, role: str) -> str:
        """Sorted set of the versions kept."""
        return f"{self.prefix}:ckpt:{role}:index"

    def checkpoint_seq(self, role: str) -> str:
        return f"{self.prefix}:ckpt:{role}:seq"

    def checkpoint_latest(self, role: str) -> str:
        """The version every worker serves."""
        return f"{self.prefix}:ckpt:{role}:latest"

    # -- recommendations ----------------------------------------------------------------------
    def seen_items(self, user_id: str) -> str:
        """Set of items the user interacted with (excluded from their recommendations)."""
        return f"{self.prefix}:r:seen:{self.pseudonyms.of(user_id)}"

    def reco_list(self, user_id: str) -> str:
        """Sorted set item -> score: the user's current top-K, for services that read Redis directly."""
        return f"{self.prefix}:r:list:{self.pseudonyms.of(user_id)}"

    def popularity(self, bucket: int) -> str:
        """Sorted set item -> interaction weight within one hour of event time (all workers add)."""
        return f"{self.prefix}:r:pop:{bucket}"

    def claim(self, kind: str, message_id: str) -> str:
        """Which input offset first carried this interaction or request id (duplicates are refused)."""
        return f"{self.prefix}:r:{kind}:{message_id}"
