"""Cross-cutting middleware: request ids and request logs, the body size limit, authentication."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Mapping, Sequence

import falcon

from commerce.core import context
from commerce.core.auth import Principal, Role
from commerce.core.errors import Forbidden, Unauthorized
from commerce.core.events import LogEvent, event_log
from commerce.core.ports import Authenticator
from commerce.plugins import PROBE_PATHS

log = event_log("commerce.http")

SLOW_REQUEST_MS = 1000
"""A request that takes longer is logged as ``SLOW_REQUEST`` (``COMMERCE_SLOW_REQUEST_MS``)."""

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """Request ids unique across processes and restarts without a system call per request:
    16 random hex digits drawn once per process, then a counter (``3f9c0e6a1b2d4c58-1a``).

    ``uuid4()`` reads the kernel's random source for every id, which cost more than the rest
    of a cached read's request line; an id needs to be unique, not secret.
    """

    def __init__(self) -> None:
        self.reset()
        # A forked worker draws its own prefix, never repeating its parent's ids.
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


new_request_id = RequestIds()


class RequestContext:
    """Gives every request an id, sends it back as ``X-Request-ID``, logs one record per request.

    A client's own id is kept when it looks like an id, so that its logs and ours line up; any
    other value is replaced rather than echoed, as it could carry anything into our logs.
    The record holds the path without the query string, which may hold secrets.

    The request id, method and route template (and the tenant, once authenticated) are bound
    in ``core.context`` for the request's duration, so that every line logged while it runs,
    by any module or library, carries them. A request slower than ``slow_ms`` is logged again
    as ``SLOW_REQUEST`` at WARNING.
    """

    def __init__(
        self, slow_ms: float | None = SLOW_REQUEST_MS, *, log_probes: bool = False
    ) -> None:
        self._slow_ms = slow_ms
        # The health probes (``PROBE_PATHS``) are polled every few seconds: their lines would
        # drown the others, so they are left out unless asked for (or slow).
        self._quiet = frozenset() if log_probes else PROBE_PATHS

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = req.context
        ctx.started = time.perf_counter()
        given = req.get_header("X-Request-ID")
        if given is not None and _SANE_REQUEST_ID.fullmatch(given):
            ctx.request_id = given
        else:
            ctx.request_id = new_request_id()
        context.clear()  # the thread served another request before; none of its fields stay
        context.bind(request_id=ctx.request_id, method=req.method)

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        if req.uri_template:
            context.bind(route=req.uri_template)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        ctx = req.context
        request_id: str = ctx.request_id
        resp.set_header("X-Request-ID", request_id)
        try:
            duration_ms = round((time.perf_counter() - ctx.started) * 1000, 3)
            slow = self._slow_ms is not None and duration_ms > self._slow_ms
            quiet = req.path in self._quiet and not slow
            if not quiet and (slow or log.enabled(LogEvent.REQUEST_COMPLETED)):
                fields = {
                    "request_id": request_id,
                    "method": req.method,
                    "path": req.path,
                    "route": req.uri_template,
                    "status": resp.status_code,
                    "duration_ms": duration_ms,
                }
                line = ("%s %s %d %.1fms", req.method, req.path, resp.status_code, duration_ms)
                log(LogEvent.REQUEST_COMPLETED, *line, **fields)
                if slow:
                    log(LogEvent.SLOW_REQUEST, *line, threshold_ms=self._slow_ms, **fields)
        finally:
            context.clear()


class BodyLimit:
    """Refuses a declared body larger than the limit before anything reads it (413)."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        # A malformed Content-Length raises Falcon's own 400 here, which is what we want.
        length = req.content_length
        if length is not None and length > self._max_bytes:
            raise falcon.HTTPContentTooLarge(
                description=f"The body is {length} bytes; at most {self._max_bytes} are accepted."
            )


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` for no header or another scheme."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Authentication:
    """Puts the caller's ``Principal`` in ``req.context.principal``, or refuses the request.

    ``roles`` maps (URI template, method) to the role an operation needs, ``None`` for a
    public one. A method the table does not list on a known route (Falcon then answers 405
    or OPTIONS) needs a reader: an unlisted operation is never public by accident. The
    exception is a route whose every operation is public (``/healthz``): there the 405 is
    public too, as it runs no resource code and tells only what the public document says.
    """

    def __init__(
        self,
        authenticators: Sequence[Authenticator],
        roles: Mapping[tuple[str, str], Role | None],
    ) -> None:
        self._authenticators = tuple(authenticators)
        self._roles = dict(roles)
        templates = {template for template, _ in self._roles}
        self._public_routes = frozenset(
            template
            for template in templates
            if all(role is None for (t, _), role in self._roles.items() if t == template)
        )

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        if resource is None:
            return  # no route matched: Falcon answers 404 next
        template = req.uri_template or ""
        unlisted = None if template in self._public_routes else Role.reader
        needed = self._roles.get((template, req.method), unlisted)
        if needed is None:
            return
        principal = self.authenticate(req.get_header("Authorization"))
        context.bind(tenant=principal.tenant)
        if not principal.may(needed):
            log(
                LogEvent.ROLE_REFUSED,
                "refused: this needs the %s role; the caller has %s",
                needed.name,
                principal.role.name,
                needed=needed.name,
                role=principal.role.name,
                subject=principal.subject,
            )
            raise Forbidden(
                f"this needs the {needed.name} role; these credentials have {principal.role.name}"
            )
        req.context.principal = principal

    def authenticate(self, header: str | None) -> Principal:
        """The first principal an authenticator answers with; ``Unauthorized`` if none does."""
        token = bearer_token(header)
        try:
            for authenticator in self._authenticators:
                principal = authenticator.authenticate(token)
                if principal is not None:
                    return principal
        except Unauthorized:
            _refused("rejected")  # an authenticator refused outright (an unknown tenant)
            raise
        if token is None:
            _refused("no_credentials" if header is None else "not_bearer")
            raise Unauthorized("send credentials as Authorization: Bearer <API key or JWT>")
        _refused("not_accepted")
        raise Unauthorized("the bearer token was not accepted")


def _refused(reason: str) -> None:
    """Log a refused authentication by its reason; never the header or the token."""
    log(LogEvent.AUTH_REFUSED, "authentication refused: %s", reason, reason=reason)
