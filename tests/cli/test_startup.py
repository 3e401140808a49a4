"""Start-up: every bad option or setting is one line and status 2; options after the verb work."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from commerce.entrypoints.cli import build_parser, main
from tests.cli.test_serve import serving


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on: a setting wrongly accepted fails the start there,
    with another message, instead of leaving the test serving for ever."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--host", "999.1.1.1"], "not an address to listen on: '999.1.1.1'"),
        (["serve", "--host", ""], "an IPv4 address such as 127.0.0.1"),
        (["serve", "--port", "-1"], "0 to 65535"),
        (["serve", "--port", "65536"], "0 to 65535"),
        (["serve", "--threads", "-2"], "a whole number of 1 or more"),
        (["serve", "--threads", "many"], "a whole number of 1 or more"),
        (["serve", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
    ids=["host", "empty host", "negative port", "port too large", "threads", "threads", "option"],
)
def test_a_bad_argument_is_one_line_saying_what_is_accepted_and_status_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    line = _one_line(capsys)
    assert line.startswith("commerce serve: error: argument") or "unrecognized" in line
    assert says in line


def test_a_host_name_this_machine_resolves_is_accepted() -> None:
    args = build_parser().parse_args(["serve", "--host", "localhost"])
    assert args.host == "localhost"


@pytest.mark.parametrize(
    ("argv", "database"),
    [
        (["--database", "memory://", "serve"], "memory://"),
        (["serve", "--database", "memory://"], "memory://"),
        (["db", "upgrade", "--database", "sqlite:///x.db"], "sqlite:///x.db"),
        (["db", "--database", "sqlite:///x.db", "current"], "sqlite:///x.db"),
        (["keys", "list", "--tenant", "acme", "--database", "memory://"], "memory://"),
        (["--database", "memory://a", "tenants", "list", "--database", "memory://b"], "memory://b"),
        (["tenants", "list"], None),
    ],
)
def test_the_database_option_is_taken_before_or_after_the_verb(
    argv: list[str], database: str | None
) -> None:
    assert build_parser().parse_args(argv).database == database


def test_a_database_given_after_the_verb_is_the_one_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--database", f"sqlite:///{tmp_path}/after.db"]) == 0
    assert (tmp_path / "after.db").exists()
    assert "upgraded" in capsys.readouterr().out


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == "commerce 0.1.0"


# -- settings -------------------------------------------------------------------------------

BAD_SETTINGS = [
    (variable, value)
    for variable in (
        "COMMERCE_MAX_BODY_BYTES",
        "COMMERCE_IDEMPOTENCY_TTL_HOURS",
        "COMMERCE_CONNECTION_LIMIT",
        "COMMERCE_IDLE_TIMEOUT",
        "COMMERCE_READ_TIMEOUT",
        "COMMERCE_MAX_HEADER_BYTES",
        "COMMERCE_RATE_LIMIT",
        "COMMERCE_RATE_BURST",
    )
    for value in ("0", "-1", "many", "1.5e3")
] + [
    (variable, value)
    for variable in ("COMMERCE_APIKEY_CACHE_SECONDS", "COMMERCE_APIKEY_TOUCH_SECONDS")
    for value in ("-1", "soon", "nan", "inf")
]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_stops_the_start_with_one_line_naming_it(
    variable: str,
    value: str,
    taken_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    if variable == "COMMERCE_RATE_BURST":
        monkeypatch.setenv("COMMERCE_RATE_LIMIT", "10/second")
    assert main(["serve", "--port", str(taken_port)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"commerce: error: {variable}")


SQL_SETTINGS = [
    ("COMMERCE_DB_POOL_SIZE", "0", "must be a positive integer"),
    ("COMMERCE_DB_POOL_SIZE", "-3", "must be a positive integer"),
    ("COMMERCE_DB_POOL_SIZE", "ten", "must be a positive integer"),
    ("COMMERCE_DB_RETRY_ATTEMPTS", "0", "must be a positive integer"),
    ("COMMERCE_DB_MAX_OVERFLOW", "-1", "must be a non-negative integer"),
    ("COMMERCE_DB_STATEMENT_TIMEOUT", "-1", "must be a non-negative number"),
    ("COMMERCE_DB_STATEMENT_TIMEOUT", "nan", "must be a non-negative number"),
    ("COMMERCE_DB_CONNECT_TIMEOUT", "forever", "must be a non-negative number"),
    ("COMMERCE_DB_POOL_TIMEOUT", "inf", "must be a non-negative number"),
]


@pytest.mark.parametrize(("variable", "value", "says"), SQL_SETTINGS)
def test_a_bad_database_setting_stops_the_start_with_one_line_naming_it(
    variable: str,
    value: str,
    says: str,
    tmp_path: Path,
    taken_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COMMERCE_DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv(variable, value)
    assert main(["serve", "--port", str(taken_port)]) == 2
    assert _one_line(capsys) == f"commerce: error: {variable} {says}, got {value!r}"


def test_a_tenant_setting_that_is_no_tenant_id_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMERCE_TENANT", "Acme Corp")
    assert main(["tenants", "list"]) == 2
    assert _one_line(capsys).startswith("commerce: error: COMMERCE_TENANT: 'Acme Corp'")


def test_a_jwt_secret_under_32_bytes_refuses_to_start(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMERCE_AUTH", "jwt")
    monkeypatch.setenv("COMMERCE_JWT_SECRET", "s3cret")
    assert main(["serve", "--port", str(taken_port)]) == 2
    line = _one_line(capsys)
    assert "COMMERCE_JWT_SECRET is 6 bytes; it must be at least 32" in line
    assert "s3cret" not in line


def test_a_port_in_use_is_the_one_line_of_the_start(
    taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", str(taken_port)]) == 2
    assert _one_line(capsys).startswith(
        f"commerce: error: cannot listen on 127.0.0.1 port {taken_port}: "
    )


# -- SQLite in memory -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///file::memory:?x=1"])
@pytest.mark.parametrize("argv", [["db", "upgrade"], ["tenants", "list"], ["serve", "--demo"]])
def test_sqlite_in_memory_is_told_to_use_memory_or_a_file_not_to_migrate(
    url: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database", url, *argv]) == 2
    line = _one_line(capsys)
    assert "new and empty in every process" in line
    assert "memory://" in line
    assert "sqlite:///commerce.db" in line
    assert "db upgrade` can prepare" in line


# -- the demo key ---------------------------------------------------------------------------


def test_a_demo_on_a_port_in_use_makes_no_key(
    tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    assert main(["--database", url, "serve", "--demo", "--port", str(taken_port)]) == 2
    assert "cannot listen" in _one_line(capsys)
    with sqlite3.connect(tmp_path / "demo.db") as db:
        assert db.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)


def test_the_demo_key_the_banner_prints_works_once_the_port_is_bound(tmp_path: Path) -> None:
    with serving(tmp_path, database=f"sqlite:///{tmp_path}/demo.db") as server:
        assert server.key is not None
        status, _, chains = server.get("/chain")
    assert status == 200
    assert len(chains) == 3
