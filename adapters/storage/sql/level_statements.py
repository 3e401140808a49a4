"""The statements of ``SqlInventory``, each built once from bound parameters (per dialect or
per shape), so that SQLAlchemy neither builds nor compiles one again per call: reading a
store's levels, and the steps, locks and counted sets of the writes (docs/performance.md)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from commerce.adapters.storage.sql.engine import SQLITE_LATER
from commerce.adapters.storage.sql.tables import UtcDateTime, inventory_levels
from commerce.core.validation import MAX_QUANTITY

LEVEL_COLUMNS = (
    inventory_levels.c.store_id,
    inventory_levels.c.item_id,
    inventory_levels.c.quantity,
    inventory_levels.c.updated_at,
)

ITEM_PARAMS = tuple(f"item_{n}" for n in range(1024))


def bucket(count: int) -> int:
    """The statement size for ``count`` item ids: the next power of two (at least 4)."""
    return max(4, 1 << (count - 1).bit_length())


@functools.cache
def levels_query(paged: bool, ids: int) -> sa.Select[Any]:
    """A store's levels, built once per shape: ``paged`` (past a cursor), ``ids`` item ids
    (0: all items; -1: a list of any length, expanded when executed). Built from bound
    parameters only, so SQLAlchemy compiles each shape once, and a read pays neither for
    building the statement nor for expanding an ``IN`` list."""
    conditions = [
        inventory_levels.c.store_id == sa.bindparam("store_id"),
        inventory_levels.c.tenant_id == sa.bindparam("tenant"),
    ]
    if paged:
        conditions.append(inventory_levels.c.item_id > sa.bindparam("after"))
    if ids > 0:
        conditions.append(
            inventory_levels.c.item_id.in_([sa.bindparam(name) for name in ITEM_PARAMS[:ids]])
        )
    elif ids < 0:  # any number, expanded into the statement at each execution
        conditions.append(inventory_levels.c.item_id.in_(sa.bindparam("items", expanding=True)))
    return (
        sa.select(*LEVEL_COLUMNS)
        .where(*conditions)
        .order_by(inventory_levels.c.item_id)
        .limit(sa.bindparam("limit"))
    )


# -- write statements, built once --------------------------------------------------------
#
# Each is built from bound parameters only, once per dialect (or shape), so SQLAlchemy
# neither builds nor compiles it again per call (docs/performance.md, "Writes"). The
# parameters are ``p_store``, ``p_item``, ``p_tenant``, ``p_delta``, ``p_quantity`` and
# ``p_now``.


_PARAM_TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "p_store": sa.BigInteger,
    "p_item": sa.BigInteger,
    "p_tenant": sa.String,
    "p_delta": sa.BigInteger,
    "p_quantity": sa.BigInteger,
    "p_now": UtcDateTime,
}


def _p(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=_PARAM_TYPES[name]())


def _key() -> tuple[sa.ColumnElement[bool], ...]:
    """The level's key: the store's, the item's, and the tenant's, which every row has."""
    level = inventory_levels.c
    return (
        level.store_id == _p("p_store"),
        level.item_id == _p("p_item"),
        level.tenant_id == _p("p_tenant"),
    )


def _later(is_sqlite: bool, column: sa.ColumnElement[datetime]) -> sa.ColumnElement[Any]:
    """``SqlContext.later(column, now)``, with ``now`` bound at execution (``p_now``)."""
    if is_sqlite:
        return sa.Function(SQLITE_LATER, column, _p("p_now"), type_=UtcDateTime())
    tick = sa.literal_column("INTERVAL '1 microsecond'", sa.Interval())
    return sa.func.greatest(_p("p_now"), column + tick, type_=UtcDateTime())


def _new_level(is_sqlite: bool, quantity: str) -> Any:
    """``INSERT INTO inventory_levels`` of the key, ``quantity`` (a parameter) and ``p_now``."""
    insert = sqlite.insert if is_sqlite else postgresql.insert
    return insert(inventory_levels).values(
        store_id=_p("p_store"),
        item_id=_p("p_item"),
        tenant_id=_p("p_tenant"),
        quantity=_p(quantity),
        updated_at=_p("p_now"),
    )


@functools.cache
def count_statements(is_sqlite: bool) -> tuple[sa.Select[Any], sa.Executable, sa.Executable]:
    """A count's statements: read the level (locking it), write it, create it.

    The level is read to be compared and to work out the ledger's delta: it stays locked
    until the write, so nothing can change it in between, whatever the isolation level.
    (SQLite: the transaction holds the database's write lock.)
    """
    level = inventory_levels.c
    current = sa.select(level.quantity).where(*_key())
    if not is_sqlite:
        current = current.with_for_update()
    update = (
        inventory_levels.update()
        .where(*_key())
        .values(quantity=_p("p_quantity"), updated_at=_later(is_sqlite, level.updated_at))
        .returning(level.quantity, level.updated_at)
    )
    create = (
        _new_level(is_sqlite, "p_quantity")
        .on_conflict_do_nothing(index_elements=[level.store_id, level.item_id])
        .returning(level.quantity, level.updated_at)
    )
    return current, update, create


@functools.cache
def step_statements(is_sqlite: bool) -> tuple[sa.Executable, sa.Executable, sa.Executable]:
    """An adjustment's step as one conditional statement that returns the level it left:
    a decrease, an increase, and the upsert an increase falls back on.

    A decrease is an UPDATE that only matches while enough is held, so no other
    transaction can slip in between a check and the write; an increase, one that only
    matches while the sum stays within ``MAX_QUANTITY``. An increase of a level that does
    not exist yet matches nothing: it is then an upsert, which creates the level (the
    foreign keys make sure the store and item are the tenant's) or adds to one created
    meanwhile. No row back means the step was refused.
    """
    level = inventory_levels.c

    def update(bound: sa.ColumnElement[bool]) -> sa.Executable:
        return (
            inventory_levels.update()
            .where(*_key(), bound)
            .values(
                quantity=level.quantity + _p("p_delta"),
                updated_at=_later(is_sqlite, level.updated_at),
            )
            .returning(level.quantity, level.updated_at)
        )

    insert = _new_level(is_sqlite, "p_delta")
    upsert = insert.on_conflict_do_update(
        index_elements=[level.store_id, level.item_id],
        set_={
            "quantity": level.quantity + insert.excluded.quantity,
            "updated_at": _later(is_sqlite, level.updated_at),
        },
        where=sa.and_(
            level.tenant_id == _p("p_tenant"),
            level.quantity + insert.excluded.quantity <= MAX_QUANTITY,
        ),
    ).returning(level.quantity, level.updated_at)
    return (
        update(level.quantity + _p("p_delta") >= 0),
        update(level.quantity + _p("p_delta") <= MAX_QUANTITY),
        upsert,
    )


@functools.cache
def lock_query(size: int) -> sa.Select[Any]:
    """Lock a store's levels of ``size`` item ids (padded, as reads are), in item order."""
    level = inventory_levels.c
    return (
        sa.select(level.item_id)
        .where(
            level.store_id == _p("p_store"),
            level.tenant_id == _p("p_tenant"),
            level.item_id.in_([sa.bindparam(name) for name in ITEM_PARAMS[:size]]),
        )
        .order_by(level.item_id)
        .with_for_update()
    )


CREATE_ZERO_LEVEL = sa.text(
    "INSERT INTO inventory_levels (store_id, item_id, tenant_id, quantity, updated_at) "
    "VALUES (:store_id, :item_id, :tenant_id, 0, :at) ON CONFLICT (store_id, item_id) DO NOTHING"
).bindparams(sa.bindparam("at", type_=UtcDateTime()))
"""A level at 0, unless there is one (text: see ``ledger._append_entries`` for why)."""
