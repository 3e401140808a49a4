"""The resources: parse what the request says, call one use case, send what it returns.

A collection and one member of it are two classes (``ChainCollection``, ``ChainMember``), so
no responder needs a suffix; "item" is a word of the domain, never of the routing. Resources
reach storage only through ``commerce.core.usecases``, handing them the ports of the bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar
from urllib.parse import quote, urlencode

import falcon
from msgspec import UNSET

from commerce.core import usecases
from commerce.core.auth import Principal, Role
from commerce.core.errors import (
    LevelChanged,
    QuantityMismatch,
)
from commerce.core.flags import COUNTED_SETS, require
from commerce.core.models import ChangeFilter
from commerce.core.pagination import Page, PageRequest
from commerce.entrypoints.http import bodies, decoding
from commerce.entrypoints.http.bodies import B
from commerce.entrypoints.http.conditional import etag_of, require_match, send_representation
from commerce.entrypoints.http.context import AppContext
from commerce.entrypoints.http.media import encode_row, encode_rows
from commerce.entrypoints.http.params import (
    canonical_timestamp,
    id_param,
    item_ids_param,
    page_request,
    parse_id,
    timestamp_param,
)

T = TypeVar("T")


# -- helpers shared by the resources ---------------------------------------------------------


def tenant_of(req: falcon.Request) -> str:
    principal: Principal = req.context.principal
    return principal.tenant


def role_of(req: falcon.Request) -> Role:
    """The caller's role: feature flags may be on for some roles only."""
    principal: Principal = req.context.principal
    return principal.role


def actor_of(req: falcon.Request) -> str:
    """Who the ledger says made a change: the authenticated subject."""
    principal: Principal = req.context.principal
    return principal.subject


def send_page(
    req: falcon.Request,
    resp: falcon.Response,
    page: Page[T],
    request: PageRequest,
    **keep: str,
) -> None:
    """The rows as a JSON array and, if more follow, a ``Link`` to the next page.

    The link is a path-absolute relative reference (RFC 8288 resolves it against the request
    URL), so it stays right behind any proxy that keeps the path. It repeats the page size and
    the ``keep`` parameters in their parsed, canonical form, never the client's raw text.
    """
    resp.data = encode_rows(page.rows)
    if page.next_cursor is not None:
        query = {"limit": str(request.limit), **keep, "cursor": page.next_cursor}
        target = quote(req.root_path + req.path) + "?" + urlencode(query, safe=",:")
        resp.set_header("Link", f'<{target}>; rel="next"')


def send_created(req: falcon.Request, resp: falcon.Response, row: object, path: str) -> None:
    """201 with the new row, its ``Location`` (a path-absolute reference) and its ETag."""
    body = encode_row(row)
    resp.status = falcon.HTTP_201
    resp.content_type = falcon.MEDIA_JSON
    resp.set_header("Location", quote(req.root_path + path))
    resp.set_header("ETag", etag_of(body))
    resp.data = body


def send_changed(resp: falcon.Response, row: object) -> None:
    """200 with the row as it now is, and its ETag."""
    body = encode_row(row)
    resp.content_type = falcon.MEDIA_JSON
    resp.set_header("ETag", etag_of(body))
    resp.data = body


class _Versioned(Protocol):
    @property
    def updated_at(self) -> datetime: ...


def if_match(req: falcon.Request, read: Callable[[], _Versioned], what: str) -> datetime | None:
    """With ``If-Match``, the ``updated_at`` of the row it matched; ``None`` without the header.

    The caller passes it on as ``expected_updated_at``, so that storage re-checks it
    atomically: a write landing between this read and the update is a 412 too. Reading a
    missing row raises ``NotFound``: preconditions are evaluated only on a resource that
    exists (RFC 9110, 13.2.1), so a 404 stays a 404.
    """
    header = req.get_header("If-Match")
    if header is None or not header.strip():
        return None
    current = read()
    require_match(header, encode_row(current), what)
    return current.updated_at


# -- resources ---------------------------------------------------------------------------------


