"""The resources: parse what the request says, call one use case, send what it returns."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar
from urllib.parse import quote, urlencode

import falcon
import msgspec
from msgspec import UNSET

from commerce.core import services
from commerce.core.auth import Principal
from commerce.core.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from commerce.core.models import ChangeFilter, InventoryLevel
from commerce.core.pagination import MAX_LIMIT, Page, PageRequest
from commerce.core.ports import CommerceStore
from commerce.core.services import parse_id, parse_item_ids, parse_timestamp
from commerce.entrypoints.http import bodies
from commerce.entrypoints.http.bodies import B
from commerce.entrypoints.http.conditional import etag_of, require_match, send_representation
from commerce.entrypoints.http.media import encode, encode_row, encode_rows

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AppContext:
    """What resources are built with: the ports, and the OpenAPI document already encoded."""

    store: CommerceStore
    openapi_json: bytes
    max_body_bytes: int = 1 << 20


class Status(msgspec.Struct):
    """The body of ``/healthz`` and ``/readyz``."""

    status: str


_OK = encode(Status("ok"))


# -- helpers shared by the resources ---------------------------------------------------------


def tenant_of(req: falcon.Request) -> str:
    principal: Principal = req.context.principal
    return principal.tenant


def actor_of(req: falcon.Request) -> str:
    """Who the ledger says made a change: the authenticated subject."""
    principal: Principal = req.context.principal
    return principal.subject


def query_param(req: falcon.Request, name: str) -> str | None:
    """One query parameter's raw value; given twice it is ambiguous, so a 400."""
    value = req.params.get(name)
    if isinstance(value, list):
        raise InvalidInput(name, "must be given at most once")
    return value


TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""RFC 3339 ``date-time`` without leap seconds, which Python's datetime cannot hold."""
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def timestamp_param(req: falcon.Request, name: str) -> datetime | None:
    """An RFC 3339 query parameter, in UTC; ``None`` when absent."""
    raw = query_param(req, name)
    if raw is None:
        return None
    if not _TIMESTAMP.fullmatch(raw):
        raise InvalidInput(name, "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z")
    # RFC 3339 allows a lower-case t and z; Python reads only the upper-case ones.
    return parse_timestamp(name, raw.upper())


def canonical_timestamp(value: datetime) -> str:
    """The form ``Link`` repeats a timestamp in: the one every response body uses."""
    text: str = msgspec.json.decode(encode(value))
    return text


