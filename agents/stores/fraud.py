"""Redis state of the fraud path: one pipelined read and one atomic write per batch of events.

Why a Lua script for the write: the decision record of an event_id, the user state, the
merchant counters and the label snapshot must land together or not at all, and only if

- the worker still owns the input partitions: each partition's owner records, when it is given
  the partition, the consumer-group generation and its own id; a batch that another worker read
  in an older generation (it was paused past its session timeout and resumed after its partitions
  moved) is fenced: nothing is written, and the caller drops that partition's messages (its new
  owner reads them again) and commits the rest. A worker is never fenced by itself (a batch it read before
  a rebalance that kept its partitions), and a newer claim always replaces an older one (also
  after the group itself was recreated with generations starting again);
- no other worker decided the same event_id meanwhile (a redelivery after a crash);
- the user blobs are still the ones the batch read (compare-and-set on each blob's version, its
  SHA-1: two writers of one user -- an API call mid-rebalance, a Kafka key that is not the
  user -- would otherwise lose one update). On a conflict the caller reloads and redoes.

The script checks all three first and then applies every command, atomically, in one round trip.
It also takes any label parked for a decided event, also one parked after the batch read its state
(the label path parks with a script of its own, so one of the two always sees the other): the
label's snapshot is marked taken by it, as a label joined later would take it, and the label stays
(out of the parked set) with the snapshot, so that a redelivery of the transaction -- the worker
died before the learn example reached the broker -- learns it again rather than losing it.

The label path joins a label to its snapshot, or parks it, in one script too. Taking a snapshot is
keyed by the label's input offset rather than deleting it: a redelivered label (the worker died
before the label's offset was committed) is joined again, never lost; its counters move once.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis, RedisCluster

from agents.stores.keys import RedisKeys, declared
from schemas import internal_json
from schemas.internal_records import LabelledExample, Snapshot, StoredDecision
from schemas.settings import Settings
from streams.fraud_features import MerchantUpdate, UserState

PARKED_GRACE_S = 86400  # a parked label's key outlives its wait, so the expiry sweep still finds it

_GUARDED_APPLY = """
local req = cjson.decode(ARGV[1])
local fenced = {}
for i, fence in ipairs(req.f) do
  local owner = redis.call('GET', fence[1])
  if owner then
    local generation, member = string.match(owner, '^(%d+):(.*)$')
    if member ~= fence[3] and tonumber(generation) > fence[2] then fenced[#fenced + 1] = i - 1 end
  end
end
if #fenced > 0 then return {'fenced', fenced} end
local taken, stale = {}, {}
for i, key in ipairs(req.g) do
  if redis.call('EXISTS', key) == 1 then taken[#taken + 1] = i - 1 end
end
for i, cas in ipairs(req.v) do
  local current = redis.call('GET', cas[1])
  if (current and redis.sha1hex(current) or '') ~= cas[2] then stale[#stale + 1] = i - 1 end
end
if #taken > 0 or #stale > 0 then return {'conflict', taken, stale} end
for _, cmd in ipairs(req.c) do redis.call(unpack(cmd)) end
local late = {}
for _, l in ipairs(req.l) do
  local label = redis.call('GET', l[2])
  if label then
    local ok, doc = pcall(cjson.decode, label)
    redis.call('SET', l[3], ok and type(doc) == 'table' and doc.src or 'parked', 'EX', req.t)
    redis.call('ZREM', req.p, l[1])
    redis.call('ZREM', req.q, l[1])
    late[#late + 1] = l[1]
    late[#late + 1] = label
  end
end
return {'ok', late}
"""

# Per label: {event_id, snapshot key, consumed key, decision key, parked key, label source, parked value}
_JOIN_LABELS = """
local req = cjson.decode(ARGV[1])
local out = {}
for _, l in ipairs(req.l) do
  local snapshot = redis.call('GET', l[2])
  local consumer = redis.call('GET', l[3])
  if snapshot and (not consumer or consumer == l[6]) then
    if not consumer then
      redis.call('SET', l[3], l[6], 'EX', req.ttl)
      redis.call('ZREM', req.p, l[1])
    end
    out[#out + 1] = 'learn'
    out[#out + 1] = snapshot
  elseif snapshot or redis.call('EXISTS', l[4]) == 1 then
    out[#out + 1] = 'gone'
    out[#out + 1] = consumer or ''
  else
    local parked = redis.call('GET', l[5])
    if not parked then
      redis.call('SET', l[5], l[7], 'EX', req.keep)
      redis.call('ZADD', req.q, req.now, l[1])
    end
    out[#out + 1] = 'parked'
    out[#out + 1] = parked or ''
  end
end
return out
"""


# Per update: [once key, command, command, ...]: the commands run only with the once key's first SET.
_APPLY_ONCE = """
local req = cjson.decode(ARGV[1])
for _, u in ipairs(req.u) do
  if redis.call('SET', u[1], '1', 'NX', 'EX', req.ttl) then
    for i = 2, #u do redis.call(unpack(u[i])) end
  end
end
return #req.u
"""


@dataclass
class LoadedState:
    users: dict[str, UserState | None]
    merchants: dict[str, dict[str, float]]
    decisions: dict[str, StoredDecision | None]
    early_labels: dict[str, bool]  # event_id -> is_fraud, of labels parked before the decision (or taken by it)
    user_versions: dict[str, str] = field(default_factory=dict)  # user -> SHA-1 of the blob read ("" none)
    letters: dict[str, bytes] = field(default_factory=dict)  # input offset -> the dead letter it became


@dataclass
class WriteBatch:
    """Commands for one atomic commit: ``guards`` are decision keys that must not exist yet,
    ``fences`` (owner key, generation) partitions the batch must still own, ``versions`` (user key,
    SHA-1) blobs that must be unchanged, ``late`` decisions that take their label if it is parked."""

    guards: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    fences: list[list] = field(default_factory=list)
    versions: list[list[str]] = field(default_factory=list)
    late: list[list[str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.commands)


@dataclass
class CommitResult:
    fenced: list[tuple[str, int]] = field(default_factory=list)  # (topic, partition) owned by another worker now
    taken: list[int] = field(default_factory=list)  # guards already decided by another writer
    stale: list[int] = field(default_factory=list)  # versions another writer changed
    late_labels: dict[str, bool] = field(default_factory=dict)  # parked labels the commit took

    @property
    def committed(self) -> bool:
        return not self.fenced and not self.taken and not self.stale


@dataclass(frozen=True)
class ParkedLabel:
    """A label waiting for its transaction, with what its ``label_expired`` dead letter needs."""

    is_fraud: bool
    source: str  # topic/partition/offset of the label
    raw: bytes

    def to_bytes(self) -> bytes:
        return internal_json.dumps({"y": self.is_fraud, "src": self.source, "r": self.raw.decode()})

    @classmethod
    def from_bytes(cls, raw: bytes) -> ParkedLabel:
        if raw in (b"0", b"1"):  # parked by an earlier release
            return cls(raw == b"1", "", b"")
        doc = internal_json.loads(raw)
        return cls(bool(doc["y"]), doc["src"], doc["r"].encode())


@dataclass(frozen=True)
class Joined:
    """What joining a label found: its snapshot (``learn``), ``gone`` (decided, snapshot taken by
    ``by`` or expired), or ``parked`` (``by``: the label parked before, if any)."""

    kind: str
    snapshot: Snapshot | None = None
    by: str = ""


class FraudStore:
    def __init__(self, redis: Redis, keys: RedisKeys, settings: Settings, member: str | None = None) -> None:
        self.redis = redis
        self.member = member or uuid.uuid4().hex[:12]  # this worker, as a partition owner
        self.keys = keys
        self.settings = settings
        self._apply = redis.register_script(_GUARDED_APPLY)
        self._join = redis.register_script(_JOIN_LABELS)
        self._once = redis.register_script(_APPLY_ONCE)

    async def load(self, user_ids: Iterable[str], merchant_ids: Iterable[str],
                   event_ids: Iterable[str], sources: Iterable[str] = ()) -> LoadedState:
        """State for a batch, and the dead letters recorded for its input offsets (``sources``)."""
        users, merchants, events = list(dict.fromkeys(user_ids)), list(dict.fromkeys(merchant_ids)), list(
            dict.fromkeys(event_ids))
        sources = list(sources)
        # MGET per key family: three commands instead of one per key (client-side packing and
        # parsing of thousands of GETs was a quarter of the batch's CPU).
        families = [[self.keys.user(u) for u in users], [self.keys.decision(e) for e in events],
                    [self.keys.early_label(e) for e in events], [self.keys.dead_letter(s) for s in sources]]
        if not sources:
            families.pop()  # MGET of no keys is an error
        hashes = [self.keys.merchant(m) for m in merchants]
        if isinstance(self.redis, RedisCluster):
            # A cluster pipeline refuses MGET; each family is one slot, so each MGET is one command.
            *replies, merchant_raw = await asyncio.gather(
                *(self.redis.mget(keys) for keys in families), self._hgetall(hashes))
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for keys in families:
                    pipe.mget(keys)
                for key in hashes:
                    pipe.hgetall(key)
                replies = await pipe.execute()
            replies, merchant_raw = replies[:len(families)], replies[len(families):]
        user_raw, decision_raw, label_raw, letter_raw = [*replies, []][:4]
        return LoadedState(
            users={u: UserState.from_bytes(r) if r else None for u, r in zip(users, user_raw, strict=True)},
            merchants={m: {k.decode(): float(v) for k, v in h.items()}
                       for m, h in zip(merchants, merchant_raw, strict=True)},
            decisions={e: StoredDecision.from_bytes(r) if r else None
                       for e, r in zip(events, decision_raw, strict=True)},
            early_labels={e: ParkedLabel.from_bytes(r).is_fraud for e, r in zip(events, label_raw, strict=True)
                          if r is not None},
            user_versions={u: hashlib.sha1(r).hexdigest() if r else "" for u, r in zip(users, user_raw, strict=True)},
            letters={s: r for s, r in zip(sources, letter_raw, strict=True) if r is not None},
        )

    async def _hgetall(self, keys: Sequence[str]) -> list[dict]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return await pipe.execute()

    # -- building a commit -------------------------------------------------------------------
    def record_decision(self, batch: WriteBatch, stored: StoredDecision, snapshot: Snapshot) -> None:
        """Store the decision and keep ``snapshot`` for its label (taken by the commit when the
        label is parked already)."""
        event_id = stored.decision.event_id
        key = self.keys.decision(event_id)
        s = self.settings
        batch.guards.append(key)
        batch.commands.append(["SET", key, stored.to_bytes().decode(), "EX", str(s.decision_ttl_s)])
        batch.commands.append(["SET", self.keys.snapshot(event_id), snapshot.to_bytes().decode(), "EX",
                               str(s.snapshot_ttl_s)])
        batch.commands.append(["ZADD", self.keys.pending_labels(), repr(float(snapshot.ts)), event_id])
        batch.late.append([event_id, self.keys.early_label(event_id), self.keys.label_consumed(event_id)])

    def record_dead_letter(self, batch: WriteBatch, source: str, letter: bytes) -> None:
        """Keep the dead letter ``source`` (an input offset) became, in the batch's commit."""
        batch.commands.append(["SET", self.keys.dead_letter(source), letter.decode(), "EX",
                               str(self.settings.decision_ttl_s)])

    async def settle_dead_letter(self, source: str, letter: bytes) -> bytes:
        """Record the dead letter ``source`` became outside a commit; the one recorded first stands
        (returned)."""
        earlier = await self.redis.set(self.keys.dead_letter(source), letter, nx=True, get=True,
                                       ex=self.settings.decision_ttl_s)
        return earlier or letter

    def fence(self, batch: WriteBatch, topic: str, partition: int, generation: int) -> None:
        """Write only if this worker still owns ``partition`` of ``topic`` as of ``generation``."""
        batch.fences.append([self.keys.partition_owner(topic, partition), generation, self.member, topic, partition])

    def hold_until_published(self, batch: WriteBatch, event_id: str, committed_at: float) -> None:
        """An HTTP decision is answered before the broker acknowledges it; until then its event_id
        waits in the unpublished set, written in the same atomic commit as the decision."""
        batch.commands.append(["ZADD", self.keys.unpublished(), repr(float(committed_at)), event_id])

    def save_user(self, batch: WriteBatch, user_id: str, state: UserState, read_version: str) -> None:
        """Replace the user's blob, if it is still the one read (``read_version``: its SHA-1, "" none)."""
        key = self.keys.user(user_id)
        batch.versions.append([key, read_version])
        batch.commands.append(["SET", key, state.to_bytes().decode(), "EX", str(self.settings.state_ttl_s)])

    def update_merchant(self, batch: WriteBatch, merchant_id: str, update: MerchantUpdate) -> None:
        self._update_merchant_key(batch, self.keys.merchant(merchant_id), update)

    def _update_merchant_key(self, batch: WriteBatch, key: str, update: MerchantUpdate) -> None:
        for name, delta in update.increments.items():
            batch.commands.append(["HINCRBYFLOAT", key, name, repr(float(delta))])
        if update.deletions:
            batch.commands.append(["HDEL", key, *update.deletions])
        if update.increments:
            batch.commands.append(["EXPIRE", key, str(self.settings.state_ttl_s)])

    async def commit(self, batch: WriteBatch) -> CommitResult:
        """Apply ``batch`` atomically, or nothing when it is fenced or conflicts (see above)."""
        if not batch:
            return CommitResult()
        payload = internal_json.dumps({"f": batch.fences, "g": batch.guards, "v": batch.versions,
                                       "c": batch.commands, "l": batch.late, "p": self.keys.pending_labels(),
                                       "q": self.keys.parked_labels(), "t": self.settings.snapshot_ttl_s})
        keys = declared([*(f[0] for f in batch.fences), *batch.guards, *(v[0] for v in batch.versions),
                         *(c[1] for c in batch.commands), *(key for late in batch.late for key in late[1:]),
                         self.keys.pending_labels(), self.keys.parked_labels()])
        reply = await self._apply(keys=keys, args=[payload])
        kind = reply[0].decode()
        if kind == "fenced":
            return CommitResult(fenced=[(batch.fences[int(i)][3], batch.fences[int(i)][4]) for i in reply[1]])
        if kind == "conflict":
            return CommitResult(taken=[int(i) for i in reply[1]], stale=[int(i) for i in reply[2]])
        late = reply[1]
        return CommitResult(late_labels={late[i].decode(): ParkedLabel.from_bytes(late[i + 1]).is_fraud
                                         for i in range(0, len(late), 2)})

    async def claim_partitions(self, topic: str, partitions: Iterable[int], generation: int) -> None:
        """Record this worker, given ``partitions`` in ``generation``, as their owner: another
        worker's writes of batches it read in older generations are fenced from now on."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.set(self.keys.partition_owner(topic, partition), f"{generation}:{self.member}")
            await pipe.execute()

    # -- labels ------------------------------------------------------------------------------
    async def join_labels(self, labels: Sequence[tuple[str, str, ParkedLabel]], now: float) -> list[Joined]:
        """For each (event_id, label source, label to park): its snapshot, taken for this label
        source (the same source again gets it again: a redelivery); ``gone``; or parked (atomically
        with the decision commit's check for parked labels)."""
        if not labels:
            return []
        k = self.keys
        rows = [[e, k.snapshot(e), k.label_consumed(e), k.decision(e), k.early_label(e), src,
                 parked.to_bytes().decode()] for e, src, parked in labels]
        keys = declared([*(key for row in rows for key in row[1:5]), k.pending_labels(), k.parked_labels()])
        reply = await self._join(keys=keys, args=[internal_json.dumps({
            "l": rows, "p": k.pending_labels(), "q": k.parked_labels(), "now": now,
            "ttl": self.settings.snapshot_ttl_s, "keep": self.settings.snapshot_ttl_s + PARKED_GRACE_S})])
        out = []
        for i in range(0, len(reply), 2):
            kind, value = reply[i].decode(), reply[i + 1]
            if kind == "learn":
                out.append(Joined(kind, Snapshot.from_bytes(value)))
            elif kind == "parked" and value:
                out.append(Joined(kind, by=ParkedLabel.from_bytes(value).source))
            else:
                out.append(Joined(kind, by=value.decode() if value else ""))
        return out

    async def expired_parked(self, before: float, limit: int) -> dict[str, ParkedLabel]:
        """Labels parked before ``before`` whose transaction never came, claimed by this caller (ZREM)."""
        ids = [r.decode() for r in await self.redis.zrangebyscore(self.keys.parked_labels(), "-inf", before,
                                                                  start=0, num=limit)]
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=True) as pipe:
            for event_id in ids:
                pipe.zrem(self.keys.parked_labels(), event_id)
                pipe.getdel(self.keys.early_label(event_id))
            replies = await pipe.execute()
        claimed = zip(ids, replies[0::2], replies[1::2], strict=True)
        return {e: ParkedLabel.from_bytes(raw) for e, removed, raw in claimed if removed and raw is not None}

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

    async def taken_labels(self, event_ids: Sequence[str]) -> list[LabelledExample]:
        """The labels decision commits took for these decided events, with their snapshots: to be
        learned again (the learner learns a label once) after a redelivery or a commit reply lost."""
        if not event_ids:
            return []
        labels = await self.redis.mget([self.keys.early_label(e) for e in event_ids])  # MGET: not in a cluster pipeline
        snapshots = await self.redis.mget([self.keys.snapshot(e) for e in event_ids])
        return [LabelledExample(e, Snapshot.from_bytes(snapshot), ParkedLabel.from_bytes(label).is_fraud)
                for e, label, snapshot in zip(event_ids, labels, snapshots, strict=True) if label and snapshot]

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

    async def apply_merchant_updates(self, updates: Sequence[tuple[str, bool, str, MerchantUpdate]]) -> None:
        """Label counters of merchants named by their pseudonyms (as decision-time snapshots keep them),
        per (event_id, observed, merchant pseudonym, update): each label's once, atomically with a
        mark of it (labels come at least once). A snapshot from before the current pseudonym key
        names a merchant no state is kept for: skipped."""
        rows = []
        for event_id, observed, pseudonym, update in updates:
            if not self.keys.pseudonyms.made(pseudonym) or not update.increments and not update.deletions:
                continue
            batch = WriteBatch()
            self._update_merchant_key(batch, self.keys.merchant_of(pseudonym), update)
            rows.append([self.keys.label_counted(event_id, observed), *batch.commands])
        if rows:
            keys = declared(key for row in rows for key in (row[0], *(command[1] for command in row[1:])))
            await self._once(keys=keys, args=[internal_json.dumps({
                "u": rows, "ttl": self.settings.snapshot_ttl_s + PARKED_GRACE_S})])
