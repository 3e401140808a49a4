"""Every kind of log event has a stable ID, so logs can be searched and alerted on by ID."""

from __future__ import annotations

from enum import Enum


class LogEvent(Enum):
    """``value`` is the event's stable ID; the name is for people. IDs are never reused."""

    SERVICE_STARTING = "CM1001"
    SERVICE_LISTENING = "CM1002"
    SERVICE_STOPPED = "CM1003"
    REQUEST_COMPLETED = "CM2001"
    REQUEST_FAILED = "CM2002"
    CLIENT_ERROR = "CM2003"
    STORAGE_OPENED = "CM3001"
    STORAGE_UNAVAILABLE = "CM3002"
    TRANSACTION_RETRIED = "CM3003"
    PLUGIN_LOADED = "CM4001"
    AUTH_NONE_IN_USE = "CM5001"

    @property
    def id(self) -> str:
        return self.value
