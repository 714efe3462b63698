"""How many examples a property test explores: all of them in `make test`; an eighth (at least ten) in
`make test-fast` (SS_TEST_FAST=1), which checks the same properties on fewer cases to answer in seconds.

>>> examples(400) if not FAST else 400
400
"""

from __future__ import annotations

import os

FAST = os.environ.get("SS_TEST_FAST") == "1"


def examples(full: int) -> int:
    return max(10, full // 8) if FAST else full
