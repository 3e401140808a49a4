"""Rolling deploys: every migration keeps the previous release working on the new schema.

During a release the schema is migrated first, then pods of the new version replace those of
the old one a few at a time (docs/deploy.md): for a while the old code runs on the new schema,
and after a rollback it runs there again. Two checks keep that safe.

**Expand-only, by the SQL.** Each migration's SQL, as ``--sql`` writes it for PostgreSQL and
CockroachDB, is classified statement by statement. Adding tables, indexes, constraints,
nullable or defaulted columns and backfills is an *expand* step; dropping, renaming, changing
a type, making a column NOT NULL, deleting rows or adding a NOT NULL column without a default
is a *contract* step, which the previous release could trip over. A migration with a contract
step must say so and why it is safe now, with a module-level ``CONTRACT = "reason"``: by then
no release still running reads or writes what it removes (docs/deploy.md,
"Expand and contract"). SQLite's batch mode rebuilds tables (create, copy, drop, rename) to
make the same logical change, so SQLite's SQL is not classified.

**Old writes and new reads, for real, on SQLite and PostgreSQL.** A database is migrated to
the previous revision and given rows as the previous release writes them: plain INSERTs of
the columns that schema has, nothing of what the new migration adds. Then it is migrated to
the head: the current code reads those rows and changes them; the previous release's INSERTs
are still accepted (its pods are still serving); and what the current code writes, the
previous release can still read (no NULL in a column it knows as NOT NULL). On SQLite the
same old-writes check runs over every pair of consecutive revisions.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from commerce.adapters.storage.sql import SqlOptions, schema, sql_storage
from commerce.adapters.storage.sql.engine import create_engine, normalize_url
from commerce.adapters.storage.sql.tables import metadata
from commerce.core.auth import Role
from commerce.core.models import (
    Adjustment,
    ChangeFilter,
    NewChain,
    NewItem,
    NewStore,
    Reason,
    StoredResponse,
)

# -- the migrations, in order --------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    revision: str
    down_revision: str | None
    module: ModuleType


def migrations() -> list[Migration]:
    script = ScriptDirectory(str(schema.MIGRATIONS))
    found = [
        Migration(rev.revision, rev.down_revision, rev.module)  # type: ignore[arg-type]
        for rev in script.walk_revisions()
    ]
    return list(reversed(found))


# -- expand or contract, by the SQL --------------------------------------------------------

EXPAND, CONTRACT, BOOKKEEPING = "expand", "contract", "bookkeeping"

_BOOKKEEPING = re.compile(
    r"^(BEGIN|COMMIT|(CREATE TABLE|INSERT INTO|UPDATE|DELETE FROM) ALEMBIC_VERSION\b)"
)
_CONTRACT = (
    (re.compile(r"^DROP\b"), "drops something"),
    (re.compile(r"^ALTER TABLE \S+ DROP\b"), "drops a column or constraint"),
    (re.compile(r"\bRENAME\b"), "renames something"),
    (re.compile(r"\bALTER (COLUMN )?\S+ (SET DATA )?TYPE\b"), "changes a column's type"),
    (re.compile(r"\bSET NOT NULL\b"), "makes a column NOT NULL"),
    (re.compile(r"\bDROP DEFAULT\b"), "drops a default the previous release may rely on"),
    (re.compile(r"^(DELETE FROM|TRUNCATE)\b"), "deletes rows"),
)
_ADD_COLUMN = re.compile(r"^ALTER TABLE \S+ ADD (COLUMN )?(?!CONSTRAINT\b)")
_EXPAND = tuple(
    re.compile(pattern)
    for pattern in (
        r"^CREATE TABLE\b",
        r"^CREATE (UNIQUE )?INDEX\b",
        r"^ALTER TABLE \S+ ADD CONSTRAINT\b",
        r"^ALTER TABLE \S+ ALTER (COLUMN )?\S+ (SET DEFAULT|DROP NOT NULL)\b",
        r"^INSERT INTO\b",
        r"^UPDATE\b",
        r"^COMMENT ON\b",
    )
)


def classify(statement: str) -> tuple[str, str]:
    """(``expand`` | ``contract`` | ``bookkeeping``, why) for one SQL statement; an
    ``AssertionError`` for a statement of a kind nobody has classified yet."""
    text = " ".join(
        line for line in statement.splitlines() if not line.strip().startswith("--")
    ).strip()
    text = re.sub(r"\s+", " ", text).upper()
    if not text or _BOOKKEEPING.match(text):
        return BOOKKEEPING, ""
    for pattern, why in _CONTRACT:
        if pattern.search(text):
            return CONTRACT, why
    if _ADD_COLUMN.match(text):
        if "NOT NULL" in text and " DEFAULT " not in text:
            return CONTRACT, "adds a NOT NULL column without a default: old INSERTs fail"
        return EXPAND, "adds a column the previous release can ignore"
    for pattern in _EXPAND:
        if pattern.match(text):
            return EXPAND, pattern.pattern
    raise AssertionError(
        f"unclassified statement (teach classify() about it): {statement.strip()[:200]}"
    )


def statements(text: str) -> list[str]:
    return [s for s in re.split(r";\s*\n", text) if s.strip()]


def migration_sql(migration: Migration, url: str) -> str:
    """The SQL ``migration`` runs, for ``url``'s dialect, written offline."""
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(schema.MIGRATIONS))
    config.attributes["url"] = normalize_url(url)
    span = (
        f"{migration.down_revision}:{migration.revision}"
        if migration.down_revision
        else migration.revision
    )
    command.upgrade(config, span, sql=True)
    return buffer.getvalue()


