"""What `streamsense produce` needs from a topic's contract: the JSON type of each CSV column (from
the topic's JSON Schema, so an id such as ``00042`` stays the string it is) and the message key.

>>> from schemas.contracts import CONTRACTS
>>> by_topic = {c.topic: c for c in CONTRACTS}
>>> tx = by_topic["transactions"]
>>> row = {"event_id": "00042", "ts": "1795514400", "user_id": "123", "amount": "42.50", "channel": "app",
...        "features": '{"v1": 0.5}', "note": "7"}
>>> typed_record(row, column_types(tx))  # doctest: +NORMALIZE_WHITESPACE
{'event_id': '00042', 'ts': 1795514400, 'user_id': '123', 'amount': 42.5, 'channel': 'app',
 'features': {'v1': 0.5}, 'note': '7'}
>>> typed_record({"ts": "2026-11-24T10:00:00Z", "is_fraud": "true"}, column_types(by_topic["fraud-labels"]))
{'ts': '2026-11-24T10:00:00Z', 'is_fraud': True}
>>> message_key(tx, {"user_id": "123"}), message_key(by_topic["drift-signals"], {"target": "score", "name": "lr"})
('123', 'score/lr')
"""

from __future__ import annotations

import json
from dataclasses import fields

from schemas.contracts import CONTRACTS, Contract, load_schema
from schemas.settings import Settings, Topics

TRUE, FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def contract_for(settings: Settings, topic: str) -> Contract | None:
    """The contract of the topic configured under ``topic``'s name, if it is one of ours."""
    defaults = Topics()
    for f in fields(Topics):
        if getattr(settings.topics, f.name) == topic:
            return next((c for c in CONTRACTS if c.topic == getattr(defaults, f.name)), None)
    return None


def _types(prop: dict, defs: dict) -> set[str]:
    if "$ref" in prop:
        prop = defs[prop["$ref"].rsplit("/", 1)[1]]
    kinds = prop.get("type", [])
    found = {kinds} if isinstance(kinds, str) else set(kinds)
    for option in prop.get("oneOf", []) + prop.get("anyOf", []):
        found |= _types(option, defs)
    if "enum" in prop and not found:
        found = {"string" if isinstance(v, str) else "number" for v in prop["enum"] if v is not None}
    return found


def column_types(contract: Contract) -> dict[str, set[str]]:
    """Each property's JSON types (``$ref`` and ``oneOf`` followed)."""
    schema = load_schema(contract.schema_file)
    return {name: _types(prop, schema.get("$defs", {})) for name, prop in schema.get("properties", {}).items()}


def typed(cell: str, kinds: set[str]) -> object:
    """A CSV cell as the JSON value its column's types call for; left as text when it is none of them
    (the worker then says what is wrong with it, in a dead letter)."""
    text = cell.strip()
    if kinds & {"number", "integer"}:
        try:
            return int(text)
        except ValueError:
            try:
                return float(text) if "integer" not in kinds or "number" in kinds else cell
            except ValueError:
                pass
    if "boolean" in kinds and text.lower() in TRUE | FALSE:
        return text.lower() in TRUE
    if kinds & {"array", "object"} and text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return cell
    if "array" in kinds:
        return [part for part in text.split(";") if part]
    return cell


def typed_record(row: dict[str, str], types: dict[str, set[str]]) -> dict:
    """A CSV row (empty cells left out); a column the schema does not name stays text."""
    return {name: typed(cell, types.get(name, {"string"})) for name, cell in row.items() if cell != ""}


def message_key(contract: Contract, record: dict) -> str | None:
    """The documented key (``user_id``; ``target/name`` joins two fields), or None when the record
    lacks it or the key is not a field (a dead letter's original key)."""
    parts = [record.get(name) for name in contract.key.split("/")]
    if any(part is None or isinstance(part, dict | list) for part in parts):
        return None
    return "/".join(str(part) for part in parts)
