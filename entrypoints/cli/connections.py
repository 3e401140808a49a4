"""How ``commerce serve``'s waitress takes connections: where, how many, for how long, its
own error answers.

waitress reads every connection in one event loop and hands a request to a worker thread
only once it has arrived in full, so an idle or slow connection costs a socket, never a
thread. What stops a waitress server under a flood of such connections is its connection
limit (100 by default: past it, it accepts nothing) and how long it keeps them (120 s idle,
and for ever while a client trickles a header line every few seconds). Here the limit is
raised well above any honest client count, idle connections are dropped sooner, and a
request must arrive in full within a read timeout. docs/security.md says what a proxy in
front must still do.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import select
import socket
import uuid
from collections.abc import Mapping
from typing import Any, cast

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from commerce.core.errors import Misconfigured
from commerce.core.events import LogEvent, event_log
from commerce.entrypoints.config import Settings

log = event_log("commerce.serve")

CLEANUP_SECONDS = 1
"""How often idle connections past the idle timeout, and requests past the read timeout,
are looked for: each look is one pass over the open connections in the event loop."""

FD_MARGIN = 256
"""File descriptors kept beside the connections: the listening sockets, the loop's
triggers, database connections, log files, whatever a plugin opens."""

_SLUGS = {
    400: ("bad-request", "Bad Request"),
    413: ("content-too-large", "Content Too Large"),
    431: ("request-header-fields-too-large", "Request Header Fields Too Large"),
    501: ("not-implemented", "Not Implemented"),
}


# -- the command line's words for where to listen -------------------------------------
def listen_host(raw: str) -> str:
    """An address to listen on: an IP address, or a name this machine resolves."""
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        pass
    else:
        return raw
    if raw and not raw.replace(".", "").isdigit():
        try:
            socket.getaddrinfo(raw, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (OSError, UnicodeError):
            pass
        else:
            return raw
    raise argparse.ArgumentTypeError(
        f"not an address to listen on: {raw[:80]!r} (an IPv4 address such as 127.0.0.1 or "
        "0.0.0.0, an IPv6 address such as ::1, or a host name this machine resolves)"
    )


def port_number(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"not a port number: {raw[:40]!r} (a whole number from 0 to 65535; 0 picks a free one)"
        )
    return value


def positive_whole(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"not a positive integer: {raw[:40]!r} (a whole number of 1 or more)"
        )
    return value


def waitress_options(settings: Settings) -> dict[str, Any]:
    """The ``create_server`` arguments that bound what a connection may hold and for how long."""
    return {
        "connection_limit": settings.connection_limit,
        "channel_timeout": settings.idle_timeout,
        "cleanup_interval": CLEANUP_SECONDS,
        # waitress refuses a body of max_request_body_size bytes or more, the app one of more
        # than max_body_bytes: one more byte makes the two limits the same. A declared length
        # over it is answered 413 as soon as the headers are in, before the body is sent.
        "max_request_body_size": settings.max_body_bytes + 1,
        "max_request_header_size": settings.max_header_bytes,
        # select() cannot watch a descriptor numbered 1024 or above; poll() can, and a
        # thousand connections are past that.
        "asyncore_use_poll": hasattr(select, "poll"),
    }


def descriptors_for(connections: int) -> int:
    """How many connections this process can hold: ``connections``, or fewer if the file
    descriptor limit cannot be raised far enough. The soft limit is raised towards the hard
    one when needed; past it, accept() would fail with EMFILE and waitress would spin."""
    try:
        import resource
    except ImportError:  # pragma: no cover -- Windows has no resource module and no such limit
        return connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + FD_MARGIN
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return connections
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    if target >= needed:
        return connections
    return max(target // 2, target - FD_MARGIN)


def within_descriptors(settings: Settings) -> Settings:
    """``settings`` with a connection limit the process's file descriptor limit allows."""
    allowed = descriptors_for(settings.connection_limit)
    if allowed >= settings.connection_limit:
        return settings
    log(
        LogEvent.CONNECTION_LIMIT_LOWERED,
        "the file descriptor limit allows %d connections, not COMMERCE_CONNECTION_LIMIT=%d; "
        "raise `ulimit -n`",
        allowed,
        settings.connection_limit,
        connection_limit=allowed,
        requested=settings.connection_limit,
    )
    return dataclasses.replace(settings, connection_limit=allowed)