OFFLINE_DIALECTS = {
    "postgresql": "postgresql://commerce@localhost/commerce",
    "cockroachdb": "cockroachdb://root@localhost:26257/commerce",
}


def contract_steps(migration: Migration) -> list[str]:
    found = []
    for dialect, url in OFFLINE_DIALECTS.items():
        for statement in statements(migration_sql(migration, url)):
            kind, why = classify(statement)
            if kind == CONTRACT:
                found.append(f"{dialect}: {why}: {' '.join(statement.split())[:160]}")
    return found


def marker_problems(revision: str, marker: object, steps: list[str]) -> list[str]:
    """What is wrong with a migration's ``CONTRACT`` marker, given its contract steps."""
    if marker is None:
        if not steps:
            return []
        return [
            f"migration {revision} contracts the schema, which breaks the previous release "
            "during a rolling deploy. Split it: expand now, contract in a later release, and "
            "mark that one with CONTRACT = '<why nothing running needs it>':\n" + "\n".join(steps)
        ]
    if not isinstance(marker, str) or not marker.strip():
        return [f"migration {revision}: CONTRACT must say why the step is safe now"]
    if not steps:
        return [f"migration {revision} is marked CONTRACT but contracts nothing"]
    return []


@pytest.mark.parametrize("migration", migrations(), ids=lambda m: m.revision)
def test_every_migration_is_expand_only_unless_marked_as_a_contract_step(
    migration: Migration,
) -> None:
    marker = getattr(migration.module, "CONTRACT", None)
    assert marker_problems(migration.revision, marker, contract_steps(migration)) == []


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("ALTER TABLE items DROP COLUMN cost", CONTRACT),
        ("ALTER TABLE stores RENAME COLUMN phone TO telephone", CONTRACT),
        ("ALTER TABLE items RENAME TO products", CONTRACT),
        ("ALTER TABLE items ALTER COLUMN cost TYPE BIGINT", CONTRACT),
        ("ALTER TABLE stores ALTER COLUMN phone SET NOT NULL", CONTRACT),
        ("ALTER TABLE stores ADD COLUMN email TEXT NOT NULL", CONTRACT),
        ("DROP INDEX ix_stores_chain_id_id", CONTRACT),
        ("DROP TABLE api_keys", CONTRACT),
        ("DELETE FROM idempotency_keys", CONTRACT),
        ("ALTER TABLE stores ADD COLUMN email TEXT", EXPAND),
        ("ALTER TABLE stores ADD COLUMN region TEXT NOT NULL DEFAULT 'none'", EXPAND),
        ("CREATE INDEX ix_items_name ON items (name)", EXPAND),
        ("ALTER TABLE items ADD CONSTRAINT ck_items_x CHECK (cost < 1000000)", EXPAND),
        ("UPDATE stores SET email = phone WHERE email IS NULL", EXPAND),
        ("UPDATE alembic_version SET version_num='0005'", BOOKKEEPING),
    ],
)
def test_the_classifier_tells_expand_from_contract(sql: str, kind: str) -> None:
    assert classify(sql)[0] == kind