def page_request(req: falcon.Request, kind: str) -> PageRequest:
    limit = query_param(req, "limit")
    # Plain ASCII digits only: int() would also take " 5", "+5", "5_0" and other scripts' digits.
    if limit and not (limit.isascii() and limit.isdigit()):
        raise InvalidInput("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return PageRequest.parse(kind, limit, query_param(req, "cursor"))


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

    The caller passes it on as ``expected_updated_at``, so that the store re-checks it
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
    """What every resource holds: the store and the body size limit."""

    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store
        self._max_body_bytes = ctx.max_body_bytes

    def _body(self, req: falcon.Request, body_type: type[B]) -> B:
        return bodies.decode(req, body_type, self._max_body_bytes)


class Chains(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = page_request(req, services.CHAINS)
        page = services.list_chains(self._store, tenant_of(req), request)
        send_page(req, resp, page, request)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        new = bodies.new_chain(self._body(req, bodies.ChainCreate))
        chain = services.create_chain(self._store, tenant_of(req), new)
        send_created(req, resp, chain, f"/chain/{chain.id}")

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        chain = services.get_chain(self._store, tenant_of(req), key)
        send_representation(req, resp, encode_row(chain))

    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        patch = bodies.chain_patch(self._body(req, bodies.ChainUpdate))
        tenant = tenant_of(req)
        expected = if_match(req, lambda: services.get_chain(self._store, tenant, key), "chain")
        chain = services.update_chain(self._store, tenant, key, patch, expected)
        send_changed(resp, chain)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        tenant = tenant_of(req)
        expected = if_match(req, lambda: services.get_chain(self._store, tenant, key), "chain")
        services.delete_chain(self._store, tenant, key, expected)
        resp.status = falcon.HTTP_204


class ChainStores(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        request = page_request(req, services.STORES)
        page = services.list_chain_stores(self._store, tenant_of(req), key, request)
        send_page(req, resp, page, request)

    def on_post(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        new = bodies.new_store(key, self._body(req, bodies.StoreCreate))
        store = services.create_store(self._store, tenant_of(req), new)
        send_created(req, resp, store, f"/stores/{store.id}")


class Stores(Resource):
    def on_get_item(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        store = services.get_store(self._store, tenant_of(req), key)
        send_representation(req, resp, encode_row(store))

    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        patch = bodies.store_patch(self._body(req, bodies.StoreUpdate))
        tenant = tenant_of(req)
        expected = if_match(req, lambda: services.get_store(self._store, tenant, key), "store")
        store = services.update_store(self._store, tenant, key, patch, expected)
        send_changed(resp, store)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        tenant = tenant_of(req)
        expected = if_match(req, lambda: services.get_store(self._store, tenant, key), "store")
        services.delete_store(self._store, tenant, key, expected)
        resp.status = falcon.HTTP_204


class StoreInventory(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        raw_items = query_param(req, "items")
        item_ids = parse_item_ids(raw_items) if raw_items is not None else None
        as_of = timestamp_param(req, "as_of")
        request = page_request(req, services.STORE_LEVELS)
        page: Page[InventoryLevel] = services.list_store_inventory(
            self._store, tenant_of(req), key, request, item_ids, as_of
        )
        keep: dict[str, str] = {}
        if item_ids is not None:
            keep["items"] = ",".join(map(str, item_ids))
        if as_of is not None:
            keep["as_of"] = canonical_timestamp(as_of)
        send_page(req, resp, page, request, **keep)


class StoreLevel(Resource):
    """One item's level at one store: read it, or set it as a count does."""

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, store_id: str, item_id: str
    ) -> None:
        store_key = parse_id("store_id", store_id)
        item_key = parse_id("item_id", item_id)
        level = services.get_level(self._store, tenant_of(req), store_key, item_key)
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
            current = self._current(tenant, store_key, item_key)
            what = f"the level of item {item_key} at store {store_key}"
            require_match(header, None if current is None else encode_row(current), what)
            if expected is None and current is not None:
                # The quantity is what the ETag stands for; the store compares it atomically.
                expected, from_header = current.quantity, True
        try:
            level = services.set_quantity(
                self._store,
                tenant,
                store_key,
                item_key,
                body.quantity,
                actor=actor_of(req),
                expected_quantity=expected,
                reference=None if body.reference is UNSET else body.reference,
            )
        except Conflict as exc:
            if from_header:
                raise PreconditionFailed(
                    f"the level of item {item_key} at store {store_key} has changed since "
                    "the version If-Match names",
                    **exc.extra,
                ) from None
            raise
        send_changed(resp, level)

    def _current(self, tenant: str, store_id: int, item_id: int) -> InventoryLevel | None:
        """The level; ``None`` if store and item exist but have none; else ``NotFound``."""
        services.get_store(self._store, tenant, store_id)
        services.get_item(self._store, tenant, item_id)
        try:
            return services.get_level(self._store, tenant, store_id, item_id)
        except NotFound:
            return None


class Adjustments(Resource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        batch = bodies.adjustments(self._body(req, bodies.AdjustmentBatch))
        levels = services.adjust_inventory(
            self._store, tenant_of(req), key, batch, actor=actor_of(req)
        )
        resp.content_type = falcon.MEDIA_JSON
        resp.data = encode_rows(levels)


class Changes(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        raw_item = query_param(req, "item_id")
        item_id = parse_id("item_id", raw_item) if raw_item is not None else None
        since = timestamp_param(req, "since")
        until = timestamp_param(req, "until")
        request = page_request(req, services.CHANGES)
        where = ChangeFilter(item_id=item_id, since=since, until=until)
        page = services.list_changes(self._store, tenant_of(req), key, where, request)
        keep: dict[str, str] = {}
        if item_id is not None:
            keep["item_id"] = str(item_id)
        if since is not None:
            keep["since"] = canonical_timestamp(since)
        if until is not None:
            keep["until"] = canonical_timestamp(until)
        send_page(req, resp, page, request, **keep)


class Items(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = page_request(req, services.ITEMS)
        page = services.list_items(self._store, tenant_of(req), request)
        send_page(req, resp, page, request)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        new = bodies.new_item(self._body(req, bodies.ItemCreate))
        item = services.create_item(self._store, tenant_of(req), new)
        send_created(req, resp, item, f"/items/{item.id}")

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        item = services.get_item(self._store, tenant_of(req), key)
        send_representation(req, resp, encode_row(item))

    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        patch = bodies.item_patch(self._body(req, bodies.ItemUpdate))
        tenant = tenant_of(req)
        expected = if_match(req, lambda: services.get_item(self._store, tenant, key), "item")
        item = services.update_item(self._store, tenant, key, patch, expected)
        send_changed(resp, item)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        tenant = tenant_of(req)
        expected = if_match(req, lambda: services.get_item(self._store, tenant, key), "item")
        services.delete_item(self._store, tenant, key, expected)
        resp.status = falcon.HTTP_204


class ItemInventory(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        request = page_request(req, services.ITEM_LEVELS)
        page = services.list_item_inventory(self._store, tenant_of(req), key, request)
        send_page(req, resp, page, request)


class Health:
    """Liveness: the process answers. It touches nothing else, so a slow database cannot fail it."""

    def __init__(self, ctx: AppContext) -> None:
        pass

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = _OK


class Ready:
    """Readiness: the store answers (``check()`` raises ``StorageUnavailable``, a 503, if not)."""

    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._store.check()
        resp.data = _OK


class OpenAPIDocument:
    def __init__(self, ctx: AppContext) -> None:
        self._body = ctx.openapi_json

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self._body
