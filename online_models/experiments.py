"""Experiments between model versions: which arm a user is in, and what an experiment states.

An experiment splits users between ``control`` (what every user gets without it: the serving model)
and ``treatment`` (a checkpoint version, or the challenger, of the fraud model; a strategy of the
recommender). A user's arm is a keyed hash of the user id into ``BUCKETS`` buckets, keyed by the
experiment's id:

- sticky: the same user is in the same arm on every event, on every worker, after a restart;
- independent per experiment: a fresh id is a fresh key, so who was treated in one experiment says
  nothing about who is treated in the next;
- nested when ramped: the treatment holds the buckets below ``share`` (in hundredths of a percent),
  so ramping 5 -> 25 % keeps every user already treated in the treatment.

Pure: no clock, no Redis. agents.stores.experiments keeps experiments in Redis and agents.experiment_arms
routes events by them.

>>> exp = Experiment("exp-1", "fraud", "7", share=5.0)
>>> exp.arm("alice") == exp.arm("alice")
True
>>> stopped = exp.with_status("stopped", "by hand")
>>> {stopped.arm(f"u{i}") for i in range(1000)}
{'control'}
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

BUCKETS = 10_000
CONTROL, TREATMENT = "control", "treatment"
ARMS = (CONTROL, TREATMENT)
RAMP = (5.0, 25.0, 50.0, 100.0)  # the shares a canary is ramped through, in percent
MODELS = ("fraud", "reco")
RECO_TREATMENTS = ("popular", "personal", "explore")  # explore:SHARE sets the explore share
STATUSES = ("running", "stopped", "rolled_back", "completed")
REVIEW_COST = 5.0  # what one review costs in the cost figure (as ``streamsense evaluate`` counts it)


def bucket(experiment_id: str, user_id: str) -> int:
    """The user's bucket in [0, BUCKETS): blake2b of the user id keyed by the experiment id.

    >>> bucket("exp-1", "alice"), bucket("exp-2", "alice")
    (2520, 343)
    """
    key = experiment_id.encode()[:64]  # blake2b keys are at most 64 bytes; ids are far shorter
    digest = hashlib.blake2b(user_id.encode(), key=key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS  # 2**64 % 10**4 leaves a bias of 1e-15


def next_share(share: float) -> float | None:
    """The ramp's next step after ``share`` (None at 100 %).

    >>> next_share(5.0), next_share(30.0), next_share(100.0)
    (25.0, 50.0, None)
    """
    return next((step for step in RAMP if step > share), None)


def check_treatment(model: str, treatment: str) -> str:
    """``treatment`` as an experiment on ``model`` states it, or ValueError.

    >>> check_treatment("fraud", "v7"), check_treatment("fraud", "challenger"), check_treatment("reco", "explore:0.2")
    ('7', 'challenger', 'explore:0.2')
    """
    if model == "fraud":
        if treatment == "challenger":
            return treatment
        version = treatment.removeprefix("v")
        if not version.isdigit() or int(version) < 1:
            raise ValueError(f"a fraud treatment is a checkpoint version or 'challenger', not {treatment!r}")
        return version
    if model == "reco":
        strategy, _, share = treatment.partition(":")
        if strategy not in RECO_TREATMENTS or (share and strategy != "explore"):
            raise ValueError(f"a reco treatment is one of {', '.join(RECO_TREATMENTS)} (explore:SHARE), "
                             f"not {treatment!r}")
        if share:
            try:
                valid = 0.0 <= float(share) <= 1.0
            except ValueError:
                valid = False
            if not valid:
                raise ValueError(f"the explore share is a number in [0, 1], not {share!r}")
        return treatment
    raise ValueError(f"experiments are on one of {', '.join(MODELS)}, not {model!r}")


@dataclass(frozen=True)
class Guardrails:
    """The bounds a treatment must hold against control, stated when the experiment starts.

    Parameters
    ----------
    max_flag_increase
        Fraud: the treatment's share of decisions reviewed or declined may exceed control's by at most
        this (absolute), beyond sampling error; reco: its hit rate may fall short of control's by this.
    max_cost_increase
        Fraud, once each arm has ``min_labels`` labels: the cost per labelled event (missed fraud
        amount plus the review cost) may exceed control's by at most this, beyond sampling error.
    min_decisions, min_labels
        Decisions (answers) and labels (outcomes) per arm before a bound is judged.
    ramp_after
        Labelled events (reco: answers with an outcome) the treatment holds at one share before it
        is ramped to the next; 0 ramps by command only.
    z
        How many standard errors a difference must exceed to count ("beyond sampling error").
    """

    max_flag_increase: float = 0.05
    max_cost_increase: float = 5.0
    min_decisions: int = 200
    min_labels: int = 50
    ramp_after: int = 0
    z: float = 3.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Experiment:
    """One experiment: who states it and what it compares.

    ``share`` is the treatment's percentage of users; ``stage_started`` is the treatment's labelled
    count when it reached this share (the ramp counts from there)."""

    experiment_id: str
    model: str
    treatment: str
    share: float
    status: str = "running"
    guardrails: Guardrails = Guardrails()
    started_at: float = 0.0
    by: str = ""
    reason: str = ""
    stage_started: int = 0

    def arm(self, user_id: str) -> str:
        """``treatment`` for the users in its share while the experiment runs, else ``control``."""
        if self.status != "running":
            return CONTROL
        return TREATMENT if bucket(self.experiment_id, user_id) < round(self.share * BUCKETS / 100) else CONTROL

    @property
    def running(self) -> bool:
        return self.status == "running"

    def with_status(self, status: str, reason: str) -> Experiment:
        return dataclasses.replace(self, status=status, reason=reason)

    def ramped(self, share: float, labelled: int) -> Experiment:
        return dataclasses.replace(self, share=share, stage_started=labelled)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "guardrails": self.guardrails.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping) -> Experiment:
        return cls(**{**doc, "guardrails": Guardrails(**doc.get("guardrails", {}))})