class ReadDeadlines:
    """Closes connections whose request has not arrived in full within ``seconds``.

    waitress's own timeout counts from a connection's last byte, so a client that sends a
    header line every few seconds (slowloris) would be kept for ever. This one counts from
    the first time a sweep sees the request partly read: a sweep a second makes that
    within a second of its first byte.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._seen: dict[HTTPChannel, tuple[object, float]] = {}

    def sweep(self, sockets: Mapping[int, Any], now: float) -> int:
        """Mark the connections past the deadline to close; how many it marked."""
        seen: dict[HTTPChannel, tuple[object, float]] = {}
        closed = 0
        for channel in list(sockets.values()):
            if not isinstance(channel, HTTPChannel):
                continue
            request = channel.request
            # A request already answered or being answered is the worker's, not ours.
            if request is None or channel.requests or channel.will_close:
                continue
            known = self._seen.get(channel)
            first = known[1] if known is not None and known[0] is request else now
            if now - first >= self._seconds:
                # As waitress's own idle timeout does: the loop closes it on its next turn.
                channel.will_close = True
                closed += 1
            else:
                seen[channel] = (request, first)
        self._seen = seen
        return closed


class ProblemErrorTask(ErrorTask):
    """waitress's answer to a request it refuses itself (malformed framing, a declared body
    over the limit, headers too large), sent as the API's other errors are: an RFC 9457
    problem document with an ``X-Request-ID``, instead of waitress's plain text."""

    def execute(self) -> None:
        # The stubs call the request an Error; at run time it is the parser, holding one.
        request: Any = self.request
        error = request.error
        code = int(error.code)
        slug, title = _SLUGS.get(code, ("internal-error", "Internal Server Error"))
        request_id = uuid.uuid4().hex
        body = json.dumps(
            {
                "type": _problem_type(slug),
                "title": title,
                "status": code,
                "detail": _detail(code, str(error.body), request, self.channel.adj),
            },
            separators=(",", ":"),
        ).encode()
        self.status = f"{code} {title}"
        self.response_headers = [
            *self.response_headers,
            ("Content-Type", "application/problem+json"),
            ("X-Request-ID", request_id),
        ]
        # The rest of the connection's input cannot be trusted to start a request.
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class ProblemChannel(HTTPChannel):
    """A waitress connection whose refusals are problem documents (``ProblemErrorTask``)."""

    error_task_class = ProblemErrorTask


def _problem_type(slug: str) -> str:
    # Imported here: the HTTP layer is loaded by then, and the verbs that do not serve
    # never load it.
    from commerce.entrypoints.http.problems import problem_type

    return problem_type(slug)


def _detail(code: int, said: str, request: Any, adj: Any) -> str:
    if code == 413:
        most = int(adj.max_request_body_size) - 1
        declared = int(getattr(request, "content_length", 0) or 0)
        if declared > 0:
            return f"The body is {declared} bytes; at most {most} are accepted."
        return f"The body is longer than {most} bytes, the most accepted."
    if code == 431:
        return (
            f"The request line and headers are longer than {adj.max_request_header_size} "
            "bytes, the most accepted."
        )
    if code == 400:
        # waitress's own words name the framing fault (a Content-Length that is not a
        # number, a bad chunk size); a quoted piece of the request after them is dropped.
        fault = said.split(' "', 1)[0].rstrip(".")
        return f"The request is not well-formed HTTP/1.1: {fault}."
    return said


def listen(host: str, port: int, *, backlog: int) -> list[socket.socket]:
    """Listening sockets for ``host`` and ``port``, as waitress would bind them itself."""
    try:
        # (family, type, proto, address) each; the stubs call it a string.
        wanted: list[tuple[int, int, int, Any]] = cast(
            Any, Adjustments(host=host, port=port)
        ).listen
    except ValueError as exc:  # waitress: a host it cannot resolve
        raise Misconfigured(
            f"cannot listen on {host} port {port}: {exc}; choose another --host"
        ) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in wanted:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise Misconfigured(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}; "
            "choose another --host or --port"
        ) from None
    return sockets
