"""The resources: parse what the request says, call one use case, send what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, urlencode

import falcon
import msgspec

from core import services
from core.auth import Principal
from core.errors import InvalidInput
from core.models import InventoryLevel
from core.pagination import Page, PageRequest
from core.ports import CommerceStore
from core.services import parse_id, parse_item_ids
from entrypoints.http.media import encode, encode_row, encode_rows

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AppContext:
    """What resources are built with: the ports, and the OpenAPI document already encoded."""

    store: CommerceStore
    openapi_json: bytes


class Status(msgspec.Struct):
    """The body of ``/healthz`` and ``/readyz``."""

    status: str


_OK = encode(Status("ok"))


# -- helpers shared by the resources ---------------------------------------------------------


def tenant_of(req: falcon.Request) -> str:
    principal: Principal = req.context.principal
    return principal.tenant


def query_param(req: falcon.Request, name: str) -> str | None:
    """One query parameter's raw value; given twice it is ambiguous, so a 400."""
    value = req.params.get(name)
    if isinstance(value, list):
        raise InvalidInput(name, "must be given at most once")
    return value


def page_request(req: falcon.Request, kind: str) -> PageRequest:
    return PageRequest.parse(kind, query_param(req, "limit"), query_param(req, "cursor"))


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
        target = quote(req.root_path + req.path) + "?" + urlencode(query, safe=",")
        resp.set_header("Link", f'<{target}>; rel="next"')


# -- resources ---------------------------------------------------------------------------------


class Chains:
    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = page_request(req, services.CHAINS)
        page = services.list_chains(self._store, tenant_of(req), request)
        send_page(req, resp, page, request)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        resp.data = encode_row(services.get_chain(self._store, tenant_of(req), key))


class ChainStores:
    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store

    def on_get(self, req: falcon.Request, resp: falcon.Response, chain_id: str) -> None:
        key = parse_id("chain_id", chain_id)
        request = page_request(req, services.STORES)
        page = services.list_chain_stores(self._store, tenant_of(req), key, request)
        send_page(req, resp, page, request)


class Stores:
    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        resp.data = encode_row(services.get_store(self._store, tenant_of(req), key))


class StoreInventory:
    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store

    def on_get(self, req: falcon.Request, resp: falcon.Response, store_id: str) -> None:
        key = parse_id("store_id", store_id)
        raw_items = query_param(req, "items")
        item_ids = parse_item_ids(raw_items) if raw_items is not None else None
        request = page_request(req, services.STORE_LEVELS)
        page: Page[InventoryLevel] = services.list_store_inventory(
            self._store, tenant_of(req), key, request, item_ids
        )
        if item_ids is None:
            send_page(req, resp, page, request)
        else:
            send_page(req, resp, page, request, items=",".join(map(str, item_ids)))


class Items:
    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = page_request(req, services.ITEMS)
        page = services.list_items(self._store, tenant_of(req), request)
        send_page(req, resp, page, request)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        key = parse_id("item_id", item_id)
        resp.data = encode_row(services.get_item(self._store, tenant_of(req), key))


class ItemInventory:
    def __init__(self, ctx: AppContext) -> None:
        self._store = ctx.store

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
