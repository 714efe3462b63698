"""`streamsense models list | promote VERSION | rollback`: the checkpoint registry, by hand.

Moving the ``latest`` pointer is what every worker follows within a second (agents.lifecycle);
the learner continues learning from the chosen version. Each move is published on model-events.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import time

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from agents.stores.checkpoints import RedisCheckpoints
from online_models.checkpoints import CheckpointRejected
from schemas.records import ModelEvent
from schemas.settings import Settings
from streams.app import kafka_client_options

ROLE = "fraud"


async def list_models(settings: Settings, out=sys.stdout) -> list[dict]:
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        store = RedisCheckpoints.on_redis(redis, settings)
        latest, rows = await store.latest(ROLE), []
        for version in await store.versions(ROLE):
            try:
                _, header = await store.load(ROLE, version)
                status = "verified"
            except CheckpointRejected as exc:
                header, status = {"version": version}, f"refused: {exc}"
            rows.append({**header, "status": status, "serving": version == latest})
        for row in rows:
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.get("created_at", 0)))
            out.write(f"{'*' if row['serving'] else ' '} v{row['version']:<5} {row.get('model_version', '-'):<22} "
                      f"{created}  {row['status']}\n")
        return rows
    finally:
        await redis.aclose()


async def move(settings: Settings, *, to: int | None = None, rollback: bool = False) -> ModelEvent:
    """Point every worker at version ``to`` (promote) or at the version before the current one (rollback)."""
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        store = RedisCheckpoints.on_redis(redis, settings)
        current = await store.latest(ROLE)
        if rollback:
            older = [v for v in await store.versions(ROLE) if current is None or v < current]
            if not older:
                raise SystemExit("streamsense models: nothing older to roll back to")
            to = older[-1]
        try:
            await store.point_to(ROLE, to)  # refuses a version that does not verify
        except CheckpointRejected as exc:
            raise SystemExit(f"streamsense models: v{to} refused: {exc}") from None
        _, header = await store.load(ROLE, to)
    finally:
        await redis.aclose()
    event = ModelEvent(event="rolled_back" if rollback else "promoted", role=ROLE, version=to,
                       model_version=header.get("model_version", "-"), previous_version=current,
                       by=f"{getpass.getuser()}@{socket.gethostname()}", at=time.time())
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.model_events, event.to_json(), key=ROLE.encode())
    finally:
        await producer.stop()
    print(json.dumps(event.to_dict()))
    return event
