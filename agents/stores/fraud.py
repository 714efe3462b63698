"""Redis state of the fraud path: one pipelined read and one atomic write per batch of events.

Why a Lua script for the write: the decision record of an event_id, the user state, the
merchant counters and the label snapshot must land together or not at all, and only if no
other worker decided the same event_id meanwhile (a redelivery after a crash, a zombie
worker after a rebalance). The script checks the decision keys first and then applies every
command, atomically, in one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from agents.stores.keys import RedisKeys
from schemas import internal_json
from schemas.internal_records import Snapshot, StoredDecision
from schemas.settings import Settings
from streams.fraud_features import MerchantUpdate, UserState

_GUARDED_APPLY = """
local req = cjson.decode(ARGV[1])
local taken = {}
for i, key in ipairs(req.g) do
  if redis.call('EXISTS', key) == 1 then taken[#taken + 1] = i - 1 end
end
if #taken > 0 then return taken end
for _, cmd in ipairs(req.c) do redis.call(unpack(cmd)) end
return taken
"""


@dataclass
class LoadedState:
    users: dict[str, UserState | None]
    merchants: dict[str, dict[str, float]]
    decisions: dict[str, StoredDecision | None]
    early_labels: dict[str, bool]  # event_id -> is_fraud, for labels that came before the decision


@dataclass
class WriteBatch:
    """Commands for one atomic commit; ``guards`` are decision keys that must not exist yet."""

    guards: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.commands)


class FraudStore:
    def __init__(self, redis: Redis, keys: RedisKeys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self._apply = redis.register_script(_GUARDED_APPLY)

    async def load(self, user_ids: Iterable[str], merchant_ids: Iterable[str],
                   event_ids: Iterable[str]) -> LoadedState:
        users, merchants, events = list(dict.fromkeys(user_ids)), list(dict.fromkeys(merchant_ids)), list(
            dict.fromkeys(event_ids))
        # MGET per key family: three commands instead of one per key (client-side packing and
        # parsing of thousands of GETs was a quarter of the batch's CPU).
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.mget([self.keys.user(u) for u in users])
            for merchant_id in merchants:
                pipe.hgetall(self.keys.merchant(merchant_id))
            pipe.mget([self.keys.decision(e) for e in events])
            pipe.mget([self.keys.early_label(e) for e in events])
            replies = await pipe.execute()
        user_raw, merchant_raw, decision_raw, label_raw = replies[0], replies[1:-2], replies[-2], replies[-1]
        return LoadedState(
            users={u: UserState.from_bytes(r) if r else None for u, r in zip(users, user_raw, strict=True)},
            merchants={m: {k.decode(): float(v) for k, v in h.items()}
                       for m, h in zip(merchants, merchant_raw, strict=True)},
            decisions={e: StoredDecision.from_bytes(r) if r else None
                       for e, r in zip(events, decision_raw, strict=True)},
            early_labels={e: r == b"1" for e, r in zip(events, label_raw, strict=True) if r is not None},
        )

    # -- building a commit -------------------------------------------------------------------
    def record_decision(self, batch: WriteBatch, stored: StoredDecision, snapshot: Snapshot | None) -> None:
        """Store the decision; keep ``snapshot`` for its label (None: its label is already here)."""
        event_id = stored.decision.event_id
        key = self.keys.decision(event_id)
        s = self.settings
        batch.guards.append(key)
        batch.commands.append(["SET", key, stored.to_bytes().decode(), "EX", str(s.decision_ttl_s)])
        if snapshot is None:
            batch.commands.append(["DEL", self.keys.early_label(event_id)])
            return
        batch.commands.append(["SET", self.keys.snapshot(event_id), snapshot.to_bytes().decode(), "EX",
                               str(s.snapshot_ttl_s)])
        batch.commands.append(["ZADD", self.keys.pending_labels(), repr(float(snapshot.ts)), event_id])

    def hold_until_published(self, batch: WriteBatch, event_id: str, committed_at: float) -> None:
        """An HTTP decision is answered before the broker acknowledges it; until then its event_id
        waits in the unpublished set, written in the same atomic commit as the decision."""
        batch.commands.append(["ZADD", self.keys.unpublished(), repr(float(committed_at)), event_id])

    def save_user(self, batch: WriteBatch, user_id: str, state: UserState) -> None:
        batch.commands.append(["SET", self.keys.user(user_id), state.to_bytes().decode(), "EX",
                               str(self.settings.state_ttl_s)])

    def update_merchant(self, batch: WriteBatch, merchant_id: str, update: MerchantUpdate) -> None:
        self._update_merchant_key(batch, self.keys.merchant(merchant_id), update)

    def _update_merchant_key(self, batch: WriteBatch, key: str, update: MerchantUpdate) -> None:
        for name, delta in update.increments.items():
            batch.commands.append(["HINCRBYFLOAT", key, name, repr(float(delta))])
        if update.deletions:
            batch.commands.append(["HDEL", key, *update.deletions])
        if update.increments:
            batch.commands.append(["EXPIRE", key, str(self.settings.state_ttl_s)])

    async def commit(self, batch: WriteBatch) -> list[int]:
        """Apply ``batch`` atomically; returns indices of guards already taken (then nothing was written)."""
        if not batch:
            return []
        payload = internal_json.dumps({"g": batch.guards, "c": batch.commands})
        taken = await self._apply(keys=[], args=[payload])
        return [int(i) for i in taken]

    # -- labels ------------------------------------------------------------------------------
    async def take_snapshots(self, event_ids: Sequence[str]) -> tuple[dict[str, Snapshot | None], set[str]]:
        """Fetch and delete snapshots (GETDEL), so each event is learned from at most once; also
        which of the events are decided. One MULTI/EXEC: a decision committed in between cannot
        make a decided event look snapshot-less."""
        if not event_ids:
            return {}, set()
        async with self.redis.pipeline(transaction=True) as pipe:
            for event_id in event_ids:
                pipe.exists(self.keys.decision(event_id))
                pipe.getdel(self.keys.snapshot(event_id))
            pipe.zrem(self.keys.pending_labels(), *event_ids)
            replies = await pipe.execute()
        decided = {e for e, r in zip(event_ids, replies[0:-1:2], strict=True) if r}
        snapshots = {e: Snapshot.from_bytes(r) if r else None for e, r in zip(event_ids, replies[1:-1:2], strict=True)}
        return snapshots, decided

    # -- HTTP decisions waiting for the broker ---------------------------------------------------
    async def unpublished(self, before: float, limit: int) -> dict[str, StoredDecision | None]:
        """HTTP decisions committed before ``before`` and still not acknowledged by the broker."""
        ids = [r.decode() for r in await self.redis.zrangebyscore(self.keys.unpublished(), "-inf", before,
                                                                  start=0, num=limit)]
        return await self.decisions(ids)

    async def decisions(self, event_ids: Sequence[str]) -> dict[str, StoredDecision | None]:
        """The stored decision of each event_id (None: not decided, or forgotten)."""
        if not event_ids:
            return {}
        raw = await self.redis.mget([self.keys.decision(e) for e in event_ids])
        return {e: StoredDecision.from_bytes(r) if r else None for e, r in zip(event_ids, raw, strict=True)}

    async def adopt(self, records: Mapping[str, StoredDecision]) -> list[str]:
        """Store decisions made without Redis (agents.journal) where no decision is stored yet;
        returns the event_ids that had another decision stored meanwhile (those stand)."""
        ids = list(records)
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.set(self.keys.decision(event_id), records[event_id].to_bytes(), nx=True, get=True,
                         ex=self.settings.decision_ttl_s)
            before = await pipe.execute()
        return [e for e, old in zip(ids, before, strict=True) if old is not None and old != records[e].to_bytes()]

    async def mark_published(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            await self.redis.zrem(self.keys.unpublished(), *event_ids)

    async def park_labels(self, labels: Mapping[str, bool]) -> None:
        """Keep labels whose transaction is not decided yet; the decision learns from them."""
        if not labels:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id, is_fraud in labels.items():
                pipe.set(self.keys.early_label(event_id), "1" if is_fraud else "0", ex=self.settings.snapshot_ttl_s)
            await pipe.execute()

    async def expired_pending(self, before_ts: float, limit: int) -> list[str]:
        """Event ids decided before ``before_ts`` (event time) that never got a label."""
        raw = await self.redis.zrangebyscore(self.keys.pending_labels(), "-inf", before_ts, start=0, num=limit)
        return [r.decode() for r in raw]

    async def read_snapshots(self, event_ids: Sequence[str]) -> dict[str, Snapshot | None]:
        if not event_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.get(self.keys.snapshot(event_id))
            replies = await pipe.execute()
        return {e: Snapshot.from_bytes(r) if r else None for e, r in zip(event_ids, replies, strict=True)}

    async def claim_expired(self, event_ids: Sequence[str]) -> dict[str, Snapshot | None]:
        """Snapshots of the expired ids this caller removed from the pending set (others got the rest)."""
        if not event_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.zrem(self.keys.pending_labels(), event_id)
            removed = await pipe.execute()
        return await self.read_snapshots([e for e, r in zip(event_ids, removed, strict=True) if r])

    async def mark_assumed_legitimate(self, event_ids: Sequence[str], snapshots: Mapping[str, Snapshot]) -> None:
        """Flag snapshots as learned-as-legitimate (kept for a late chargeback) and stop waiting for them.

        ``XX``: a label that took the snapshot meanwhile wins; nothing is recreated.
        """
        if not event_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id, snapshot in snapshots.items():
                pipe.set(self.keys.snapshot(event_id), snapshot.learned_as_legitimate().to_bytes(),
                         xx=True, keepttl=True)
            pipe.zrem(self.keys.pending_labels(), *event_ids)
            await pipe.execute()

    async def apply_merchant_updates(self, updates: Sequence[tuple[str, MerchantUpdate]]) -> None:
        """Label counters of merchants named by their pseudonyms (as decision-time snapshots keep them).
        A snapshot from before the current pseudonym key names a merchant no state is kept for: skipped."""
        batch = WriteBatch()
        for pseudonym, update in updates:
            if not self.keys.pseudonyms.made(pseudonym):
                continue
            self._update_merchant_key(batch, self.keys.merchant_of(pseudonym), update)
        await self.commit(batch)
