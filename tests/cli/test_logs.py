"""The JSON log lines ``serve`` writes: fixed fields, event ids, a throttle for noisy libraries."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any

from commerce.core.events import LogEvent
from commerce.entrypoints.config import Settings
from commerce.entrypoints.logs import Throttle, configure_logging, event_fields, flush_logs


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


def test_a_line_from_a_library_has_a_null_event_id() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logging.getLogger("waitress").warning("something")
    (line,) = _lines(stream)
    assert line["event_id"] is None
    assert line["logger"] == "waitress"


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
