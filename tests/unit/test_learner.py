"""The learner refuses one example at a time: an exception while learning one (of any type, even
after the model took it) never makes the batch raise, so no retry learns the others twice."""

from __future__ import annotations

from agents.fraud_outcome import learn_messages
from agents.learner import Learner, RecoLearner
from agents.messages import RawMessage
from agents.metrics import Metrics
from online_models.engine import FraudEngine
from online_models.reco_engine import RecoEngine
from schemas.internal_records import InteractionExample, LabelledExample, UnlabelledExample
from schemas.records import Interaction, Transaction
from schemas.settings import Settings


async def test_an_example_that_raises_is_one_dead_letter_and_the_others_are_learned_once() -> None:
    settings = Settings()
    engine = FraudEngine.from_settings(settings)
    learned: list[str] = []
    real_learn = engine.learn_label

    def flaky(snapshot, is_fraud, *, event_id, observed=True):
        effect = real_learn(snapshot, is_fraud, event_id=event_id, observed=observed)
        learned.append(event_id)
        if event_id == "e2":
            raise ZeroDivisionError("after the model took it")
        return effect

    engine.learn_label = flaky
    tx = Transaction("e0", 1_700_000_000.0, "u1", "m1", 10.0, "EUR", "FR", "web")
    snapshot = engine.score(tx, None, {}, decided_at=tx.ts).snapshot
    examples = [UnlabelledExample("e0", snapshot.features)] + [LabelledExample(f"e{i}", snapshot, i % 2 == 0)
                                                                for i in (1, 2, 3)]
    messages = [RawMessage(settings.learn_topic, 0, i, e.key, e.value)
                for i, e in enumerate(learn_messages(settings, examples))]
    learner = Learner(settings, engine, Metrics())
    outcome = await learner.on_examples(messages)
    assert learned == ["e1", "e2", "e3"] and learner.learned == 3 and engine.anomaly.n_seen == 1
    assert [(r.letter.stage, r.letter.error) for r in outcome.refused] == [
        ("learn", "ZeroDivisionError: after the model took it")]


async def test_the_fraud_and_reco_learners_share_the_learn_topic_each_taking_its_own_examples() -> None:
    settings = Settings()
    fraud, reco = FraudEngine.from_settings(settings), RecoEngine.from_settings(settings)
    tx = Transaction("e0", 1_700_000_000.0, "u1", "m1", 10.0, "EUR", "FR", "web")
    interactions = [Interaction(f"i{n}", 1_700_000_000.0 + n, "ann", f"item-{n}", "purchase") for n in range(3)]
    examples = [UnlabelledExample("e0", fraud.score(tx, None, {}, decided_at=tx.ts).snapshot.features),
                *(InteractionExample(it, tuple(f"item-{m}" for m in range(n))) for n, it in enumerate(interactions))]
    messages = [RawMessage(settings.learn_topic, 0, i, e.key, e.value)
                for i, e in enumerate(learn_messages(settings, examples))]
    messages.append(RawMessage(settings.learn_topic, 0, len(messages), b"x", b"not a batch"))
    fraud_learner, reco_learner = Learner(settings, fraud, Metrics()), RecoLearner(settings, reco, Metrics())
    fraud_out, reco_out = await fraud_learner.on_examples(messages), await reco_learner.on_examples(messages)
    assert (fraud_learner.learned, fraud.anomaly.n_seen, fraud.classifier.n_learned) == (1, 1, 0)
    assert reco_learner.learned == 3 and reco.knows("ann") and reco.model_version != "1.0"
    # The malformed message is one dead letter, the fraud learner's (the reco learner reads it too).
    assert [r.letter.stage for r in fraud_out.refused] == ["learn"] and reco_out.refused == []