def test_the_classifier_refuses_what_it_does_not_know() -> None:
    with pytest.raises(AssertionError, match="unclassified"):
        classify("GRANT ALL ON items TO somebody")


def test_a_contract_step_needs_a_marker_that_gives_a_reason() -> None:
    head = migrations()[-1]
    sql = [
        *statements(migration_sql(head, OFFLINE_DIALECTS["postgresql"])),
        "ALTER TABLE stores DROP COLUMN phone",
    ]
    steps = [s for s in sql if classify(s)[0] == CONTRACT]
    assert len(steps) == 1
    assert "contracts the schema" in marker_problems("9999", None, steps)[0]
    assert marker_problems("9999", "stores.phone is unused since release 0.9", steps) == []
    assert "must say why" in marker_problems("9999", "", steps)[0]
    assert "contracts nothing" in marker_problems("9999", "stale", [])[0]


# -- the previous release's writes, the current code's reads -------------------------------


def upgrade(url: str, revision: str) -> None:
    engine = create_engine(url, SqlOptions())
    try:
        with engine.connect() as conn:
            config = schema._config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            if conn.in_transaction():
                conn.commit()
    finally:
        engine.dispose()


AT = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
COST = Decimal("12.34")


@dataclass(frozen=True)
class Batch:
    """One set of rows as a release writes them: a tenant with one of everything."""

    n: int

    @property
    def tenant(self) -> str:
        return f"compat-{self.n}"

    @property
    def chain(self) -> int:
        return 1000 + self.n

    @property
    def store(self) -> int:
        return 2000 + self.n

    @property
    def item(self) -> int:
        return 3000 + self.n

    @property
    def prefix(self) -> str:
        return f"compat{self.n:02d}"

    @property
    def at(self) -> datetime:
        return AT + timedelta(minutes=self.n)

    def rows(self) -> dict[str, dict[str, Any]]:
        """Every column any release has written, by table; a release writes those its
        schema has. A new NOT NULL column without a default must get a value here."""
        t, at = self.tenant, self.at
        return {
            "tenants": {"id": t, "name": f"Compat {self.n}", "created_at": at},
            "chains": {
                "id": self.chain,
                "tenant_id": t,
                "name": "Harbour Foods",
                "phone": "+1 206-555-0199",
                "created_at": at,
                "updated_at": at,
            },
            "stores": {
                "id": self.store,
                "tenant_id": t,
                "chain_id": self.chain,
                "name": "Pier 57",
                "phone": "+1 206-555-0100",
                "address": "1301 Alaskan Way",
                "postal_code": "98101",
                "city": "Seattle",
                "country": "US",
                "active": True,
                "created_at": at,
                "updated_at": at,
            },
            "items": {
                "id": self.item,
                "tenant_id": t,
                "sku": f"TEA-{self.n}",
                "name": "Earl Grey",
                "cost": COST,
                "created_at": at,
                "updated_at": at,
            },
            "inventory_levels": {
                "store_id": self.store,
                "item_id": self.item,
                "tenant_id": t,
                "quantity": 5,
                "updated_at": at,
            },
            "inventory_changes": {
                "store_id": self.store,
                "id": 1,
                "tenant_id": t,
                "item_id": self.item,
                "delta": 5,
                "quantity_after": 5,
                "reason": "received",
                "reference": "delivery 7",
                "actor": "previous release",
                "created_at": at,
            },
            "idempotency_keys": {
                "tenant_id": t,
                "key": f"key-{self.n}",
                "fingerprint": f"fp-{self.n}",
                "state": "completed",
                "response_status": 201,
                "response_headers": '[["Content-Type", "application/json"]]',
                "response_body": b'{"id": 1}',
                "claimed_at": at,
            },
            "api_keys": {
                "id": 4000 + self.n,
                "tenant_id": t,
                "prefix": self.prefix,
                "secret_hash": "ab" * 32,
                "role": "admin",
                "created_at": at,
                "revoked_at": None,
                "last_used_at": None,
            },
        }


Columns = dict[str, list[dict[str, Any]]]


