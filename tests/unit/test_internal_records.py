"""Internal records keep the byte format workers of the previous release wrote (a rolling upgrade
mixes both on the learn topic and in Redis)."""

from __future__ import annotations

import orjson

from schemas.internal_records import (
    LabelledExample,
    Snapshot,
    StoredDecision,
    UnlabelledExample,
    example_from_doc,
    learn_batches,
    read_learn_batch,
)
from schemas.records import FraudDecision, Reason

SNAPSHOT = Snapshot({"amount": 12.5, "hour": 3.0}, "m1", 1_700_000_000.0, 0.125)


def test_a_snapshot_is_the_previous_document_and_reads_back() -> None:
    assert orjson.loads(SNAPSHOT.to_bytes()) == {"x": {"amount": 12.5, "hour": 3.0}, "m": "m1", "ts": 1_700_000_000.0,
                                                  "p": 0.125}
    assumed = SNAPSHOT.learned_as_legitimate()
    assert orjson.loads(assumed.to_bytes())["a"] == 1
    assert Snapshot.from_bytes(assumed.to_bytes()) == assumed and Snapshot.from_bytes(SNAPSHOT.to_bytes()) == SNAPSHOT
    assert Snapshot.from_bytes(b'{"x":{},"m":"m","ts":1.0}').score == 0.5  # written before scores were kept


def test_a_stored_decision_reads_back_to_the_same_published_bytes() -> None:
    decision = FraudDecision("e1", 0.912, "decline", (Reason("card_testing", "rule", 0.6),), "lr+hst+rules",
                             "1.2.3", False, False, 1.25, 1_700_000_000.5)
    stored = StoredDecision("transactions/0/7", decision)
    assert orjson.loads(stored.to_bytes()) == {"src": "transactions/0/7", "d": decision.to_dict()}
    assert StoredDecision.from_bytes(stored.to_bytes()).decision.to_json() == decision.to_json()


def test_learn_examples_are_the_previous_documents() -> None:
    examples = [UnlabelledExample("e1", {"amount": 1.0}), LabelledExample("e2", SNAPSHOT, True),
                LabelledExample("e3", SNAPSHOT.learned_as_legitimate(), False, observed=False)]
    [(first, raw)] = learn_batches(examples, max_bytes=10_000)
    assert first == "e1" and raw == orjson.dumps({"b": [e.to_doc() for e in examples]})
    docs = read_learn_batch(raw)
    assert docs[0] == {"e": "e1", "y": None, "o": True, "s": {"x": {"amount": 1.0}}}
    assert docs[1] == {"e": "e2", "y": True, "o": True, "s": orjson.loads(SNAPSHOT.to_bytes())}
    assert [example_from_doc(doc) for doc in docs] == examples


def test_learn_batches_stay_under_their_byte_budget_and_keep_every_example_in_order() -> None:
    examples = [LabelledExample(f"e{i}", Snapshot({f"v{j}": 1.0 / (j + 1) for j in range(i * 7)}, "m", 1.0, 0.5),
                                i % 2 == 0) for i in range(60)]
    for budget, count in ((5_000, 100), (50_000, 10), (100, 100)):
        batches = learn_batches(examples, max_bytes=budget, max_examples=count)
        docs = [doc for _, raw in batches for doc in read_learn_batch(raw)]
        assert [example_from_doc(doc) for doc in docs] == examples
        assert [first for first, _ in batches] == [read_learn_batch(raw)[0]["e"] for _, raw in batches]
        assert all(len(raw) <= budget or len(read_learn_batch(raw)) == 1 for _, raw in batches)
        assert all(len(read_learn_batch(raw)) <= count for _, raw in batches)
    assert len(learn_batches(examples, max_bytes=5_000)) > 10  # the budget, not the count, split them
    assert learn_batches([], max_bytes=100) == []
