"""Windowed fraud features: folds over event time, checked against a batch recomputation."""

from __future__ import annotations

import math

from budget import examples
from hypothesis import given, settings, strategies as st

from schemas.records import Transaction
from streams.fraud_features import (
    DAY,
    FEATURE_NAMES,
    FeatureConfig,
    MerchantUpdate,
    UserState,
    apply_merchant_update,
    merchant_label_update,
    transaction_features,
)

T0 = 1_700_000_000.0
CFG = FeatureConfig(allowed_lateness_s=300.0)


def tx(i: int, ts: float, amount: float = 20.0, merchant: str = "m1", device: str | None = "d1",
       country: str = "FR") -> Transaction:
    return Transaction(f"e{i}", ts, "alice", merchant, amount, "EUR", country, "app", device)


def fold(events: list[Transaction], merchant: dict | None = None):
    """Run events through the fold; returns each event's result and the final merchant hash."""
    state, merchant, results = None, dict(merchant or {}), []
    for event in events:
        result = transaction_features(event, state, merchant, CFG)
        state = result.user_state
        merchant = apply_merchant_update(merchant, result.merchant_update)
        results.append(result)
    return results, merchant


def test_every_feature_is_named_and_finite() -> None:
    (r,), _ = fold([tx(1, T0)])
    assert set(r.features) == set(FEATURE_NAMES)
    assert all(math.isfinite(v) for v in r.features.values())


def test_counts_and_sums_per_horizon() -> None:
    events = [tx(0, T0 - 20 * 3600, 100.0), tx(1, T0 - 1800, 10.0), tx(2, T0 - 30, 1.0), tx(3, T0, 5.0)]
    results, _ = fold(events)
    x = results[-1].features
    assert (x["user_count_1m"], x["user_count_1h"], x["user_count_24h"]) == (1.0, 2.0, 3.0)
    assert (x["user_sum_1m"], x["user_sum_1h"], x["user_sum_24h"]) == (1.0, 11.0, 111.0)
    assert x["secs_since_last"] == 30.0 and x["user_history_count"] == 3.0


def test_an_out_of_order_event_within_lateness_is_merged_and_seen_by_later_events() -> None:
    results, _ = fold([tx(1, T0), tx(2, T0 - 200), tx(3, T0 + 10)])
    assert not results[1].late
    assert results[1].features["user_count_1h"] == 0.0  # its window ends at its own time
    assert results[2].features["user_count_1h"] == 2.0


def test_a_late_event_is_flagged_scored_and_never_merged() -> None:
    results, merchant = fold([tx(1, T0), tx(2, T0 - 301)])
    late = results[1]
    assert late.late and late.user_state == results[0].user_state
    assert late.merchant_update == MerchantUpdate({}) and merchant["n"] == 1.0


def test_amount_z_score_ratio_and_novelty() -> None:
    events = [tx(i, T0 + 60 * i, 20.0 + i) for i in range(5)] + [tx(9, T0 + 600, 500.0, "m9", "d2", "BR")]
    x = fold(events)[0][-1].features
    assert x["user_amount_z"] == 10.0 and x["user_amount_ratio"] > 20
    assert (x["first_time_merchant"], x["new_device"], x["new_country"]) == (1.0, 1.0, 1.0)
    assert x["user_distinct_merchants_24h"] == 1.0 and x["user_distinct_devices_24h"] == 1.0


def test_merchant_windows_expire_buckets_and_learn_the_fraud_rate() -> None:
    results, merchant = fold([tx(1, T0, 10.0), tx(2, T0 + 600, 30.0), tx(3, T0 + 2 * DAY, 5.0)])
    assert results[1].features["merchant_count_1h"] == 1.0 and results[1].features["merchant_sum_24h"] == 10.0
    assert results[2].features["merchant_count_24h"] == 0.0 and results[2].features["merchant_tx_count"] == 2.0
    assert len(results[2].merchant_update.deletions) == 2  # the old hour's count and sum
    assert sorted(merchant) == sorted(["n", f"c:{int((T0 + 2 * DAY) // 3600) * 3600}",
                                       f"s:{int((T0 + 2 * DAY) // 3600) * 3600}"])
    for fraud in (True, True, False):
        merchant = apply_merchant_update(merchant, merchant_label_update(fraud))
    rate = transaction_features(tx(4, T0 + 2 * DAY), None, merchant, CFG).features["merchant_fraud_rate"]
    assert rate == (2 + 0.2) / (3 + 20)


def test_state_round_trips_and_stays_small() -> None:
    results, _ = fold([tx(i, T0 + 3600 * i, 10.0 + i, f"m{i % 3}") for i in range(5)])
    state = results[-1].user_state
    assert UserState.from_bytes(state.to_bytes()) == state
    assert len(state.to_bytes()) < 600
    assert b"alice" not in state.to_bytes() and b"m1" not in state.to_bytes()  # only hashed tags


def test_inputs_are_not_mutated() -> None:
    (first,), merchant = fold([tx(1, T0)])
    state_bytes, merchant_before = first.user_state.to_bytes(), dict(merchant)
    transaction_features(tx(2, T0 + 5), first.user_state, merchant, CFG)
    assert first.user_state.to_bytes() == state_bytes and merchant == merchant_before


def recompute(history: list[Transaction], event: Transaction) -> dict[str, float]:
    """The oracle: windows over the raw event list, no state."""
    out = {}
    for name, horizon in (("1m", 60.0), ("1h", 3600.0), ("24h", DAY)):
        inside = [e for e in history if event.ts - horizon < e.ts <= event.ts]
        out[f"user_count_{name}"] = float(len(inside))
        out[f"user_sum_{name}"] = sum(e.amount for e in inside)
    day = [e for e in history if event.ts - DAY < e.ts <= event.ts]
    out["user_distinct_merchants_24h"] = float(len({e.merchant_id for e in day}))
    return out


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.tuples(st.floats(0, 7200), st.floats(0, 1000).map(lambda a: round(a, 2)),
                          st.sampled_from(["m1", "m2", "m3", "m4"])), min_size=1, max_size=40))
def test_in_order_features_equal_a_batch_recomputation(steps) -> None:
    ts, events = T0, []
    for i, (gap, amount, merchant) in enumerate(steps):
        ts += round(gap, 3)
        events.append(tx(i, ts, amount, merchant))
    results, _ = fold(events)
    for i, result in enumerate(results):
        expected = recompute(events[:i], events[i])
        for name, value in expected.items():
            assert math.isclose(result.features[name], value, abs_tol=1e-6), (i, name)
