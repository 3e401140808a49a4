"""The WSGI app: ``create_app`` wires given ports, ``get_app`` builds them from configuration.

Any WSGI server can load it: ``waitress-serve --call commerce.entrypoints.http.app:get_app``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import falcon
import pluggy

from commerce.core.events import LogEvent
from commerce.core.ports import Authenticator, CommerceStore
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http import problems
from commerce.entrypoints.http.idempotency import Idempotency
from commerce.entrypoints.http.media import JSON_HANDLER, encode
from commerce.entrypoints.http.middleware import Authentication, BodyLimit, RequestContext
from commerce.entrypoints.http.openapi import openapi_document
from commerce.entrypoints.http.ratelimit import RateLimit, TokenBuckets, parse_policy
from commerce.entrypoints.http.resources import AppContext
from commerce.entrypoints.http.routes import ROUTES, required_roles, write_operations
from commerce.entrypoints.wiring import make_authenticators, open_store
from commerce.plugins import get_plugin_manager

log = logging.getLogger("commerce.http")


def create_app(
    store: CommerceStore,
    authenticators: Sequence[Authenticator],
    *,
    max_body_bytes: int = 1 << 20,
    idempotency_ttl: timedelta = timedelta(hours=24),
    clock: Callable[[], datetime] | None = None,
    rate_limiter: TokenBuckets | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The API over ``store``; a request is let in by the first authenticator that knows it.

    ``idempotency_ttl`` is how long ``Idempotency-Key`` responses are kept (24 hours at
    least); ``clock`` tells the time their age is measured by (for tests). ``rate_limiter``,
    if given, limits each tenant's requests (``None``: no limit).
    """
    idempotency = Idempotency(
        store, write_operations(), max_body_bytes=max_body_bytes, ttl=idempotency_ttl, clock=clock
    )
    middleware: list[Any] = [
        RequestContext(),
        BodyLimit(max_bytes=max_body_bytes),
        Authentication(authenticators, required_roles()),
    ]
    if rate_limiter is not None:
        # After authentication: the buckets are the callers' tenants'.
        middleware.append(RateLimit(rate_limiter))
    # After authentication: a key belongs to the caller's tenant.
    middleware.append(idempotency)
    app: falcon.App[falcon.Request, falcon.Response] = falcon.App(middleware=middleware)
    # JSON is the only body this API reads; anything else is a 415.
    app.req_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: JSON_HANDLER})
    app.resp_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: JSON_HANDLER})
    problems.install(app)

    ctx = AppContext(
        store=store, openapi_json=encode(openapi_document()), max_body_bytes=max_body_bytes
    )
    built: dict[object, object] = {}
    for route in ROUTES:
        resource = built.get(route.resource)
        if resource is None:
            resource = built[route.resource] = route.resource(ctx)
        if route.suffix is None:
            app.add_route(route.template, resource)
        else:
            app.add_route(route.template, resource, suffix=route.suffix)
    return app


def get_app(
    settings: Settings | None = None, pm: pluggy.PluginManager | None = None
) -> falcon.App[falcon.Request, falcon.Response]:
    """The app as configured: settings from the environment, adapters from the plugins."""
    settings = Settings.from_env() if settings is None else settings
    pm = get_plugin_manager() if pm is None else pm
    store = open_store(pm, settings)
    # Only the scheme: the rest of a database URL may hold a password.
    scheme = settings.database_url.split(":", 1)[0]
    log.info(
        "storage opened: %s://",
        scheme,
        extra={
            "event": LogEvent.STORAGE_OPENED,
            "scheme": scheme,
        },
    )
    authenticators = make_authenticators(pm, settings, store)
    policy = parse_policy(settings.rate_limit, settings.rate_burst)
    if "none" in settings.auth:
        log.warning(
            "authentication 'none' is in use: every request acts as admin of tenant %r",
            settings.tenant,
            extra={
                "event": LogEvent.AUTH_NONE_IN_USE,
                "tenant": settings.tenant,
            },
        )
    return create_app(
        store,
        authenticators,
        max_body_bytes=settings.max_body_bytes,
        idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        rate_limiter=None if policy is None else TokenBuckets(policy),
    )
