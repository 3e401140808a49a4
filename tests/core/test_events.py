"""The event enumeration, its document, and the one facade every line is logged through."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from commerce.core import events
from commerce.core.events import REQUEST_FIELDS, LogEvent, event_log

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("core", "adapters", "plugins", "entrypoints")
DOC = ROOT / "docs" / "logging.md"

_ROW = re.compile(r"^\| (CM\d{4}) \| (\w+) \| ([^|]+) \| ([^|]*) \| ([^|]+) \|$")

# The modules that may hold a ``logging`` logger: the formatter and handlers, the facade,
# and serve's hold-and-replay of start-up records.
_MAY_USE_LOGGING = {
    Path("core/events.py"),
    Path("entrypoints/logs.py"),
    Path("entrypoints/cli/serve.py"),
}


def _documented() -> dict[str, tuple[str, str, tuple[str, ...], str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            event_id, name, level, fields, todo = (part.strip() for part in match.groups())
            assert event_id not in rows, f"{event_id} is listed twice in docs/logging.md"
            listed = tuple(f.strip() for f in fields.split(",") if f.strip())
            rows[event_id] = (name, level, listed, todo)
    return rows


def _level_name(event: LogEvent) -> str:
    return "as the library's" if event.level is None else logging.getLevelName(event.level)


def test_the_document_lists_every_event_with_its_name_level_and_fields() -> None:
    documented = _documented()
    expected = {event.id: (event.name, _level_name(event), event.fields) for event in LogEvent}
    assert {k: v[:3] for k, v in documented.items()} == expected


def test_every_documented_event_says_what_to_do() -> None:
    for event_id, (_, _, _, todo) in _documented().items():
        assert len(todo) > 10, f"{event_id} says nothing about what to do"


def test_ids_are_unique_and_well_formed() -> None:
    ids = [event.id for event in LogEvent]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"CM\d{4}", i) for i in ids)


def test_no_field_clashes_with_a_log_record_attribute() -> None:
    reserved = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
    for event in LogEvent:
        assert not reserved & set(event.fields), event
    assert not reserved & set(REQUEST_FIELDS)


def test_the_facade_logs_at_the_events_level_with_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = event_log("commerce.test")
    with caplog.at_level(logging.DEBUG, logger="commerce.test"):
        log(LogEvent.RATE_LIMITED, "limited %d", 3, retry_after=3)
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.event is LogEvent.RATE_LIMITED  # type: ignore[attr-defined]
    assert record.retry_after == 3  # type: ignore[attr-defined]
    assert record.getMessage() == "limited 3"
    assert record.filename == Path(__file__).name  # the caller's line, not the facade's


def test_the_facade_builds_no_record_below_the_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = event_log("commerce.test")
    with caplog.at_level(logging.INFO, logger="commerce.test"):
        log(LogEvent.TOKEN_REJECTED, "debug only", reason="x")
        assert not log.enabled(LogEvent.TOKEN_REJECTED)
    assert caplog.records == []


def test_listeners_hear_every_event_whatever_the_level(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[tuple[LogEvent, dict[str, object]]] = []
    events.listeners.append(lambda event, fields: heard.append((event, dict(fields))))
    try:
        with caplog.at_level(logging.ERROR, logger="commerce.test"):
            event_log("commerce.test")(LogEvent.AUTH_REFUSED, "refused", reason="not_accepted")
    finally:
        events.listeners.pop()
    assert heard == [(LogEvent.AUTH_REFUSED, {"reason": "not_accepted"})]
    assert caplog.records == []


def _sources() -> list[tuple[Path, ast.Module]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            found.append((relative, ast.parse(path.read_text(encoding="utf-8"))))
    return found


_LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def _is_get_logger(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "getLogger"
    )


def test_no_module_logs_but_through_the_facade() -> None:
    """No ``logging.info(...)``, ``getLogger(...).info(...)`` or ``log.info(...)`` on a
    logger from ``getLogger``: a module may get a logger to configure it (a level, a
    handler), never to write a line without an event."""
    offenders = []
    for path, tree in _sources():
        if path in _MAY_USE_LOGGING:
            continue
        loggers = {
            target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and _is_get_logger(node.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _LOG_METHODS
            ):
                continue
            owner = node.func.value
            if (
                _is_get_logger(owner)
                or (isinstance(owner, ast.Name) and owner.id in loggers)
                or (isinstance(owner, ast.Name) and owner.id == "logging")
            ):
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == [], "log through commerce.core.events.event_log: " + ", ".join(offenders)


def _event_calls() -> list[tuple[str, LogEvent, set[str]]]:
    """Every ``log(LogEvent.X, ..., field=...)`` call: where, which event, which fields."""
    calls = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id != "log" or not node.args:
                continue
            first = node.args[0]
            if (
                isinstance(first, ast.Attribute)
                and isinstance(first.value, ast.Name)
                and first.value.id == "LogEvent"
            ):
                fields = {k.arg for k in node.keywords if k.arg is not None}
                calls.append((f"{path}:{node.lineno}", LogEvent[first.attr], fields))
    return calls


def test_every_call_passes_only_the_fields_its_event_declares() -> None:
    calls = _event_calls()
    assert len(calls) > 20
    for where, event, fields in calls:
        undeclared = fields - set(event.fields) - set(REQUEST_FIELDS) - {"exc_info"}
        assert not undeclared, f"{where}: {event.name} does not declare {sorted(undeclared)}"


def test_every_event_is_logged_somewhere() -> None:
    used = {event for _, event, _ in _event_calls()}
    # Set by the log configuration rather than logged: waitress's warnings, libraries' lines.
    used |= {LogEvent.QUEUE_BACKLOG, LogEvent.LIBRARY_MESSAGE}
    assert set(LogEvent) - used == set()
