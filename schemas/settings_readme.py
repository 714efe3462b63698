"""The README's settings table, generated from the settings themselves (names, defaults, secrets)
and schemas.settings_reference (meanings, ranges); tests/unit/test_settings.py keeps them equal.

>>> "| `STREAMSENSE_PARTITIONS` | `4` | 1 to 10000 |" in readme_table()
True
"""

from __future__ import annotations

from dataclasses import fields

from schemas.settings import ENV_PREFIX, SECRET_NAMES, SecretStr, Settings, Topics
from schemas.settings_reference import ABOUT


def default_text(value: object) -> str:
    """A default as an operator would write it in the environment.

    >>> default_text(2592000.0), default_text(0.02), default_text(False), default_text("")
    ('`2592000`', '`0.02`', '`false`', '')
    """
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Topics):
        return "the names below"
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`" if value != "" else ""


def readme_table() -> str:
    defaults = Settings()
    rows = ["| variable | default | range | meaning |", "|---|---|---|---|"]
    for f in fields(Settings):
        about = ABOUT[f.name]
        if f.name == "topics":
            variable = f"`{ENV_PREFIX}TOPIC_<NAME>`"
        else:
            variable = f"`{ENV_PREFIX}{f.name.upper()}`"
        if f.name in SECRET_NAMES:
            variable += f" (secret; or `{ENV_PREFIX}{f.name.upper()}_FILE`)"
        rows.append(f"| {variable} | {default_text(getattr(defaults, f.name))} | {about.bounds()} | {about.meaning} |")
    return "\n".join(rows)
