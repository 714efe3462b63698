"""What the API tests share: an HTTP call (status, headers, JSON body), keys, transactions, and
reading back decisions and user state."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from agents.api.auth import new_api_key
from agents.commands.topics import create_topics
from agents.stores.keys import RedisKeys
from schemas.settings import SecretStr, Settings, Topics
from streams.fraud_features import UserState


def keys(*clients: tuple[str, str]) -> tuple[dict[str, str], str]:
    """Tokens by client name and the STREAMSENSE_API_KEYS value admitting them."""
    made = {client: new_api_key(client, scopes.split(",")) for client, scopes in clients}
    return {client: token for client, (token, _) in made.items()}, ",".join(entry for _, entry in made.values())


def api_settings(broker: str, redis_url: str, log_dir: Path, api_keys: str, **changes) -> Settings:
    """Settings of fresh topics (created here), consumer group and key prefix, admitting ``api_keys``;
    fresh random keys, so the workers run as in production (no development mode)."""
    suffix = uuid.uuid4().hex[:8]
    keys = {"pseudonym_key": SecretStr(secrets.token_urlsafe(32)), "signing_key": SecretStr(secrets.token_urlsafe(32))}
    settings = Settings(bootstrap_servers=broker, redis_url=SecretStr(redis_url), app_id=f"streamsense-api-{suffix}",
                        partitions=4, data_dir=str(log_dir / "data"),
                        topics=Topics(**{n: f"{n}-{suffix}" for n in Topics.__dataclass_fields__}),
                        api_keys=api_keys, **{**keys, **changes})
    asyncio.run(create_topics(settings))
    return settings


def call(port: int, method: str, path: str, token: str | None = None, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict, dict | None]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                     headers={**({"Authorization": f"Bearer {token}"} if token else {}),
                                              "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, dict(exc.headers), exc.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = {"raw": raw.decode(errors="replace")}
    return status, head, doc


def transaction(event_id: str, user: str = "u-api", amount: float = 25.0, **changes) -> dict:
    return {"event_id": event_id, "ts": time.time(), "user_id": user, "merchant_id": "m-api", "amount": amount,
            "currency": "EUR", "country": "FR", "channel": "app", **changes}


def post_score(port: int, doc: dict | bytes, token: str | None):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return call(port, "POST", "/v1/score", token, body)


async def decisions_for(settings: Settings, event_ids: set[str], at_least: int, timeout: float = 30.0) -> list[dict]:
    """Every decision naming these event ids, and every dead letter whose bytes name one, once
    ``at_least`` came and 2 s more passed."""
    t = settings.topics
    consumer = AIOKafkaConsumer(t.fraud_decisions, t.dead_letters, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found, deadline, quiet_until = [], time.monotonic() + timeout, None
    try:
        while time.monotonic() < (quiet_until or deadline):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    doc = json.loads(r.value)
                    if tp.topic == t.dead_letters:
                        raw = base64.b64decode(doc["raw_b64"]).decode(errors="replace")
                        found.extend({"dead_letter": doc["stage"], "raw": raw} for e in event_ids if e in raw)
                    elif doc["event_id"] in event_ids:
                        found.append(doc)
            if quiet_until is None and len(found) >= at_least:
                quiet_until = time.monotonic() + 2.0  # anything that would come after
    finally:
        await consumer.stop()
    return found


async def produce(settings: Settings, docs: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for doc in docs:
            await producer.send_and_wait(settings.topics.transactions, json.dumps(doc).encode(),
                                         key=doc["user_id"].encode())
    finally:
        await producer.stop()


async def transactions_counted(settings: Settings, user: str) -> int:
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        raw = await redis.get(RedisKeys.from_settings(settings).user(user))
        return UserState.from_bytes(raw).count if raw else 0
    finally:
        await redis.aclose()
