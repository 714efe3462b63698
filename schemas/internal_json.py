"""JSON for streamsense's own state and internal topics: Redis values (user state, decision
records, label snapshots, commit payloads) and learn examples.

orjson: compact, and about five times faster than ``json`` on float-heavy snapshots, which were
a fifth of the fraud path's CPU. Records other services read keep ``schemas.records.dumps``,
which refuses NaN; values here come from validated, finite inputs (orjson would write NaN as null).

>>> loads(dumps({"x": {"amount": 12.5, "n": 3}, "y": None}))
{'x': {'amount': 12.5, 'n': 3}, 'y': None}
>>> dumps({"a": [1, "b"]})
b'{"a":[1,"b"]}'
"""

from __future__ import annotations

import orjson

dumps = orjson.dumps
loads = orjson.loads
