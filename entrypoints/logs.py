"""Logs on stderr: one JSON object a line, or readable console lines, each with its event's ID.

Every line, the service's and the libraries' (waitress, SQLAlchemy, warnings), goes through
one formatter, which adds the request's fields bound in ``core.context`` (request id, method,
route, tenant; a tracing plugin's trace and span ids). ``--log-format`` or
``COMMERCE_LOG_FORMAT`` chooses ``json`` or ``console``; unset (``auto``), a terminal gets
console lines and anything else JSON.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import msgspec

from commerce.core import context, events
from commerce.core.errors import Misconfigured
from commerce.core.events import EVENT_FIELDS, LogEvent

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("auto", "json", "console")

_HANDLER_NAME = "commerce-json"
"""Marks the handler this module installs, so configuring twice replaces it, never doubles it."""


def event_fields(event: LogEvent, **fields: Any) -> dict[str, Any]:
    """The ``extra=`` of a plain ``logging`` call for ``event`` and any fields of its own.

    The service's own code logs through ``core.events.event_log`` instead; this is for code
    that holds a ``logging.Logger`` (a plugin, a test).
    """
    return {"event": event, **fields}


def _event_of(record: logging.LogRecord) -> LogEvent:
    """The record's event; a line from a library (no event of ours) is ``LIBRARY_MESSAGE``."""
    event = getattr(record, "event", None)
    if isinstance(event, LogEvent):
        return event
    if isinstance(event, str):  # event_fields(...) gives the name
        with contextlib.suppress(KeyError):
            return LogEvent[event]
    return LogEvent.LIBRARY_MESSAGE


_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "event",
    "taskName",
    EVENT_FIELDS,
}


class EventJsonFormatter(logging.Formatter):
    """Every line has ``time``, ``level``, ``logger``, ``event_id``, ``message`` and ``event``,
    then the event's own fields and the request's bound ones (``core.context.current()``).

    Encoded by msgspec, already the service's JSON library (a value it cannot encode is
    written as its ``str``). The formatter is the service's own rather than a generic JSON
    formatter's: it knows which attributes of a record are an event's fields (the facade
    names them), where a generic one inspects every attribute of every record; at a line
    per request that halved the cost of a line (docs/logging.md).

    A line from a library (waitress, SQLAlchemy) that knows no events is ``CM9001``
    ``LIBRARY_MESSAGE``, its own extra attributes written as fields; a record whose
    ``event`` is a ``LogEvent`` member is given that member's ID, so callers may pass either
    ``event_fields(...)`` or ``extra={"event": ...}``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._encode = msgspec.json.Encoder(enc_hook=str).encode

    def format(self, record: logging.LogRecord) -> str:
        event = _event_of(record)
        data = _head(record.created, record.levelname, record.name, event, record.getMessage())
        attributes = vars(record)
        names = attributes.get(EVENT_FIELDS)
        if names is None:  # not from the facade: every attribute a plain record lacks
            names = [key for key in attributes if key not in _RECORD_ATTRIBUTES]
        for key in names:
            data.setdefault(key, attributes[key])
        for key, value in context.current().items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return self._encode(data).decode()

    def event_line(
        self,
        created: float,
        levelname: str,
        logger: str,
        event: LogEvent,
        message: str,
        fields: Mapping[str, Any],
    ) -> str:
        """The line ``format`` writes for a facade's record of these values, made without
        the record (``BackgroundWriter.write_line``)."""
        data = _head(created, levelname, logger, event, message)
        for key, value in fields.items():
            data.setdefault(key, value)
        for key, value in context.current().items():
            data.setdefault(key, value)
        return self._encode(data).decode()


def _head(
    created: float, levelname: str, logger: str, event: LogEvent, message: str
) -> dict[str, Any]:
    """The fields every JSON line starts with, in their order."""
    return {
        "time": _utc(created),
        "level": levelname,
        "logger": logger,
        "event_id": event.id,
        "message": message,
        "event": event.name,
    }


_utc_second = (-1, "")


def _utc(created: float) -> str:
    """RFC 3339 in UTC with microseconds; the part down to the second is kept between calls."""
    global _utc_second
    second = int(created)
    if _utc_second[0] != second:
        _utc_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_utc_second[1]}.{int((created - second) * 1_000_000):06d}Z"


class ConsoleFormatter(logging.Formatter):
    """One line a person reads: time, level, event ID and name, message, then ``key=value``.

    The same fields as the JSON lines (the request's bound fields, the event's own); a
    traceback follows on the lines below, as Python prints it.
    """

    def format(self, record: logging.LogRecord) -> str:
        event = _event_of(record)
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = dict(context.current())
        fields.update(
            (key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        )
        if event is LogEvent.LIBRARY_MESSAGE:
            fields.setdefault("logger", record.name)
        extras = " ".join(f"{key}={_plain(value)}" for key, value in fields.items())
        line = (
            f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {event.id} {event.name} "
            f"{record.getMessage()}"
        )
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            line = f"{line}\n{record.exc_text}"
        return line


def _plain(value: object) -> str:
    text = str(value)
    return repr(text) if (not text or " " in text) else text


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


class QueueDepth(Throttle):
    """waitress's "Task queue depth is N" warnings as one ``QUEUE_BACKLOG`` event per interval.

    The line that goes through carries the ``depth`` now, the ``max_depth`` seen since the
    last line, and how many warnings it stands for (``suppressed``).
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(interval, clock)
        self._max_depth = 0

    def filter(self, record: logging.LogRecord) -> bool:
        depth = _depth_of(record)
        self._max_depth = max(self._max_depth, depth)
        if not super().filter(record):
            return False
        record.event = LogEvent.QUEUE_BACKLOG
        record.depth = depth
        record.max_depth, self._max_depth = self._max_depth, 0
        record.msg, record.args = "%d requests wait for a worker thread", (depth,)
        return True