class Resource:
    """What every resource holds: the ports its use cases need, and the body size limit."""

    def __init__(self, ctx: AppContext) -> None:
        self._catalogue = ctx.storage.catalogue
        self._inventory = ctx.storage.inventory
        self._flags = ctx.flags
        self._max_body_bytes = ctx.max_body_bytes

    def _body(self, req: falcon.Request, body_type: type[B]) -> B:
        return decoding.decode(req, body_type, self._max_body_bytes)


class ChainCollection(Resource):
    """``/chain``: the tenant's chains; a new one."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = page_request(req, usecases.CHAINS)
        page = usecases.list_chains(self._catalogue, tenant_of(req), request)
        send_page(req, resp, page, request)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        new = bodies.new_chain(self._body(req, bodies.ChainCreate))
        chain = usecases.create_chain(self._catalogue, tenant_of(req), new)
        send_created(req, resp, chain, f"/chain/{chain.id}")


class ChainMember(Resource):
    """``/chain/{chain_id}``: one chain."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        chain = usecases.get_chain(self._catalogue, tenant_of(req), key)
        send_representation(req, resp, encode_row(chain))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        patch = bodies.chain_patch(self._body(req, bodies.ChainUpdate))
        tenant = tenant_of(req)
        expected = if_match(req, lambda: usecases.get_chain(self._catalogue, tenant, key), "chain")
        chain = usecases.update_chain(self._catalogue, tenant, key, patch, expected)
        send_changed(resp, chain)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        tenant = tenant_of(req)
        expected = if_match(req, lambda: usecases.get_chain(self._catalogue, tenant, key), "chain")
        usecases.delete_chain(self._catalogue, tenant, key, expected)
        resp.status = falcon.HTTP_204


class ChainStoreCollection(Resource):
    """``/chain/{chain_id}/stores``: a chain's stores; a new one."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        request = page_request(req, usecases.STORES)
        page = usecases.list_chain_stores(self._catalogue, tenant_of(req), key, request)
        send_page(req, resp, page, request)

    def on_post(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        new = bodies.new_store(key, self._body(req, bodies.StoreCreate))
        store = usecases.create_store(self._catalogue, tenant_of(req), new)
        send_created(req, resp, store, f"/stores/{store.id}")


class StoreMember(Resource):
    """``/stores/{store_id}``: one store."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        store = usecases.get_store(self._catalogue, tenant_of(req), key)
        send_representation(req, resp, encode_row(store))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        patch = bodies.store_patch(self._body(req, bodies.StoreUpdate))
        tenant = tenant_of(req)
        expected = if_match(req, lambda: usecases.get_store(self._catalogue, tenant, key), "store")
        store = usecases.update_store(self._catalogue, tenant, key, patch, expected)
        send_changed(resp, store)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        tenant = tenant_of(req)
        expected = if_match(req, lambda: usecases.get_store(self._catalogue, tenant, key), "store")
        usecases.delete_store(self._catalogue, tenant, key, expected)
        resp.status = falcon.HTTP_204


