"""How ``/metrics`` is served: a Falcon resource on the API's port, or a port of its own.

Either may require a bearer token, compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon
from prometheus_client import start_http_server
from prometheus_client.exposition import make_wsgi_app

from commerce.core.events import LogEvent, event_log

if TYPE_CHECKING:
    from commerce.adapters.telemetry.metrics import Metrics, MetricsConfig

log = event_log(__name__)


class MetricsResource:
    """``GET /metrics``: the registry, behind ``Authorization: Bearer <token>`` if one is set."""

    def __init__(self, metrics: Metrics, token: str | None = None) -> None:
        self._metrics = metrics
        self._token = None if token is None else token.encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not token_matches(self._token, req.get_header("Authorization")):
            _refused()
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description="send the metrics token as Authorization: Bearer <token>",
                challenges=["Bearer"],
            )
        body, content_type = self._metrics.exposition(req.get_header("Accept"))
        resp.content_type = content_type
        resp.data = body

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.on_get(req, resp)
        resp.data = b""


def token_matches(token: bytes | None, header: str | None) -> bool:
    """Whether ``header`` is ``Bearer <token>`` (always, when no token is set); constant time."""
    if token is None:
        return True
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token)


def _refused() -> None:
    log(LogEvent.AUTH_REFUSED, "metrics scrape refused: no valid token", reason="metrics_token")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (wsgiref would write each to stderr)."""


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


class _SharedPortWSGIServer(_ThreadingWSGIServer):
    """Bound with ``SO_REUSEPORT``: every worker of ``serve --workers`` listens on the metrics
    port, the kernel hands each scrape to one of them, and each answers with the sum."""

    allow_reuse_port = True


def serve_on_port(metrics: Metrics, config: MetricsConfig) -> Callable[[], None]:
    """Serve ``/metrics`` on ``config.port`` in a daemon thread; returns what stops it.

    Without a token, in one process, this is prometheus-client's ``start_http_server``;
    otherwise the client's WSGI app (behind the bearer check, if there is a token) on a small
    threading server of the same kind, which shares the port with the other workers in
    multiprocess mode.
    """
    assert config.port is not None
    if config.token is None and not metrics.multiprocess:
        server, thread = start_http_server(config.port, config.addr, registry=metrics.registry)
    else:
        inner = make_wsgi_app(metrics.registry)
        token = None if config.token is None else config.token.encode()

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if not token_matches(token, environ.get("HTTP_AUTHORIZATION")):
                _refused()
                start_response(
                    "401 Unauthorized",
                    [("WWW-Authenticate", "Bearer"), ("Content-Type", "text/plain")],
                )
                return [b"send the metrics token as Authorization: Bearer <token>\n"]
            metrics.refresh_pool()
            return cast(Iterable[bytes], inner(environ, start_response))

        server_class = _SharedPortWSGIServer if metrics.multiprocess else _ThreadingWSGIServer
        server = make_server(
            config.addr, config.port, app, server_class, handler_class=_QuietHandler
        )
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
