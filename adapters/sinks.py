"""Where alerts go besides the outputs: a logger, a stream, or any callable.

A sink is any callable taking an ``Alert`` (the ``Sink`` port's ``emit`` is the
same call); a failing sink never stops a run (the runner ignores its errors).
"""

from __future__ import annotations

import logging
from typing import TextIO

from interlock.core.commands import Alert


class LogSink:
    """Alerts to the ``interlock.alerts`` logger: ERROR from severity 8, else WARNING."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("interlock.alerts")

    def __call__(self, alert: Alert) -> None:
        level = logging.ERROR if alert.severity >= 8 else logging.WARNING
        self.logger.log(level, "%s (severity %d, action %s)%s: %s", alert.kind, alert.severity,
                        alert.action, f" [{alert.call_id}]" if alert.call_id else "", alert.message)

    emit = __call__


class StreamSink:
    """Alerts as plain lines on a stream (what ``interlock run`` shows on stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, alert: Alert) -> None:
        where = f" {alert.call_id}" if alert.call_id else ""
        print(f"ALERT {alert.kind} severity {alert.severity} -> {alert.action}{where}: {alert.message}",
              file=self.stream, flush=True)

    emit = __call__
