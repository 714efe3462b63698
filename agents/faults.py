"""Test-only fault injection: exceptions of arbitrary types at random stages of a running worker.

Off unless ``SS_TEST_FAULTS`` is set (not a setting, so outside the ``STREAMSENSE_`` names), as
``seed:rate:stage+stage`` (for example ``7:0.02:decode!+score+commit``). Then every call at a
named stage raises, with probability ``rate``, an exception of a type drawn from ``KINDS``, before
the real call or after it (its effects done, its result lost). A stage named with ``!`` is sticky:
whether a call raises, and what, depends on its arguments, so a message that fails there fails
every time (a poison message, where the others model transient faults). The reliability tests use
it to show that whatever raises, wherever, every input still ends as one decision or one dead
letter, and that a produce the broker never takes stops the worker without losing its batch. The
worker reads the variable nowhere else; unset, nothing is wrapped.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import random
import signal

from agents import produce

log = logging.getLogger(__name__)

ENV = "SS_TEST_FAULTS"
# n: the worker stops itself (SIGSTOP) just before its n-th decision commit, so a test can resume it
# after its partitions moved: a zombie that certainly has a write in hand.
STOP_ENV = "SS_TEST_STOP_BEFORE_COMMIT"


class InjectedFault(Exception):
    """An exception type no code of ours expects."""


KINDS = (ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError, IndexError, AssertionError,
         InjectedFault, RuntimeError, ConnectionError)


class Faults:
    def __init__(self, seed: int, rate: float, stages: set[str]) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self.rate = rate
        self.stages = stages

    @classmethod
    def from_env(cls) -> Faults | None:
        spec = os.environ.get(ENV)
        if not spec:
            return None
        seed, rate, stages = spec.split(":")
        return cls(int(seed), float(rate), set(stages.split("+")))

    def wrap(self, owner: object, method: str, stage: str) -> None:
        """Replace ``owner.method`` by one that fails at ``stage`` now and then."""
        sticky = f"{stage}!" in self.stages
        if not sticky and stage not in self.stages:
            return
        real = getattr(owner, method)

        def maybe_raise(args: tuple, before: bool) -> None:
            if sticky and not before:
                return
            rng = random.Random(f"{self.seed}/{stage}/{args!r}") if sticky else self.random
            if rng.random() < self.rate:
                raise rng.choice(KINDS)(f"injected at {stage}")

        if inspect.iscoroutinefunction(real):
            @functools.wraps(real)
            async def wrapped(*args, **kwargs):
                maybe_raise(args, before=True)
                result = await real(*args, **kwargs)
                maybe_raise(args, before=False)
                return result
        else:
            @functools.wraps(real)
            def wrapped(*args, **kwargs):
                maybe_raise(args, before=True)
                result = real(*args, **kwargs)
                maybe_raise(args, before=False)
                return result
        setattr(owner, method, wrapped)

    def install(self, runtime) -> None:
        """Wrap the worker's stages: decoding, scoring, Redis reads and writes, joining labels,
        learning, the recommendation path and the producer."""
        log.warning("TEST FAULTS: raising at %s with probability %g", "+".join(sorted(self.stages)), self.rate)
        fraud, reco = runtime.processor, runtime.reco
        for owner, method, stage in (
                (fraud.transactions.intake, "decode", "decode"), (fraud.labels.intake, "decode", "decode"),
                (runtime.engine, "score", "score"),
                (fraud.store, "load", "load"), (fraud.store, "commit", "commit"),
                (fraud.store, "join_labels", "label"), (fraud.store, "expired_parked", "timer"),
                (runtime.engine, "learn_label", "learn"), (runtime.engine, "learn_unlabelled", "learn"),
                (reco.engine, "learn", "reco"), (reco.store, "claim_interactions", "reco"),
                (reco.store, "record_lists", "reco"), (reco.engine, "recommend", "reco"),
                (fraud.store, "expired_pending", "timer"),
                (produce, "send_batch", "produce")):
            self.wrap(owner, method, stage)



def stop_before_commit(store: object) -> None:
    """Test only (``SS_TEST_STOP_BEFORE_COMMIT``): stop this process before its n-th decision commit."""
    n = int(os.environ.get(STOP_ENV) or 0)
    if not n:
        return
    real, seen = store.commit, [0]

    @functools.wraps(real)
    async def commit(batch):
        if batch.guards:
            seen[0] += 1
            if seen[0] == n:
                log.warning("TEST: stopping before decision commit %d", n)
                os.kill(os.getpid(), signal.SIGSTOP)
        return await real(batch)

    store.commit = commit
