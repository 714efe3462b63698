"""Log format: text, or one JSON object per line (``STREAMSENSE_LOG_FORMAT=json``).

Errors about one message carry its topic, partition and offset as fields (see agents.messages).

>>> import logging
>>> record = logging.LogRecord("x", logging.WARNING, __file__, 1, "dead letter %s", ("validate",), None)
>>> record.topic, record.partition, record.offset = "transactions", 2, 17
>>> doc = json.loads(JsonFormatter().format(record))
>>> doc["message"], doc["level"], doc["topic"], doc["partition"], doc["offset"]
('dead letter validate', 'WARNING', 'transactions', 2, 17)
"""

from __future__ import annotations

import json
import logging
import time

FIELDS = ("topic", "partition", "offset", "stage")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        doc.update({f: getattr(record, f) for f in FIELDS if hasattr(record, f)})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def logging_config(log_format: str, level: str) -> dict:
    """A ``logging.config.dictConfig`` for the worker (Faust applies it when it starts)."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {
        "format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"handlers": ["default"], "level": level.upper()},
    }
