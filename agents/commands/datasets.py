"""Data sets for `streamsense evaluate`: files in the transactions contract, labelled CSV, MovieLens
u.data ratings, and River's bundled data sets and synthetic generators, as evaluation events."""

from __future__ import annotations

import csv
import inspect
import json
import math
from collections.abc import Iterator
from pathlib import Path

from online_models.evaluation import Event
from schemas.records import Transaction
from schemas.settings import Settings
from schemas.validation import TRANSACTIONS, UNKEYED, InputRules, decode

CSV_EPOCH = 1_700_000_000.0  # a CSV's relative time column (seconds) starts here


def transactions_jsonl(path: Path, settings: Settings, labels: Path | None = None) -> Iterator[Event]:
    """JSON lines in the transactions contract; truth from a fraud-labels JSON-lines file (absent = legit)."""
    fraud = set()
    if labels:
        with labels.open() as fh:
            fraud = {doc["event_id"] for doc in map(json.loads, filter(str.strip, fh)) if doc["is_fraud"]}
    # A recorded file is replayed, so its event times are not compared with the wall clock.
    rules = InputRules(settings.max_event_bytes, max_past_s=math.inf, max_future_s=math.inf,
                       strict=settings.strict_input)
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            tx = decode(TRANSACTIONS, line.strip(), rules=rules, now=0.0, key=UNKEYED).record
            yield Event(x={"amount": tx.amount, **tx.features}, y=tx.event_id in fraud, ts=tx.ts, tx=tx)


def transactions_csv(path: Path, *, label: str = "Class", time: str = "Time", amount: str = "Amount",
                     user: str | None = None, merchant: str | None = None) -> Iterator[Event]:
    """A labelled CSV (the credit-card data set's shape): numeric columns pass through as features.

    Without a user column every row is its own user (per-user windows then carry no history);
    without a merchant column all rows share one merchant.
    """
    with path.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            x = {k: float(v) for k, v in row.items() if k not in (label, user, merchant)}
            tx = Transaction(
                event_id=f"row-{n}", ts=CSV_EPOCH + x[time], user_id=row[user] if user else f"row-{n}",
                merchant_id=row[merchant] if merchant else "csv", amount=x[amount], currency="EUR", country="ZZ",
                channel="web", features={k: v for k, v in x.items() if k not in (time, amount)})
            yield Event(x=x, y=float(row[label]) == 1.0, ts=tx.ts, tx=tx)


def labelled_csv(path: Path, *, label: str, positive: str) -> Iterator[Event]:
    """A plain classification stream: numeric columns as features, ``label == positive`` as truth."""
    with path.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            x = {k: float(v) for k, v in row.items() if k != label}
            yield Event(x=x, y=row[label] == positive, ts=float(n))


def ratings(path: Path) -> Iterator[tuple[str, str, float, float]]:
    """MovieLens u.data: user, item, rating, timestamp (tab separated), returned in time order."""
    rows = []
    with path.open() as fh:
        for line in fh:
            if line.strip():
                user, item, rating, ts = line.split("\t")
                rows.append((user, item, float(rating), float(ts)))
    rows.sort(key=lambda r: r[3])  # stable: ties keep file order
    return iter(rows)


def river_dataset(name: str, seed: int = 42) -> Iterator[Event]:
    """A River data set or synthetic generator by class name (Phishing, Bananas, Agrawal, SEA, ...)."""
    from river import datasets
    from river.datasets import synth

    cls = getattr(datasets, name, None) or getattr(synth, name, None)
    if cls is None or not inspect.isclass(cls):
        raise ValueError(f"no River data set named {name!r}")
    dataset = cls(seed=seed) if "seed" in inspect.signature(cls).parameters else cls()
    for n, (x, y) in enumerate(dataset):
        if not isinstance(y, (bool, int)) or int(y) not in (0, 1):
            raise ValueError(f"{name} is not a binary stream (label {y!r}); evaluate handles binary labels")
        yield Event(x={k: float(v) for k, v in x.items()}, y=bool(y), ts=float(n))
