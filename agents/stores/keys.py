"""Every Redis key streamsense writes, in one place, versioned and pseudonymised.

User and merchant ids never appear in a key: they are replaced by a keyed HMAC that starts with
the pseudonym key's id (schemas.keyring), so a Redis scan, a slowlog or a memory dump does not
reveal them, and state written under a retired key is recognisable by name.

Redis Cluster: a script or MULTI may only touch keys of one hash slot, so every key after the
prefix carries a hash tag naming the family it is written with (``{f}``: the fraud path's state,
guards, snapshots, parked labels and their sets, which the batch commit and the label join write
together; ``{r}``: an interaction's claim with its seen items and popularity; ``{c:<role>}``: one
role's checkpoints, written in one MULTI; ``{x}``: experiments and their counters, one MULTI).
Keys no script or MULTI couples with another (the epoch, cached lists) carry no tag and spread
over the cluster. The prefix stays
first, so the README's ACL pattern ``~ss:<app_id>:*`` still covers every key. On a single node
the tags are just part of the name.

>>> from schemas.settings import Settings, SecretStr
>>> keys = RedisKeys.from_settings(Settings(pseudonym_key=SecretStr("k"), app_id="streamsense-v1"))
>>> keys.user("alice")
'ss:streamsense-v1:{f}:u:p0.ec631a55bb81f5b9dc96'
>>> "alice" in keys.user("alice")
False
>>> keys.decision("evt-1")
'ss:streamsense-v1:{f}:d:evt-1'
>>> keys.checkpoint("fraud", 3), keys.epoch()
('ss:streamsense-v1:{c:fraud}:3', 'ss:streamsense-v1:epoch')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.keyring import Pseudonyms
from schemas.settings import Settings


def declared(keys: Iterable[str]) -> list[str]:
    """A script's KEYS: every key it touches, once each (Redis Cluster routes a script by them and
    refuses keys of more than one slot).

    >>> declared(["a", "", "b", "a"])
    ['a', 'b']
    """
    return list(dict.fromkeys(k for k in keys if k))


@dataclass(frozen=True)
class RedisKeys:
    prefix: str
    pseudonyms: Pseudonyms

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisKeys:
        return cls(settings.redis_key_prefix, settings.pseudonyms())

    @property
    def fraud(self) -> str:
        """The fraud path's keys: one hash slot, so the batch commit and the label join stay atomic."""
        return f"{self.prefix}:{{f}}"

    @property
    def reco(self) -> str:
        """An interaction's claim, the user's seen items and popularity: one slot (one script)."""
        return f"{self.prefix}:{{r}}"

    def user(self, user_id: str) -> str:
        """Windowed feature state of one user (a blob, written by the user's partition owner)."""
        return f"{self.fraud}:u:{self.pseudonyms.of(user_id)}"

    def merchant(self, merchant_id: str) -> str:
        """Shared merchant counters (a hash, updated with atomic increments by every worker)."""
        return self.merchant_of(self.pseudonyms.of(merchant_id))

    def merchant_of(self, pseudonym: str) -> str:
        """The merchant counters named by a pseudonym (decision-time snapshots keep only that)."""
        return f"{self.fraud}:m:{pseudonym}"

    def decision(self, event_id: str) -> str:
        """The one effective decision for an event_id, with the input offset that produced it."""
        return f"{self.fraud}:d:{event_id}"

    def snapshot(self, event_id: str) -> str:
        """Features as they were at decision time, kept until the label arrives."""
        return f"{self.fraud}:s:{event_id}"

    def early_label(self, event_id: str) -> str:
        """A label that arrived before its transaction was decided, parked until it is."""
        return f"{self.fraud}:l:{event_id}"

    def label_consumed(self, event_id: str) -> str:
        """Which label input offset took the snapshot (a redelivery of that label takes it again)."""
        return f"{self.fraud}:lc:{event_id}"

    def dead_letter(self, source: str) -> str:
        """The dead letter an input offset became (its redelivery becomes the same one, not a decision)."""
        return f"{self.fraud}:x:{source}"

    def label_counted(self, event_id: str, observed: bool) -> str:
        """Set once a label's effect on its merchant's counters is applied (a copy of the label is not)."""
        return f"{self.fraud}:lm:{'o' if observed else 'h'}:{event_id}"

    def parked_labels(self) -> str:
        """Sorted set event_id -> when parked, of labels waiting for their transaction."""
        return f"{self.fraud}:parked"

    def partition_owner(self, topic: str, partition: int) -> str:
        """The consumer-group generation in which the partition's current owner got it (fencing)."""
        return f"{self.fraud}:owner:{topic}:{partition}"

    def pending_labels(self) -> str:
        """Sorted set event_id -> event ts of decisions still waiting for a label."""
        return f"{self.fraud}:pending"

    def rule_set(self, role: str) -> str:
        """The published rule set every worker follows (agents.rules_follower)."""
        return f"{self.prefix}:rules:{role}"

    def unpublished(self) -> str:
        """Sorted set event_id -> commit time of HTTP decisions the broker has not acknowledged yet."""
        return f"{self.fraud}:unpublished"

    def epoch(self) -> str:
        """Written once, never expires: its absence later means Redis lost its data (agents.stores.trust)."""
        return f"{self.prefix}:epoch"

    # -- model checkpoints --------------------------------------------------------------------
    def checkpoint(self, role: str, version: int) -> str:
        """One signed checkpoint blob."""
        return f"{self.prefix}:{{c:{role}}}:{version}"

    def checkpoint_index(self, role: str) -> str:
        """Sorted set of the versions kept."""
        return f"{self.prefix}:{{c:{role}}}:index"

    def checkpoint_seq(self, role: str) -> str:
        return f"{self.prefix}:{{c:{role}}}:seq"

    def checkpoint_latest(self, role: str) -> str:
        """The version every worker serves."""
        return f"{self.prefix}:{{c:{role}}}:latest"

    # -- experiments (agents.stores.experiments) ---------------------------------------------
    def experiments(self) -> str:
        """Hash experiment id -> the experiment as stated (JSON); every worker follows it."""
        return f"{self.prefix}:{{x}}:exp"

    def experiment_counts(self, experiment_id: str) -> str:
        """Hash ``arm:counter`` -> count: decisions, answers and outcomes per arm."""
        return f"{self.prefix}:{{x}}:exp:{experiment_id}:n"

    def experiment_scores(self, experiment_id: str, arm: str) -> str:
        """List of ``score label`` of the arm's newest labelled decisions (ROCAUC and its interval)."""
        return f"{self.prefix}:{{x}}:exp:{experiment_id}:auc:{arm}"

    # -- recommendations ----------------------------------------------------------------------
    def seen_items(self, user_id: str) -> str:
        """Set of items the user interacted with (excluded from their recommendations)."""
        return f"{self.reco}:seen:{self.pseudonyms.of(user_id)}"

    def reco_list(self, user_id: str) -> str:
        """Sorted set item -> score: the user's current top-K, for services that read Redis directly."""
        return f"{self.prefix}:r:list:{self.pseudonyms.of(user_id)}"

    def popularity(self, bucket: int) -> str:
        """Sorted set item -> interaction weight within one hour of event time (all workers add)."""
        return f"{self.reco}:pop:{bucket}"

    def claim(self, kind: str, message_id: str) -> str:
        """Which input offset first carried this interaction or request id (duplicates are refused)."""
        return f"{self.reco}:{kind}:{message_id}"