def columns(engine: sa.Engine) -> Columns:
    """Each table's columns as the database has them now."""
    inspector = sa.inspect(engine)
    return {
        table: inspector.get_columns(table)
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def write_as_the_previous_release(engine: sa.Engine, known: Columns, batch: Batch) -> None:
    """INSERT ``batch`` with the columns of the schema ``known`` and nothing else."""
    rows = batch.rows()
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if table.name not in known:
                continue
            values = {}
            for column in known[table.name]:
                name = column["name"]
                if name in rows[table.name]:
                    values[name] = rows[table.name][name]
                elif not column["nullable"] and column.get("default") is None:
                    pytest.fail(f"give {table.name}.{name} a value in Batch.rows()")
            assert set(values) <= set(table.columns.keys()), (
                f"{table.name}: the previous release writes columns the head has not"
            )
            conn.execute(table.insert().values(values))


def read_as_the_previous_release(engine: sa.Engine, known: Columns, tenant: str) -> int:
    """SELECT the tenant's rows with the columns of ``known``; every column it knows as
    NOT NULL must hold a value. Returns how many rows were read."""
    count = 0
    with engine.connect() as conn:
        for table, cols in known.items():
            names = [c["name"] for c in cols]
            key = "id" if table == "tenants" else "tenant_id"
            query = sa.text(
                f"SELECT {', '.join(names)} FROM {table} WHERE {key} = :t"  # noqa: S608
            )
            for row in conn.execute(query, {"t": tenant}).mappings():
                count += 1
                for column in cols:
                    if not column["nullable"]:
                        assert row[column["name"]] is not None, (table, column["name"])
    return count


def read_with_the_current_code(url: str, batch: Batch) -> None:
    """The current code's main reads over rows the previous release wrote, and a write."""
    storage = sql_storage(create_engine(url, SqlOptions()))
    try:
        storage.check()
        catalogue, inventory = storage.catalogue, storage.inventory
        t = batch.tenant
        assert catalogue.get_tenant(t) is not None
        chain = catalogue.get_chain(t, batch.chain)
        assert chain is not None
        assert chain.name == "Harbour Foods"
        [store] = catalogue.list_stores(t, batch.chain, after=None, limit=10)
        assert store.id == batch.store
        assert store.city == "Seattle"
        item = catalogue.get_item(t, batch.item)
        assert item is not None
        assert item.cost == COST
        [level] = inventory.list_levels(t, batch.store, item_ids=None, after=None, limit=10)
        assert level.quantity == 5
        [entry] = inventory.list_changes(t, batch.store, ChangeFilter(), after=None, limit=10)
        assert (entry.delta, entry.quantity_after, entry.reason) == (5, 5, Reason.received)
        as_of = inventory.list_levels_as_of(
            t, batch.store, batch.at + timedelta(seconds=1), item_ids=None, after=None, limit=10
        )
        assert [lv.quantity for lv in as_of] == [5]
        found = storage.api_keys.find_api_key(batch.prefix)
        assert found is not None
        assert found[0].role is Role.admin
        replay = storage.idempotency.claim_idempotency_key(
            t, f"key-{batch.n}", f"fp-{batch.n}", stale_after=timedelta(hours=1)
        )
        assert replay == StoredResponse(
            status=201, headers=(("Content-Type", "application/json"),), body=b'{"id": 1}'
        )
        # And the current code changes what the previous release wrote.
        [after] = inventory.adjust(
            t, batch.store, [Adjustment(batch.item, -2, Reason.sold)], actor="current release"
        )
        assert after.quantity == 3
    finally:
        storage.close()


def write_with_the_current_code(url: str, tenant: str) -> None:
    storage = sql_storage(create_engine(url, SqlOptions()))
    try:
        catalogue, inventory = storage.catalogue, storage.inventory
        catalogue.create_tenant(tenant, "Current")
        chain = catalogue.create_chain(tenant, NewChain(name="C", phone="1"))
        store = catalogue.create_store(tenant, NewStore(chain_id=chain.id, name="S", city="X"))
        item = catalogue.create_item(tenant, NewItem(sku="NEW-1", name="N", cost=Decimal("1.5")))
        inventory.set_quantity(tenant, store.id, item.id, 9, actor="current release")
        inventory.adjust(tenant, store.id, [Adjustment(item.id, -1, Reason.sold)], actor="c")
        storage.api_keys.create_api_key(tenant, Role.reader, "compatnew", "cd" * 32)
        claimed = storage.idempotency.claim_idempotency_key(
            tenant, "k", "fp", stale_after=timedelta(hours=1)
        )
        assert claimed is None
        storage.idempotency.complete_idempotency_key(
            tenant, "k", StoredResponse(status=200, headers=(), body=b"{}")
        )
    finally:
        storage.close()


def check_rolling_deploy(url: str, previous: str, head: str) -> None:
    """The whole story for one database: see the module's docstring."""
    upgrade(url, previous)
    engine = create_engine(url, SqlOptions())
    try:
        old_schema = columns(engine)
        write_as_the_previous_release(engine, old_schema, Batch(1))
    finally:
        engine.dispose()

    upgrade(url, head)
    engine = create_engine(url, SqlOptions())
    try:
        new_schema = columns(engine)
        dropped = {
            (t, c["name"])
            for t, cols in old_schema.items()
            for c in cols
            if c["name"] not in {n["name"] for n in new_schema.get(t, [])}
        }
        if dropped:
            marked = {m.revision: m for m in migrations()}[head].module
            assert getattr(marked, "CONTRACT", None), f"{head} drops {sorted(dropped)}"
            # A contract step removes only what the previous release no longer uses.
            old_schema = {
                t: [c for c in cols if (t, c["name"]) not in dropped]
                for t, cols in old_schema.items()
            }
        # The previous release's pods are still serving: their writes are accepted...
        write_as_the_previous_release(engine, old_schema, Batch(2))
        read_with_the_current_code(url, Batch(1))
        read_with_the_current_code(url, Batch(2))
        # ...and what the current release writes, they (and a rollback) can read.
        write_with_the_current_code(url, "compat-current")
        assert read_as_the_previous_release(engine, old_schema, "compat-current") >= 8
        assert read_as_the_previous_release(engine, old_schema, Batch(1).tenant) >= 8
    finally:
        engine.dispose()


def previous_and_head() -> tuple[str, str]:
    *_, previous, head = migrations()
    assert head.down_revision == previous.revision
    return previous.revision, head.revision


def test_the_previous_release_and_the_current_code_share_the_head_schema_on_sqlite(
    sqlite_url: str,
) -> None:
    check_rolling_deploy(sqlite_url, *previous_and_head())


def test_the_previous_release_and_the_current_code_share_the_head_schema_on_postgresql(
    new_pg_database: Callable[[str], str],
) -> None:
    check_rolling_deploy(new_pg_database("postgresql+psycopg"), *previous_and_head())


def consecutive() -> Iterator[tuple[str, str]]:
    revisions = migrations()
    for before, after in itertools.pairwise(revisions):
        yield before.revision, after.revision


@pytest.mark.parametrize(
    ("before", "after"), list(consecutive()), ids=[f"{a}-{b}" for a, b in consecutive()]
)
def test_each_migration_accepts_the_writes_of_the_release_before_it(
    sqlite_url: str, before: str, after: str
) -> None:
    upgrade(sqlite_url, before)
    engine = create_engine(sqlite_url, SqlOptions())
    try:
        known = columns(engine)
        write_as_the_previous_release(engine, known, Batch(1))
        engine.dispose()
        upgrade(sqlite_url, after)
        write_as_the_previous_release(engine, known, Batch(2))
        for batch in (Batch(1), Batch(2)):
            assert read_as_the_previous_release(engine, known, batch.tenant) >= 4
    finally:
        engine.dispose()


def test_the_checks_fail_on_a_schema_the_previous_release_cannot_use(sqlite_url: str) -> None:
    """A unique index the old rows break refuses its INSERTs; a column it knows as NOT NULL
    that the new code leaves empty fails its reads."""
    upgrade(sqlite_url, previous_and_head()[1])
    engine = create_engine(sqlite_url, SqlOptions())
    try:
        known = columns(engine)
        write_as_the_previous_release(engine, known, Batch(1))
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE UNIQUE INDEX ix_items_name ON items (name)")
        with pytest.raises(sa.exc.IntegrityError):
            write_as_the_previous_release(engine, known, Batch(2))
        strict = {
            table: [{**c, "nullable": False} if c["name"] == "revoked_at" else c for c in cols]
            for table, cols in known.items()
        }
        with pytest.raises(AssertionError, match="revoked_at"):
            read_as_the_previous_release(engine, strict, Batch(1).tenant)
    finally:
        engine.dispose()
