"""Logging of the service process: plain text or one JSON object per line, probes kept quiet.

`configure_logging` sets the root logger (our modules) and uvicorn's loggers to
the same format, so `VGGSVC_LOG_FORMAT=json` gives a log a collector can parse
line by line, access log included. Probe and scrape requests (`/healthz`,
`/readyz`, `/metrics`, `/v2/health/*`) are dropped from the access log unless
`VGGSVC_LOG_PROBES` is on: a kubelet probing every few seconds would bury
everything else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

from service.drain import PROBE_PATHS

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (+ exception, access fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            # uvicorn's access record: (client, method, path, http version, status)
            client, method, path, _, status = args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ProbeFilter(logging.Filter):
    """Drops access-log records of probe and scrape requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            path = str(args[2]).split("?", 1)[0]
            return path not in PROBE_PATHS
        return True


# A query parameter whose name says it holds a secret (key, token, secret, password, auth).
SECRET_PARAMETER = re.compile(r"(?i)([?&][^=&?#]*(?:key|token|secret|passw|auth)[^=&#]*=)[^&#]*")
REDACTED = "REDACTED"


class RedactSecretsFilter(logging.Filter):
    """Replaces secret-looking query values in access-log paths by REDACTED.

    The admin key belongs in the Authorization header, but a client that puts it in
    the URL (`?key=...`) must not get it written to every log collector downstream.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and "?" in str(args[2]):
            path = SECRET_PARAMETER.sub(rf"\1{REDACTED}", str(args[2]))
            record.args = (args[0], args[1], path, args[3], args[4])
        return True


def configure_logging(level: str, fmt: str = "text", log_probes: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = []  # propagate to the root handler: one format for everything
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.filters[:] = [RedactSecretsFilter()] + ([] if log_probes else [ProbeFilter()])
