"""The JSON log lines ``serve`` writes: fixed fields, event ids, a throttle for noisy libraries."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any

import pytest

from commerce.core import context
from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent
from commerce.entrypoints.cli import build_parser
from commerce.entrypoints.config import Settings
from commerce.entrypoints.logs import (
    QueueDepth,
    Throttle,
    check_format,
    configure_logging,
    event_fields,
    flush_logs,
)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    flush_logs()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_log_line_is_json_with_time_level_logger_event_id_and_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logging.getLogger("commerce.test").info(
        "listening on %s", "x", extra=event_fields(LogEvent.SERVICE_LISTENING, port=8000)
    )
    (line,) = _lines(stream)
    assert list(line)[:5] == ["time", "level", "logger", "event_id", "message"]
    assert line["event_id"] == "CM1002"
    assert line["event"] == "SERVICE_LISTENING"
    assert line["message"] == "listening on x"
    assert line["level"] == "INFO"
    assert line["port"] == 8000
    assert line["time"].endswith("Z")  # RFC 3339, UTC


def test_a_line_from_a_library_is_a_library_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logging.getLogger("waitress").warning("something")
    (line,) = _lines(stream)
    assert line["event_id"] == "CM9001"
    assert line["event"] == "LIBRARY_MESSAGE"
    assert line["logger"] == "waitress"
    assert line["level"] == "WARNING"


def test_an_event_member_passed_as_extra_gives_its_id() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logging.getLogger("commerce.test").info("x", extra={"event": LogEvent.SERVICE_STOPPED})
    (line,) = _lines(stream)
    assert line["event_id"] == "CM1003"
    assert line["event"] == "SERVICE_STOPPED"


def test_records_below_the_level_are_left_out() -> None:
    stream = io.StringIO()
    configure_logging("warning", stream)
    logging.getLogger("commerce.test").info("quiet")
    logging.getLogger("commerce.test").warning("loud")
    assert [line["message"] for line in _lines(stream)] == ["loud"]


def test_configuring_twice_writes_each_line_once() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", first)
    configure_logging("INFO", second)
    logging.getLogger("commerce.test").info("once")
    flush_logs()
    assert first.getvalue() == ""
    assert len(_lines(second)) == 1


def test_the_throttle_lets_one_record_through_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    throttle = Throttle(5.0, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        return logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1, "m", None, None)

    first = record()
    assert throttle.filter(first)
    assert getattr(first, "suppressed", None) == 0
    assert not throttle.filter(record())
    assert not throttle.filter(record())
    now[0] += 5.0
    later = record()
    assert throttle.filter(later)
    assert getattr(later, "suppressed", None) == 2


def test_the_log_level_comes_from_commerce_log_level() -> None:
    assert Settings.from_env({"COMMERCE_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert Settings.from_env({}).log_level == "INFO"


def test_lines_logged_from_many_threads_are_all_written_whole() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logger = logging.getLogger("commerce.test")

    def log_many(n: int) -> None:
        for i in range(200):
            logger.info("line %d-%d", n, i)

    threads = [threading.Thread(target=log_many, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages = {line["message"] for line in _lines(stream)}
    assert messages == {f"line {n}-{i}" for n in range(4) for i in range(200)}


def test_the_bound_request_fields_are_on_every_line_library_lines_too() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    with context.bound(request_id="r-1", route="/chain", tenant="acme"):
        logging.getLogger("sqlalchemy.engine").warning("slow query")
        logging.getLogger("commerce.test").info("x", extra=event_fields(LogEvent.RATE_LIMITED))
    logging.getLogger("commerce.test").info("after")
    first, second, after = _lines(stream)
    for line in (first, second):
        assert (line["request_id"], line["route"], line["tenant"]) == ("r-1", "/chain", "acme")
    assert first["event_id"] == "CM9001"
    assert second["event_id"] == "CM2005"
    assert "request_id" not in after


def test_a_providers_fields_are_merged_into_each_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    context.providers.append(lambda: {"trace_id": "t" * 32, "span_id": "s" * 16})
    try:
        logging.getLogger("commerce.test").info("traced")
    finally:
        context.providers.pop()
    (line,) = _lines(stream)
    assert line["trace_id"] == "t" * 32
    assert line["span_id"] == "s" * 16


def test_console_lines_are_for_a_person() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream, log_format="console")
    with context.bound(request_id="r-2"):
        logging.getLogger("commerce.test").info(
            "listening on %s", "x", extra=event_fields(LogEvent.SERVICE_LISTENING, url="http://h")
        )
    flush_logs()
    (line,) = stream.getvalue().splitlines()
    assert " INFO    CM1002 SERVICE_LISTENING listening on x  " in line
    assert line.endswith("request_id=r-2 url=http://h")
    assert not line.startswith("{")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_console_on_a_terminal_and_json_otherwise() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    configure_logging("INFO", terminal, log_format="auto")
    logging.getLogger("commerce.test").info("hello")
    flush_logs()
    assert "CM9001 LIBRARY_MESSAGE hello" in terminal.getvalue()
    configure_logging("INFO", pipe, log_format="auto")
    logging.getLogger("commerce.test").info("hello")
    assert _lines(pipe)[0]["message"] == "hello"


def test_the_log_format_comes_from_commerce_log_format_or_the_option() -> None:
    assert Settings.from_env({"COMMERCE_LOG_FORMAT": "Console"}).log_format == "console"
    assert Settings.from_env({}).log_format == "auto"
    assert build_parser().parse_args(["--log-format", "json", "plugins"]).log_format == "json"
    assert build_parser().parse_args(["serve", "--log-format", "console"]).log_format == "console"
    assert check_format("JSON") == "json"
    with pytest.raises(Misconfigured, match="COMMERCE_LOG_FORMAT"):
        check_format("xml")


def test_waitress_queue_depth_warnings_become_one_event_with_the_depth() -> None:
    now = [100.0]
    depth = QueueDepth(5.0, clock=lambda: now[0])

    def warning(n: int) -> logging.LogRecord:
        return logging.LogRecord(
            "waitress.queue", logging.WARNING, __file__, 1, "Task queue depth is %d", (n,), None
        )

    first = warning(3)
    assert depth.filter(first)
    assert first.event is LogEvent.QUEUE_BACKLOG  # type: ignore[attr-defined]
    assert (first.depth, first.max_depth, first.suppressed) == (3, 3, 0)  # type: ignore[attr-defined]
    assert not depth.filter(warning(9))
    assert not depth.filter(warning(4))
    now[0] += 5.0
    later = warning(2)
    assert depth.filter(later)
    assert (later.depth, later.max_depth, later.suppressed) == (2, 9, 2)  # type: ignore[attr-defined]
    assert later.getMessage() == "2 requests wait for a worker thread"


def test_the_queue_depth_event_is_written_as_json() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logging.getLogger("waitress.queue").warning("Task queue depth is %d", 7)
    logging.getLogger("waitress.queue").warning("Task queue depth is %d", 8)
    (line,) = _lines(stream)
    assert line["event_id"] == "CM1006"
    assert line["depth"] == 7


def test_lines_wait_for_the_writer_and_keep_their_order() -> None:
    from commerce.entrypoints.logs import BackgroundWriter, EventJsonFormatter

    stream = io.StringIO()
    writer = BackgroundWriter(stream, interval=3600)  # it would not wake in this test
    writer.setFormatter(EventJsonFormatter())
    logger = logging.getLogger("commerce.test.writer")
    logger.propagate = False
    logger.addHandler(writer)
    try:
        for n in range(50):
            logger.warning("line %d", n)
        assert stream.getvalue() == ""  # handed over, not yet written
        writer.flush()
        assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
            f"line {n}" for n in range(50)
        ]
        writer.close()
        logger.warning("after close")  # nothing drains any more: written at once
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "after close"
    finally:
        logger.removeHandler(writer)
        logger.propagate = True


def test_an_exception_and_a_value_json_cannot_hold_are_written() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        logging.getLogger("commerce.test").exception(
            "failed", extra=event_fields(LogEvent.REQUEST_FAILED, path="/x", error=object())
        )
    (line,) = _lines(stream)
    assert line["event_id"] == LogEvent.REQUEST_FAILED.id
    assert "RuntimeError: kaput" in line["exc_info"]
    assert line["error"].startswith("<object object")


def _facade_line(stream: io.StringIO, logger: str = "commerce.test.short") -> dict[str, Any]:
    from commerce.core.events import event_log

    context.clear()
    context.bind(request_id="r-1", tenant="t1", route="/stores/{store_id}")
    try:
        event_log(logger)(
            LogEvent.REQUEST_COMPLETED,
            "%s %s %d %.1fms",
            "GET",
            "/stores/1",
            200,
            1.25,
            path="/stores/1",
            status=200,
            duration_ms=1.25,
            tenant="not-this-one",  # a bound field wins over nothing; a field over the bound
        )
    finally:
        context.clear()
    (line,) = _lines(stream)
    return line


@pytest.fixture
def only_our_handler() -> Any:
    """The root logger with the service's handler alone, as in ``serve`` (pytest adds its own
    capturing handlers to the root for every test, and the short way steps aside for them)."""
    root = logging.getLogger()
    saved = list(root.handlers)
    yield root
    root.handlers[:] = saved


def _keep_only_ours(root: logging.Logger) -> None:
    root.handlers[:] = [h for h in root.handlers if h.get_name() == "commerce-json"]


def test_the_facades_short_way_writes_the_line_the_formatter_would(
    only_our_handler: logging.Logger,
) -> None:
    from commerce.core import events

    stream = io.StringIO()
    configure_logging("INFO", stream)
    _keep_only_ours(only_our_handler)
    writer = events.line_writer()
    assert writer is not None
    taken: list[bool] = []

    def spy(*args: Any) -> bool:
        assert writer is not None
        taken.append(writer(*args))
        return taken[-1]

    events.set_line_writer(spy)
    try:
        short = _facade_line(stream)
        events.set_line_writer(None)
        stream.seek(0)
        stream.truncate()
        usual = _facade_line(stream)
    finally:
        events.set_line_writer(writer)
    assert taken == [True]
    assert short.pop("time").endswith("Z")
    assert usual.pop("time").endswith("Z")
    assert list(short) == list(usual)  # same keys, same order
    assert short == usual
    assert short["message"] == "GET /stores/1 200 1.2ms"
    assert short["tenant"] == "not-this-one"
    assert short["request_id"] == "r-1"


def test_the_short_way_steps_aside_for_another_handler_or_a_filter(
    only_our_handler: logging.Logger,
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    _keep_only_ours(only_our_handler)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    root = logging.getLogger()
    root.addHandler(keep)
    try:
        line = _facade_line(stream)
    finally:
        root.removeHandler(keep)
    assert line["event_id"] == "CM2001"
    assert [r.getMessage() for r in seen] == ["GET /stores/1 200 1.2ms"]

    dropped = logging.getLogger("commerce.test.filtered")
    dropped.addFilter(lambda record: False)
    try:
        from commerce.core.events import event_log

        stream.seek(0)
        stream.truncate()
        event_log("commerce.test.filtered")(LogEvent.SERVICE_LISTENING, "x", url="u")
        assert _lines(stream) == []
    finally:
        dropped.filters.clear()


def test_console_lines_do_not_take_the_short_way() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream, log_format="console")
    from commerce.core.events import event_log

    event_log("commerce.test.console")(LogEvent.SERVICE_LISTENING, "listening on %s", "u", url="u")
    flush_logs()
    text = stream.getvalue()
    assert "CM1002" in text
    assert "listening on u" in text
    assert not text.lstrip().startswith("{")
