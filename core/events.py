"""Every kind of log event has a stable ID, so logs can be searched and alerted on by ID.

``LogEvent`` is the enumeration (ID, level, fields); ``event_log(name)`` is the one facade
every call site logs through: it takes the event first, so a line cannot be logged without
one, and the event decides the level. docs/logging.md lists every event and what to do when
it appears; tests/core/test_events.py fails when the document and this enumeration differ.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Protocol

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR


class LogEvent(Enum):
    """``value`` is the event's stable ID; the name is for people. IDs are never reused.

    Each member also carries the ``level`` it is logged at (``None``: the library's own) and
    the ``fields`` a line of it may carry besides the ones every line has.
    """

    level: int | None
    fields: tuple[str, ...]

    def __new__(cls, event_id: str, level: int | None, fields: tuple[str, ...] = ()) -> LogEvent:
        member = object.__new__(cls)
        member._value_ = event_id
        member.level = level
        member.fields = fields
        return member

    # 1xxx: the process
    SERVICE_STARTING = ("CM1001", INFO, ("threads", "scheme", "connection_limit", "workers"))
    SERVICE_LISTENING = ("CM1002", INFO, ("url",))
    SERVICE_STOPPED = ("CM1003", INFO, ("signal", "drained"))
    DRAINING = ("CM1004", INFO, ("signal", "in_flight"))
    CONNECTION_LIMIT_LOWERED = ("CM1005", WARNING, ("connection_limit", "requested"))
    QUEUE_BACKLOG = ("CM1006", WARNING, ("depth", "max_depth", "suppressed"))
    WORKER_STARTED = ("CM1007", INFO, ("worker", "pid"))
    WORKER_EXITED = ("CM1008", WARNING, ("worker", "pid", "exit_code", "signal", "restart_in"))
    WORKER_FAILED = ("CM1009", ERROR, ("worker", "error"))
    # 2xxx: requests
    REQUEST_COMPLETED = ("CM2001", INFO, ("path", "status", "duration_ms"))
    REQUEST_FAILED = ("CM2002", ERROR, ("path", "error"))
    CLIENT_ERROR = ("CM2003", WARNING, ("error", "undeclared"))
    SLOW_REQUEST = ("CM2004", WARNING, ("path", "status", "duration_ms", "threshold_ms"))
    RATE_LIMITED = ("CM2005", INFO, ("retry_after",))
    IDEMPOTENT_REPLAY = ("CM2006", INFO, ("original_status",))
    RATE_LIMIT_STORE_UNAVAILABLE = ("CM2007", WARNING, ("store", "error"))
    RATE_LIMIT_STORE_RESTORED = ("CM2008", INFO, ("store",))
    RATE_LIMIT_PER_PROCESS = ("CM2009", WARNING, ("store", "workers"))
    # 3xxx: storage
    STORAGE_OPENED = ("CM3001", INFO, ("scheme", "isolation"))
    STORAGE_UNAVAILABLE = ("CM3002", WARNING, ("path", "error"))
    TRANSACTION_RETRIED = ("CM3003", INFO, ("attempt", "delay"))
    MIGRATION_APPLIED = ("CM3004", INFO, ("revision_from", "revision_to"))
    # 4xxx: plugins
    PLUGIN_LOADED = ("CM4001", INFO, ("plugin",))
    SPANS_NOT_EXPORTED = ("CM4002", WARNING, ("reason", "spans", "error"))
    # 5xxx: authentication and keys
    AUTH_NONE_IN_USE = ("CM5001", WARNING, ())
    AUTH_REFUSED = ("CM5002", INFO, ("reason",))
    ROLE_REFUSED = ("CM5003", INFO, ("needed", "role", "subject"))
    TOKEN_REJECTED = ("CM5004", DEBUG, ("authenticator", "reason"))
    API_KEY_CREATED = ("CM5005", INFO, ("key_id", "tenant", "role"))
    API_KEY_REVOKED = ("CM5006", INFO, ("key_id", "tenant"))
    API_KEY_USE_NOT_RECORDED = ("CM5007", WARNING, ("key_id", "error"))
    # 6xxx: inventory
    INVENTORY_ADJUSTED = ("CM6001", INFO, ("store_id", "items", "actor"))
    ADJUSTMENT_REFUSED = ("CM6002", INFO, ("store_id", "items", "actor", "short_items"))
    LEVEL_SET = ("CM6003", INFO, ("store_id", "item_id", "quantity", "actor"))
    CAS_CONFLICT = ("CM6004", INFO, ("store_id", "item_id", "conflict", "path"))
    # 7xxx: feature flags
    FLAG_EVALUATED = ("CM7001", DEBUG, ("flag", "reason", "rule"))
    FEATURE_DISABLED = ("CM7002", INFO, ("flag", "reason", "rule"))
    FLAGS_LOADED = ("CM7003", INFO, ("file", "flags"))
    FLAGS_UNKNOWN = ("CM7004", WARNING, ("file", "unknown"))
    FLAGS_RELOAD_FAILED = ("CM7005", WARNING, ("file", "error"))
    # 9xxx: lines the service did not write itself
    LIBRARY_MESSAGE = ("CM9001", None)

    @property
    def id(self) -> str:
        return str(self.value)


REQUEST_FIELDS = ("request_id", "method", "route", "tenant", "trace_id", "span_id")
"""Fields any event may carry: the request's, bound in ``core.context`` (or passed)."""


EVENT_FIELDS = "event_fields"
"""The record attribute that names an event's own fields (the formatter writes them)."""


listeners: list[Callable[[LogEvent, Mapping[str, Any]], None]] = []
"""Called with every event logged through the facade and its fields, whatever the log level
(a metrics plugin counts retries, refusals, adjustments here). Register once at start-up; a
listener must be cheap, must not raise and must not log."""


class LineWriter(Protocol):
    """Writes an event's line straight to where the log handler would have put it, skipping
    the ``logging.LogRecord`` and the handler chain; ``False`` when it cannot (another handler
    or filter is in the way, a message it does not format), and the line then goes the usual
    way. Installed by the log configuration (``entrypoints/logs.py``) with
    ``set_line_writer``; its line must be the one the installed formatter writes."""

    def __call__(
        self,
        logger: logging.Logger,
        level: int,
        event: LogEvent,
        message: str,
        args: tuple[object, ...],
        fields: Mapping[str, Any],
    ) -> bool: ...


_line_writer: LineWriter | None = None


def set_line_writer(writer: LineWriter | None) -> None:
    """Install (or, with ``None``, remove) the writer the facade tries first."""
    global _line_writer
    _line_writer = writer


def line_writer() -> LineWriter | None:
    """The writer ``set_line_writer`` installed, if any."""
    return _line_writer


class EventLog:
    """A logger that logs events: ``log(LogEvent.X, "message %s", arg, field=value)``.

    The level is the event's; ``fields`` go on the record (the log formatter writes them, a
    counting handler may read ``record.event``). Never pass a secret as a field or argument.
    """

    __slots__ = ("logger",)

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def __call__(
        self, event: LogEvent, message: str, *args: object, exc_info: Any = None, **fields: Any
    ) -> None:
        for listener in listeners:
            listener(event, fields)
        level = event.level if event.level is not None else INFO
        logger = self.logger
        if logger.isEnabledFor(level):
            writer = _line_writer
            if (
                writer is not None
                and exc_info is None
                and writer(logger, level, event, message, args, fields)
            ):
                return
            # The record is made here rather than by ``Logger.log``, whose search of the stack
            # for the caller cost a tenth of a request line: the caller is the frame above.
            frame = sys._getframe(1)
            caller = frame.f_code, frame.f_lineno
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif exc_info is True:
                exc_info = sys.exc_info()
            record = logger.makeRecord(
                logger.name,
                level,
                caller[0].co_filename,
                caller[1],
                message,
                args,
                exc_info,
                caller[0].co_name,
                extra={"event": event, EVENT_FIELDS: tuple(fields), **fields},
            )
            logger.handle(record)

    def enabled(self, event: LogEvent) -> bool:
        """Whether a line of ``event`` would be written: to skip costly fields when not."""
        return self.logger.isEnabledFor(event.level if event.level is not None else INFO)


def event_log(name: str) -> EventLog:
    """The facade every module of the service logs through (``name`` as ``getLogger``'s)."""
    return EventLog(name)
