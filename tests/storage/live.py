"""A real waitress server in a thread, and a small HTTP client, for tests that need concurrency
over real sockets (the falcon test client runs every request in the caller's thread)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@contextmanager
def serving(app: Any, *, threads: int = 8) -> Iterator[tuple[str, int]]:
    """Serve ``app`` on a free local port with ``threads`` worker threads; yields (host, port)."""
    sockets: dict[int, Any] = {}
    server = create_server(app, map=sockets, host="127.0.0.1", port=0, threads=threads)
    assert isinstance(server, BaseWSGIServer)  # one host, one port: one listener
    assert server.socket is not None
    port = int(server.socket.getsockname()[1])
    stopping = threading.Event()

    def run() -> None:
        # waitress's own run() loops until every connection is gone; this one stops when told.
        while not stopping.is_set():
            wasyncore.loop(timeout=0.05, map=sockets, count=1)

    runner = threading.Thread(target=run, name="waitress", daemon=True)
    runner.start()
    try:
        yield "127.0.0.1", port
    finally:
        stopping.set()
        runner.join(timeout=10)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(sockets)


class Client:
    """One keep-alive connection, as a till would hold; not shared between threads."""

    def __init__(self, address: tuple[str, int], *, timeout: float = 60) -> None:
        self._conn = http.client.HTTPConnection(*address, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> Answer:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        # No retry on a broken connection: a POST sent twice could apply twice.
        self._conn.request(method, path, body=payload, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        text = raw.decode() if raw else ""
        parsed: Any = json.loads(text) if text and text[0] in "[{" else text
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, parsed)

    def close(self) -> None:
        self._conn.close()
