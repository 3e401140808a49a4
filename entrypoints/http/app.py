"""The WSGI app: ``create_app`` wires a given storage, ``get_app`` builds it from configuration.

Any WSGI server can load it: ``waitress-serve --call commerce.entrypoints.http.app:get_app``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import falcon
import pluggy

from commerce.core.flags import DEFAULTS, Flags
from commerce.core.ports import Authenticator, Storage
from commerce.core.ratelimit import RateLimiter
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http import problems
from commerce.entrypoints.http.concurrency import TenantConcurrency
from commerce.entrypoints.http.context import AppContext, Lifecycle
from commerce.entrypoints.http.idempotency import Idempotency
from commerce.entrypoints.http.media import JSON_HANDLER, encode
from commerce.entrypoints.http.middleware import (
    SLOW_REQUEST_MS,
    Authentication,
    BodyLimit,
    RequestContext,
)
from commerce.entrypoints.http.openapi import openapi_document
from commerce.entrypoints.http.ratelimit import RateLimit
from commerce.entrypoints.http.routes import (
    ROUTES,
    answers_head,
    required_roles,
    write_operations,
)
from commerce.plugins import Instrumentation


def create_app(
    storage: Storage,
    authenticators: Sequence[Authenticator],
    *,
    max_body_bytes: int = 1 << 20,
    idempotency_ttl: timedelta = timedelta(hours=24),
    clock: Callable[[], datetime] | None = None,
    rate_limiter: RateLimiter | None = None,
    tenant_concurrency: int | None = None,
    instrumentations: Sequence[Instrumentation] = (),
    slow_request_ms: float | None = SLOW_REQUEST_MS,
    lifecycle: Lifecycle | None = None,
    flags: Flags = DEFAULTS,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The API over ``storage``; a request is let in by the first authenticator that knows it.

    ``idempotency_ttl`` is how long ``Idempotency-Key`` responses are kept (24 hours at
    least); ``clock`` tells the time their age is measured by (for tests). ``rate_limiter``,
    if given, limits each tenant's requests (``None``: no limit). ``tenant_concurrency``, if
    given, is how many requests one tenant may have in progress at once (``None``: no cap;
    ``Settings.tenant_concurrency_for(threads)`` gives the configured one).
    ``instrumentations`` (tracing, metrics: plugins' ``commerce_instrumentations``) wrap the
    storage, add their middleware outside the service's own, and add their routes.
    A request slower than ``slow_request_ms`` is logged as ``SLOW_REQUEST`` (``None``: never).
    ``lifecycle`` is what ``/readyz`` reads to answer 503 ``draining`` once a stop begins
    (``commerce serve`` sets it on SIGTERM). ``flags`` answers whether a feature behind a flag
    is on for the caller's tenant (``core.flags``; by default every flag at its default).
    """
    for instrumentation in instrumentations:
        if instrumentation.wrap_storage is not None:
            storage = instrumentation.wrap_storage(storage)
    # The idempotency layer is given its own port and nothing else of storage.
    idempotency = Idempotency(
        storage.idempotency,
        write_operations(),
        max_body_bytes=max_body_bytes,
        ttl=idempotency_ttl,
        clock=clock,
    )
    # An instrumentation's routes (``/metrics``) are public: the resource checks its own
    # credentials, if any (a metrics token), rather than the API's.
    extra_routes = [
        route for instrumentation in instrumentations for route in instrumentation.routes
    ]
    public = {
        (template, method): None for template, _ in extra_routes for method in ("GET", "HEAD")
    }
    middleware: list[Any] = [
        *(m for instrumentation in instrumentations for m in instrumentation.middleware),
        RequestContext(slow_ms=slow_request_ms),
        BodyLimit(max_bytes=max_body_bytes),
        Authentication(authenticators, {**required_roles(), **public}),
    ]
    if rate_limiter is not None:
        # After authentication: the buckets are the callers' tenants'.
        middleware.append(RateLimit(rate_limiter))
    if tenant_concurrency is not None:
        # After authentication (a slot is the caller's tenant's) and before idempotency, so
        # that a replay, too, is counted, and its record is written while the slot is held.
        middleware.append(TenantConcurrency(tenant_concurrency))
    # After authentication: a key belongs to the caller's tenant.
    middleware.append(idempotency)
    app: falcon.App[falcon.Request, falcon.Response] = falcon.App(middleware=middleware)
    # JSON is the only body this API reads; anything else is a 415.
    app.req_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: JSON_HANDLER})
    app.resp_options.media_handlers = falcon.media.Handlers({falcon.MEDIA_JSON: JSON_HANDLER})
    problems.install(app)

    ctx = AppContext(
        storage=storage,
        openapi_json=encode(openapi_document()),
        max_body_bytes=max_body_bytes,
        lifecycle=Lifecycle() if lifecycle is None else lifecycle,
        flags=flags,
    )
    built: dict[object, object] = {}
    for route in ROUTES:
        resource = built.get(route.resource)
        if resource is None:
            resource = built[route.resource] = answers_head(route.resource(ctx))
        app.add_route(route.template, resource)
    for template, extra in extra_routes:
        app.add_route(template, extra)
    return app


WAITRESS_THREADS = 4
"""waitress's default thread count: what ``get_app`` shares out among tenants unless told."""


def get_app(
    settings: Settings | None = None,
    pm: pluggy.PluginManager | None = None,
    *,
    threads: int = WAITRESS_THREADS,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The app as configured: settings from the environment, adapters from the plugins.

    ``bootstrap`` builds them, as it does for ``commerce serve`` and the CLI: it opens the
    storage, makes the authenticators (refusing ``none`` where it is not allowed) and the
    rate limiter, and logs what it did. ``threads`` is how many the server that runs the app
    has: each tenant's cap on requests in progress is a share of them.
    """
    runtime = bootstrap(settings, pm)
    return create_app(
        runtime.storage,
        runtime.authenticators,
        max_body_bytes=runtime.settings.max_body_bytes,
        idempotency_ttl=timedelta(hours=runtime.settings.idempotency_ttl_hours),
        rate_limiter=runtime.rate_limiter,
        tenant_concurrency=runtime.settings.tenant_concurrency_for(threads),
        instrumentations=runtime.instrumentations,
        slow_request_ms=runtime.settings.slow_request_ms,
        flags=runtime.flags,
    )