class StoreLevelCollection(Resource):
    """``/stores/{store_id}/inventory``: a store's levels, of some items, now or then."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        item_ids = item_ids_param(req)
        as_of = timestamp_param(req, "as_of")
        request = page_request(req, usecases.STORE_LEVELS)
        page = usecases.list_store_inventory(
            self._catalogue,
            self._inventory,
            tenant_of(req),
            key,
            request,
            item_ids,
            as_of,
            flags=self._flags,
            role=role_of(req),
        )
        keep: dict[str, str] = {}
        if item_ids is not None:
            keep["items"] = ",".join(map(str, item_ids))
        if as_of is not None:
            keep["as_of"] = canonical_timestamp(as_of)
        send_page(req, resp, page, request, **keep)


class StoreLevelMember(Resource):
    """``/stores/{store_id}/inventory/{item_id}``: one item's level at one store; a count."""

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, store_id: str, item_id: str
    ) -> None:
        store_key = parse_id("store_id", store_id)
        item_key = parse_id("item_id", item_id)
        level = usecases.get_level(
            self._catalogue, self._inventory, tenant_of(req), store_key, item_key
        )
        send_representation(req, resp, encode_row(level))

    def on_put(
        self, req: falcon.Request, resp: falcon.Response, store_id: str, item_id: str
    ) -> None:
        store_key = parse_id("store_id", store_id)
        item_key = parse_id("item_id", item_id)
        body = self._body(req, bodies.QuantitySet)
        tenant = tenant_of(req)
        expected = None if body.expected_quantity is UNSET else body.expected_quantity
        header = req.get_header("If-Match")
        from_header = False
        if header is not None and header.strip():
            # A feature that is off is a 404 before any precondition is looked at (RFC 9110,
            # 13.2.1): its flag is asked here, and again by the use case.
            require(self._flags, COUNTED_SETS, tenant, role_of(req))
            current = usecases.find_level(
                self._catalogue, self._inventory, tenant, store_key, item_key
            )
            what = f"the level of item {item_key} at store {store_key}"
            require_match(header, None if current is None else encode_row(current), what)
            if expected is None and current is not None:
                # The quantity is what the ETag stands for; storage compares it atomically.
                expected, from_header = current.quantity, True
        try:
            level = usecases.set_quantity(
                self._inventory,
                tenant,
                store_key,
                item_key,
                body.quantity,
                actor=actor_of(req),
                expected_quantity=expected,
                reference=None if body.reference is UNSET else body.reference,
                flags=self._flags,
                role=role_of(req),
            )
        except QuantityMismatch as exc:
            if from_header:
                # The client named a version, not a quantity: its precondition failed (412).
                raise LevelChanged(store_key, item_key, exc.current_quantity) from None
            raise
        send_changed(resp, level)


class StoreAdjustments(Resource):
    """``/stores/{store_id}/inventory/adjustments``: a batch of adjustments, all or none."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        batch = bodies.adjustments(self._body(req, bodies.AdjustmentBatch))
        levels = usecases.adjust_inventory(
            self._inventory, tenant_of(req), key, batch, actor=actor_of(req)
        )
        resp.content_type = falcon.MEDIA_JSON
        resp.data = encode_rows(levels)


class StoreChangeCollection(Resource):
    """``/stores/{store_id}/inventory/changes``: a store's change history."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        item_id = id_param(req, "item_id")
        since = timestamp_param(req, "since")
        until = timestamp_param(req, "until")
        where = ChangeFilter(item_id=item_id, since=since, until=until)
        request = page_request(req, usecases.CHANGES, timed=where.by_time)
        page = usecases.list_changes(
            self._catalogue, self._inventory, tenant_of(req), key, where, request
        )
        keep: dict[str, str] = {}
        if item_id is not None:
            keep["item_id"] = str(item_id)
        if since is not None:
            keep["since"] = canonical_timestamp(since)
        if until is not None:
            keep["until"] = canonical_timestamp(until)
        send_page(req, resp, page, request, **keep)


class ItemCollection(Resource):
    """``/items``: the tenant's item catalogue; a new item."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = page_request(req, usecases.ITEMS)
        page = usecases.list_items(self._catalogue, tenant_of(req), request)
        send_page(req, resp, page, request)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        new = bodies.new_item(self._body(req, bodies.ItemCreate))
        item = usecases.create_item(self._catalogue, tenant_of(req), new)
        send_created(req, resp, item, f"/items/{item.id}")


class ItemMember(Resource):
    """``/items/{item_id}``: one item of the catalogue."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        item = usecases.get_item(self._catalogue, tenant_of(req), key)
        send_representation(req, resp, encode_row(item))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        patch = bodies.item_patch(self._body(req, bodies.ItemUpdate))
        tenant = tenant_of(req)
        expected = if_match(req, lambda: usecases.get_item(self._catalogue, tenant, key), "item")
        item = usecases.update_item(self._catalogue, tenant, key, patch, expected)
        send_changed(resp, item)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        tenant = tenant_of(req)
        expected = if_match(req, lambda: usecases.get_item(self._catalogue, tenant, key), "item")
        usecases.delete_item(self._catalogue, tenant, key, expected)
        resp.status = falcon.HTTP_204


class ItemLevelCollection(Resource):
    """``/items/{item_id}/inventory``: one item's levels across the tenant's stores."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        request = page_request(req, usecases.ITEM_LEVELS)
        page = usecases.list_item_inventory(
            self._catalogue, self._inventory, tenant_of(req), key, request
        )
        send_page(req, resp, page, request)
