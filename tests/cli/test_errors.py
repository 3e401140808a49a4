"""What the command line does with a bad configuration or bad arguments: one line, status 2."""

from __future__ import annotations

import socket

import pytest

from commerce.entrypoints.cli import main


def _stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_an_unknown_url_scheme_is_one_line_naming_the_schemes_that_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--database", "foo://x", "serve"]) == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("commerce: error:")
    assert "'foo'" in lines[0]
    assert "memory://" in lines[0]


def test_an_unknown_url_scheme_from_the_environment_is_refused_the_same_way(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "mongodb://localhost/x")
    assert main(["serve", "--demo"]) == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 1
    assert "'mongodb'" in lines[0]


def test_an_unknown_authenticator_is_one_line_naming_the_ones_that_exist(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMERCE_AUTH", "kerberos")
    assert main(["serve"]) == 2
    last = _stderr_lines(capsys)[-1]
    assert last.startswith("commerce: error:")
    assert "'kerberos'" in last
    assert "none" in last


def test_a_log_level_that_is_not_a_level_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMERCE_LOG_LEVEL", "loud")
    assert main(["serve"]) == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 1
    assert "COMMERCE_LOG_LEVEL" in lines[0]


def test_a_port_already_in_use_is_an_error_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(
        f"commerce: error: cannot listen on 127.0.0.1 port {port}"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-verb"],
        [],
        ["serve", "--port", "http"],
        ["serve", "--port", "70000"],
        ["serve", "--threads", "0"],
    ],
    ids=["unknown verb", "no verb", "port not a number", "port too large", "no threads"],
)
def test_bad_arguments_exit_with_status_2_and_one_line_pointing_to_the_help(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    [line] = _stderr_lines(capsys)
    assert line.startswith("commerce")
    assert ": error: " in line
    assert line.endswith("--help`)")
