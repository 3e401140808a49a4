"""Every kind of log event has a stable ID, so logs can be searched and alerted on by ID.

``LogEvent`` is the enumeration (ID, level, fields); ``event_log(name)`` is the one facade
every call site logs through: it takes the event first, so a line cannot be logged without
one, and the event decides the level. docs/logging.md lists every event and what to do when
it appears; tests/core/test_events.py fails when the document and this enumeration differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

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
    SERVICE_STARTING = ("CM1001", INFO, ("threads", "scheme", "connection_limit"))
    SERVICE_LISTENING = ("CM1002", INFO, ("url",))
    SERVICE_STOPPED = ("CM1003", INFO, ("signal", "drained"))
    DRAINING = ("CM1004", INFO, ("signal", "in_flight"))
    CONNECTION_LIMIT_LOWERED = ("CM1005", WARNING, ("connection_limit", "requested"))
    QUEUE_BACKLOG = ("CM1006", WARNING, ("depth", "max_depth", "suppressed"))
    # 2xxx: requests
    REQUEST_COMPLETED = ("CM2001", INFO, ("path", "status", "duration_ms"))
    REQUEST_FAILED = ("CM2002", ERROR, ("path", "error"))
    CLIENT_ERROR = ("CM2003", WARNING, ("error", "undeclared"))
    SLOW_REQUEST = ("CM2004", WARNING, ("path", "status", "duration_ms", "threshold_ms"))
    RATE_LIMITED = ("CM2005", INFO, ("retry_after",))
    IDEMPOTENT_REPLAY = ("CM2006", INFO, ("original_status",))
    # 3xxx: storage
    STORAGE_OPENED = ("CM3001", INFO, ("scheme", "isolation"))
    STORAGE_UNAVAILABLE = ("CM3002", WARNING, ("path", "error"))
    TRANSACTION_RETRIED = ("CM3003", INFO, ("attempt", "delay"))
    MIGRATION_APPLIED = ("CM3004", INFO, ("revision_from", "revision_to"))
    # 4xxx: plugins
    PLUGIN_LOADED = ("CM4001", INFO, ("plugin",))
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
    # 9xxx: lines the service did not write itself
    LIBRARY_MESSAGE = ("CM9001", None)

    @property
    def id(self) -> str:
        return str(self.value)


REQUEST_FIELDS = ("request_id", "method", "route", "tenant", "trace_id", "span_id")
"""Fields any event may carry: the request's, bound in ``core.context`` (or passed)."""


listeners: list[Callable[[LogEvent, Mapping[str, Any]], None]] = []
"""Called with every event logged through the facade and its fields, whatever the log level
(a metrics plugin counts retries, refusals, adjustments here). Register once at start-up; a
listener must be cheap, must not raise and must not log."""


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
        if self.logger.isEnabledFor(level):
            self.logger.log(
                level,
                message,
                *args,
                exc_info=exc_info,
                extra={"event": event, **fields},
                stacklevel=2,
            )

    def enabled(self, event: LogEvent) -> bool:
        """Whether a line of ``event`` would be written: to skip costly fields when not."""
        return self.logger.isEnabledFor(event.level if event.level is not None else INFO)


def event_log(name: str) -> EventLog:
    """The facade every module of the service logs through (``name`` as ``getLogger``'s)."""
    return EventLog(name)