def _depth_of(record: logging.LogRecord) -> int:
    args = record.args
    if isinstance(args, tuple) and args and isinstance(args[0], int):
        return args[0]
    return 0


THROTTLED_LOGGERS: dict[str, tuple[type[Throttle], float]] = {
    "waitress.queue": (QueueDepth, 5.0),
    # The span processor warns "Queue full, dropping Span." once per span it drops: at a
    # few thousand spans a second, a flood exactly when the exporter cannot keep up.
    "opentelemetry.sdk._shared_internal": (Throttle, 5.0),
}


class BackgroundWriter(logging.Handler):
    """Formats a record in the thread that logs it; one thread of its own writes, in batches.

    With a line per request written by each request's thread, every line is a write() that
    hands the interpreter lock to another thread in mid-request; under load on two cores that
    cost about a third of the throughput (docs/loadtesting.md). Handing each line to a writer
    thread through a queue cost almost as much: the queue's lock and the wake-up of the
    writer, per line. So a line is only appended to a deque (atomic, no lock, no wake-up) and
    the writer wakes every ``interval`` seconds and writes whatever has gathered in one call;
    a line is on its way within that interval. ``flush()`` writes at once.
    """

    def __init__(self, stream: TextIO, interval: float = 0.1) -> None:
        super().__init__()
        self.stream = stream
        self._interval = interval
        self._lines: collections.deque[str] = collections.deque()
        self._write_lock = threading.Lock()
        self._stopped = threading.Event()
        self._writer = threading.Thread(
            target=self._write_periodically, name="commerce-log-writer", daemon=True
        )
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        if self._stopped.is_set():  # after close(): nothing else drains the deque
            self._drain()

    def write_line(
        self,
        logger: logging.Logger,
        level: int,
        event: LogEvent,
        message: str,
        args: tuple[object, ...],
        fields: Mapping[str, Any],
    ) -> bool:
        """The facade's short way (``core.events.LineWriter``): the line ``format`` would
        write for the record, made and queued without the record, when this handler is the
        only one the record would reach and nothing else would look at it; ``False``
        otherwise, and the record is made and handled as usual.

        A request line through ``logging`` cost about 110,000 instructions, a third of a
        read's (docs/logging.md): the record's dozen attributes, the walk to the root's
        handlers, the handler's lock. The line is the same; tests/core/test_logs.py compares.
        """
        formatter = self.formatter
        if type(formatter) is not EventJsonFormatter or level < self.level or self.filters:
            return False
        root = logging.root
        handlers = root.handlers
        if len(handlers) != 1 or handlers[0] is not self or logger.filters:
            return False
        node: logging.Logger | None = logger
        while node is not root:
            if node is None or node.handlers or not node.propagate:
                return False
            node = node.parent
        try:
            if args:
                if len(args) == 1 and isinstance(args[0], Mapping):
                    return False  # logging's "%(name)s" form: the record's own rules
                message = str(message) % args
            line = formatter.event_line(
                time.time(), logging.getLevelName(level), logger.name, event, message, fields
            )
        except Exception:
            return False  # the usual way reports it (handleError)
        self._lines.append(line)
        if self._stopped.is_set():
            self._drain()
        return True

    def flush(self) -> None:
        """Return once every line handed over so far has been written."""
        self._drain()

    def close(self) -> None:
        if events.line_writer() == self.write_line:
            events.set_line_writer(None)
        if not self._stopped.is_set():
            self._stopped.set()
            self._writer.join(timeout=5)
            self._drain()
        super().close()

    def _write_periodically(self) -> None:
        while not self._stopped.wait(self._interval):
            self._drain()

    def _drain(self) -> None:
        # One drainer at a time, so that lines are written in the order they were logged.
        with self._write_lock:
            lines = []
            with contextlib.suppress(IndexError):
                while True:
                    lines.append(self._lines.popleft())
            if lines:
                self._write(lines)

    def _write(self, lines: list[str]) -> None:
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stderr is closed or gone: there is nowhere left to report it


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


