"""The data side of a run: a client for the API, data made by the ``commerce`` verbs, and the
check that the data is still right afterwards.

- ``Api``: a small keep-alive JSON client that follows ``Link: rel="next"`` pages.
- ``prepare_sql``: a migrated database with generated data and an API key, made by the
  ``commerce`` verbs themselves (``db upgrade``, ``tenants create``, ``seed``, ``keys create``).
- ``ScratchDatabase``: a PostgreSQL database created for a run and dropped after it.
- ``check_ledger``: no negative level, and every level equals the sum of its ledger.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from _servers import LOOPBACK, SetupFailed

# -- the API, as a client ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


class Api:
    """A keep-alive HTTP/1.1 client of one server, with its API key."""

    def __init__(self, base_url: str, key: str | None = None, timeout: float = 60) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._host = parts.hostname or LOOPBACK
        self._port = parts.port or 80
        self._timeout = timeout
        self._headers = {"Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, self._timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException):
                # The server closed an idle keep-alive connection; one new try.
                self.close()
                if attempt == 2:
                    raise
                continue
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        reply = self.request(method, path, body)
        if reply.status != expect:
            raise SetupFailed(
                f"{method} {path}: {reply.status} {reply.data[:300].decode(errors='replace')}"
            )
        return reply.json()

    def pages(self, path: str) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list route, following ``Link: <…>; rel="next"``."""
        target: str | None = path
        while target:
            reply = self.request("GET", target)
            if reply.status != 200:
                raise SetupFailed(f"GET {target}: {reply.status} {reply.data[:300]!r}")
            yield reply.json()
            target = next_link(reply.headers.get("link"))

    def all(self, path: str) -> list[dict[str, Any]]:
        return [row for page in self.pages(path) for row in page]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def next_link(header: str | None) -> str | None:
    """The path of the ``rel="next"`` target of a ``Link`` header, if any."""
    for part in (header or "").split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params:
            link = urllib.parse.urlsplit(target.strip().strip("<>"))
            return f"{link.path}?{link.query}" if link.query else link.path
    return None


# -- data -------------------------------------------------------------------------------------


def cli(database_url: str, *argv: str) -> str:
    """Run one ``commerce`` verb in this process (as the console script would); its stdout."""
    from commerce.entrypoints.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["--database", database_url, *argv])
    if status != 0:
        raise SetupFailed(f"commerce {' '.join(argv)} exited {status}: {err.getvalue().strip()}")
    return out.getvalue()


@dataclass(frozen=True)
class Prepared:
    key: str
    seed_report: str
    """``commerce seed``'s summary line: counts, seconds, levels/s."""


def prepare_sql(
    database_url: str,
    tenant: str,
    *,
    chains: int,
    stores_per_chain: int,
    items: int,
    role: str = "writer",
) -> Prepared:
    """Migrate, create ``tenant``, seed it, and make a key, with the ``commerce`` verbs."""
    cli(database_url, "db", "upgrade")
    cli(database_url, "tenants", "create", tenant)
    report = cli(
        database_url,
        "seed",
        "--tenant",
        tenant,
        "--chains",
        str(chains),
        "--stores-per-chain",
        str(stores_per_chain),
        "--items",
        str(items),
    )
    key = cli(database_url, "keys", "create", "--tenant", tenant, "--role", role).strip()
    return Prepared(key=key, seed_report=report.strip())


class ScratchDatabase:
    """A PostgreSQL database made next to ``admin_url``'s, for one run, then dropped."""

    def __init__(self, admin_url: str, suffix: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        admin = sa.make_url(admin_url)
        self.name = f"{admin.database or 'postgres'}_{suffix}_{os.getpid()}"
        self.url = admin.set(database=self.name).render_as_string(hide_password=False)
        self._admin = sa.create_engine(admin, isolation_level="AUTOCOMMIT")

    def _run(self, statement: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(self._sa.text(statement))

    def __enter__(self) -> str:
        try:
            self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._run(f'CREATE DATABASE "{self.name}"')
        except self._sa.exc.SQLAlchemyError as exc:
            self._admin.dispose()
            raise SetupFailed(
                f"cannot create the scratch database {self.name} through "
                f"{self._admin.url.render_as_string(hide_password=True)}: {exc.orig or exc}"
            ) from None
        return self.url

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            self._admin.dispose()


# -- the data check ------------------------------------------------------------------------------


@dataclass
class LedgerCheck:
    """What ``check_ledger`` found."""

    stores: int = 0
    levels: int = 0
    entries: int = 0
    negative: list[dict[str, Any]] = field(default_factory=list)
    """Levels below zero."""
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    """Levels whose quantity is not the sum of their ledger's deltas, or not the
    ``quantity_after`` of their newest entry; and ledgers with no level that do not sum to 0."""

    @property
    def consistent(self) -> bool:
        return self.levels > 0 and not self.negative and not self.mismatched

    def as_dict(self) -> dict[str, Any]:
        return {
            "stores": self.stores,
            "levels": self.levels,
            "entries": self.entries,
            "negative": self.negative[:20],
            "negative_count": len(self.negative),
            "mismatched": self.mismatched[:20],
            "mismatched_count": len(self.mismatched),
            "consistent": self.consistent,
        }


def store_ids(api: Api) -> list[int]:
    return [
        int(store["id"])
        for chain in api.all("/chain?limit=1000")
        for store in api.all(f"/chain/{chain['id']}/stores?limit=1000")
    ]


def check_ledger(api: Api, stores: Sequence[int] | None = None) -> LedgerCheck:
    """Every level of every store (of ``stores``, else of the key's tenant), over the HTTP
    API: none below zero, each the sum of its ledger entries' deltas and the
    ``quantity_after`` of its newest entry."""
    found = LedgerCheck()
    for store_id in store_ids(api) if stores is None else stores:
        found.stores += 1
        levels = {
            int(row["item_id"]): int(row["quantity"])
            for row in api.all(f"/stores/{store_id}/inventory?limit=1000")
        }
        sums: dict[int, int] = {}
        newest: dict[int, tuple[int, int]] = {}
        for page in api.pages(f"/stores/{store_id}/inventory/changes?limit=1000"):
            for entry in page:
                found.entries += 1
                item = int(entry["item_id"])
                sums[item] = sums.get(item, 0) + int(entry["delta"])
                if item not in newest or int(entry["id"]) > newest[item][0]:
                    newest[item] = (int(entry["id"]), int(entry["quantity_after"]))
        for item, quantity in levels.items():
            found.levels += 1
            where = {"store_id": store_id, "item_id": item, "quantity": quantity}
            if quantity < 0:
                found.negative.append(where)
            ledger_sum = sums.get(item, 0)
            last = newest.get(item, (0, 0))[1]
            if ledger_sum != quantity or last != quantity:
                found.mismatched.append({**where, "ledger_sum": ledger_sum, "last_after": last})
        for item, total in sums.items():
            if item not in levels and total != 0:
                found.mismatched.append(
                    {"store_id": store_id, "item_id": item, "quantity": None, "ledger_sum": total}
                )
    return found
