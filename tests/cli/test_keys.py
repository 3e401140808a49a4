"""``commerce tenants`` and ``commerce keys``: keys shown once, listed without secrets, revoked."""

from __future__ import annotations

from pathlib import Path

import pytest

from commerce.adapters.auth.apikeys import ApiKeyAuthenticator
from commerce.adapters.storage.sql import open_sql_storage
from commerce.core.apikeys import parse_api_key
from commerce.core.auth import Role
from commerce.core.errors import Unauthorized
from commerce.entrypoints.cli import main


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["--database", url, "db", "upgrade"]) == 0
    return url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _authenticate(url: str, token: str) -> tuple[str, str, Role]:
    storage = open_sql_storage(url)
    try:
        principal = ApiKeyAuthenticator(storage.api_keys, cache_seconds=0).authenticate(token)
        assert principal is not None
        return principal.tenant, principal.subject, principal.role
    finally:
        storage.close()


def test_tenants_are_created_once_and_listed(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "--database", database, "tenants", "create", "acme")[0] == 0
    status, _, err = _run(capsys, "--database", database, "tenants", "create", "acme")
    assert status == 2
    assert err.splitlines() == ["commerce: error: tenant acme already exists"]
    status, out, _ = _run(capsys, "--database", database, "tenants", "list")
    assert status == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["acme"]


def test_a_tenant_name_that_is_not_a_valid_id_is_refused_in_one_line(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(capsys, "--database", database, "tenants", "create", "Not Valid")
    assert status == 2
    assert len(err.splitlines()) == 1


def test_keys_create_prints_the_key_alone_on_stdout_and_it_authenticates(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "--database", database, "tenants", "create", "acme")
    status, out, err = _run(
        capsys, "--database", database, "keys", "create", "--tenant", "acme", "--role", "writer"
    )
    assert status == 0
    token = out.strip()
    assert out == token + "\n"
    parsed = parse_api_key(token)
    assert parsed is not None
    assert "once" in err
    assert parsed[1] not in err
    assert _authenticate(database, token) == ("acme", f"key:{parsed[0]}", Role.writer)


def test_a_key_is_a_reader_unless_another_role_is_asked_for(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "--database", database, "tenants", "create", "acme")
    _, out, _ = _run(capsys, "--database", database, "keys", "create", "--tenant", "acme")
    assert _authenticate(database, out.strip())[2] == Role.reader


def test_a_key_for_an_unknown_tenant_is_refused_in_one_line(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "--database", database, "keys", "create", "--tenant", "nope")
    assert status == 2
    assert out == ""
    assert err.splitlines() == ["commerce: error: tenant nope does not exist"]


def test_keys_list_shows_prefix_role_and_revocation_but_never_the_secret(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "--database", database, "tenants", "create", "acme")
    _, out, _ = _run(capsys, "--database", database, "keys", "create", "--tenant", "acme")
    token = out.strip()
    parsed = parse_api_key(token)
    assert parsed is not None
    prefix, secret = parsed
    status, listing, _ = _run(capsys, "--database", database, "keys", "list", "--tenant", "acme")
    assert status == 0
    header, row = listing.splitlines()
    assert header.split() == ["ID", "PREFIX", "ROLE", "CREATED", "LAST", "USED", "REVOKED"]
    key_id, shown_prefix, role, _, last_used, revoked = row.split()
    assert (shown_prefix, role, last_used, revoked) == (prefix, "reader", "-", "-")
    assert secret not in listing

    status, out, _ = _run(capsys, "--database", database, "keys", "revoke", key_id)
    assert status == 0
    assert secret not in out
    _, listing, _ = _run(capsys, "--database", database, "keys", "list", "--tenant", "acme")
    assert listing.splitlines()[1].split()[-1] != "-"
    with pytest.raises(Unauthorized):
        _authenticate(database, token)


def test_revoking_an_unknown_key_is_one_line_and_status_2(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(capsys, "--database", database, "keys", "revoke", "12345")
    assert status == 2
    assert err.splitlines() == ["commerce: error: API key 12345 does not exist"]


def test_keys_on_a_database_without_the_schema_say_to_run_db_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    status, _, err = _run(capsys, "--database", url, "keys", "list", "--tenant", "acme")
    assert status == 2
    assert "commerce db upgrade" in err
