"""Structured logs: one JSON object a line on stderr, each carrying its event's stable ID."""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from pythonjsonlogger.msgspec import MsgspecFormatter

from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_HANDLER_NAME = "commerce-json"
"""Marks the handler this module installs, so configuring twice replaces it, never doubles it."""


def event_fields(event: LogEvent, **fields: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call for ``event``: its ID, its name and any fields of its own."""
    return {"event_id": event.id, "event": event.name, **fields}


class EventJsonFormatter(MsgspecFormatter):
    """Every line has ``time``, ``level``, ``logger``, ``event_id`` and ``message``.

    Encoded by msgspec, already the service's JSON library: at one line per request it keeps
    about a tenth more throughput than the standard library's encoder, measured.

    ``event_id`` is ``null`` for lines from libraries (waitress) that know no events; a
    record whose ``event`` is a ``LogEvent`` member is given that member's ID, so callers
    may pass either ``event_fields(...)`` or ``extra={"event": LogEvent.X}``.
    """

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            defaults={"event_id": None},
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        event = log_data.get("event")
        if isinstance(event, LogEvent):
            log_data["event_id"] = event.id
            log_data["event"] = event.name

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The fixed fields first, so that a person reading the raw stream finds them in place.
        head = {key: log_data.pop(key) for key in _LEADING if key in log_data}
        return {**head, **log_data}


_LEADING = ("time", "level", "logger", "event_id", "message")


class Throttle(logging.Filter):
    """Lets one record through per ``interval`` seconds and counts the ones it held back.

    waitress warns "Task queue depth is N" for every request that waits for a thread: under
    load that is one line per request, which buries everything else and costs CPU exactly
    when there is none to spare. One line every few seconds says the same.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._next = 0.0
        self._held = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._held += 1
                return False
            self._next = now + self._interval
            record.suppressed = self._held
            self._held = 0
            return True


THROTTLED_LOGGERS = {"waitress.queue": 5.0}


class BackgroundWriter(logging.Handler):
    """Formats a record in the thread that logs it; one thread of its own writes, in batches.

    With a line per request written by each request's thread, every line is a write() that
    hands the interpreter lock to another thread in mid-request; under load on two cores that
    cost about a third of the throughput (docs/loadtesting.md). The writer thread writes
    whatever lines have queued up in one call instead, so the cost falls as the load rises.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._writer = threading.Thread(
            target=self._write_batches, name="commerce-log-writer", daemon=True
        )
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record))
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Return once every line handed over so far has been written."""
        if self._writer.is_alive():
            self._lines.join()

    def close(self) -> None:
        if self._writer.is_alive():
            self._lines.put(None)
            self._writer.join(timeout=5)
        super().close()

    def _write_batches(self) -> None:
        done = False
        while not done:
            batch = [self._lines.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._lines.get_nowait())
            lines = [line for line in batch if line is not None]
            done = len(lines) < len(batch)
            try:
                if lines:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr is closed or gone: there is nowhere left to report it
            finally:
                for _ in batch:
                    self._lines.task_done()


def flush_logs() -> None:
    """Wait until every log line so far is written (the handler writes from its own thread)."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == _HANDLER_NAME:
            handler.flush()


def check_level(level: str) -> str:
    """The standard name of ``level``; ``Misconfigured`` unless it is one of ``LEVELS``."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise Misconfigured(
            f"COMMERCE_LOG_LEVEL is {level!r}; use one of {', '.join(LEVELS)} (default INFO)"
        )
    return name


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Send every logger's records at ``level`` or above to ``stream`` (stderr) as JSON lines.

    The lines are written by a thread of the handler's own: ``flush_logs()`` waits for it.
    """
    name = check_level(level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    handler = BackgroundWriter(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(EventJsonFormatter())
    root.addHandler(handler)
    root.setLevel(name)
    for logger_name, interval in THROTTLED_LOGGERS.items():
        logger = logging.getLogger(logger_name)
        for old in [f for f in logger.filters if isinstance(f, Throttle)]:
            logger.removeFilter(old)
        logger.addFilter(Throttle(interval))
    logging.captureWarnings(True)
