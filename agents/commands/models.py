"""`streamsense models list | promote VERSION | rollback`: the checkpoint registry, by hand.

Moving the ``latest`` pointer is what every worker follows within a second (agents.lifecycle);
the learner continues learning from the chosen version. Each move is published on model-events,
and a move that cannot be published is undone.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import time

from aiokafka.errors import KafkaError

from agents import clients
from agents.commands.io import started_producer
from agents.stores.checkpoints import RedisCheckpoints
from online_models.checkpoints import CheckpointRejected
from schemas.records import ModelEvent
from schemas.settings import Settings

ROLE = "fraud"


async def list_models(settings: Settings, out=sys.stdout) -> list[dict]:
    redis = clients.redis_client(settings)
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
    """Point every worker at version ``to`` (promote) or at the version before the current one (rollback).

    Done whole or not at all: the producer connects before the pointer moves (an unreachable Kafka
    moves nothing), and if publishing the move on model-events fails the pointer goes back.
    """
    producer = await started_producer(settings, nothing="moved")
    redis = clients.redis_client(settings)
    try:
        store = RedisCheckpoints.on_redis(redis, settings)
        current = await store.latest(ROLE)
        if rollback:
            older = [v for v in await store.versions(ROLE) if current is None or v < current]
            if not older:
                raise SystemExit("streamsense models: nothing older to roll back to")
            to = older[-1]
        try:
            header = await store.point_to(ROLE, to)  # refuses a version that does not verify
        except CheckpointRejected as exc:
            raise SystemExit(f"streamsense models: v{to} refused: {exc}") from None
        event = ModelEvent(event="rolled_back" if rollback else "promoted", role=ROLE, version=to,
                           model_version=header.get("model_version", "-"), previous_version=current,
                           by=f"{getpass.getuser()}@{socket.gethostname()}", at=time.time())
        try:
            await producer.send_and_wait(settings.topics.model_events, event.to_json(), key=ROLE.encode())
        except KafkaError as exc:
            undone = await store.point_back(ROLE, to, current)
            raise SystemExit(f"streamsense models: could not publish the move on {settings.topics.model_events} "
                             f"({exc}); " + (f"v{current} is served again" if undone else
                                             "the pointer had moved on since and is left as it is")) from None
    finally:
        await redis.aclose()
        await producer.stop()
    print(json.dumps(event.to_dict()))
    return event