def check_format(log_format: str) -> str:
    """``json``, ``console`` or ``auto``; ``Misconfigured`` for anything else."""
    name = log_format.strip().lower() or "auto"
    if name not in FORMATS:
        raise Misconfigured(
            f"the log format is {log_format!r}; use one of {', '.join(FORMATS)} "
            "(--log-format or COMMERCE_LOG_FORMAT; default auto: console on a terminal, "
            "JSON otherwise)"
        )
    return name


def formatter_for(log_format: str, stream: TextIO) -> logging.Formatter:
    """The formatter of ``log_format``; ``auto`` is console lines on a terminal, else JSON."""
    name = check_format(log_format)
    if name == "auto":
        isatty = getattr(stream, "isatty", None)
        try:
            name = "console" if isatty is not None and isatty() else "json"
        except (OSError, ValueError):
            name = "json"
    return ConsoleFormatter() if name == "console" else EventJsonFormatter()


def configure_logging(level: str, stream: TextIO | None = None, log_format: str = "json") -> None:
    """Send every logger's records at ``level`` or above to ``stream`` (stderr), formatted as
    ``log_format`` says (``json``, ``console`` or ``auto``).

    The lines are written by a thread of the handler's own: ``flush_logs()`` waits for it.
    """
    name = check_level(level)
    stream = stream if stream is not None else sys.stderr
    formatter = formatter_for(log_format, stream)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    handler = BackgroundWriter(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(name)
    events.set_line_writer(handler.write_line)
    for logger_name, (kind, interval) in THROTTLED_LOGGERS.items():
        logger = logging.getLogger(logger_name)
        for old in [f for f in logger.filters if isinstance(f, Throttle)]:
            logger.removeFilter(old)
        logger.addFilter(kind(interval))
    logging.captureWarnings(True)
