"""Entity tags and conditional requests: strong ETags of the bytes sent, If-None-Match, If-Match.

An ETag is a hash of the representation itself, so every replica, every backend and every
restart gives the same resource the same tag, and no version column is needed to make one.
"""

from __future__ import annotations

import base64
import hashlib
import re

import falcon

from commerce.core.errors import PreconditionFailed

_ELEMENT = re.compile(r'\s*(?:(W/)?("[\x21\x23-\x7e\x80-\xff]*")|[^,]*)\s*(?:,|$)')
"""One element of an entity-tag list, and the comma after it: a well-formed tag (groups 1, 2)
or anything else up to the next comma, which matches nothing."""


def etag_of(body: bytes) -> str:
    """A strong entity tag: 162 bits of the body's SHA-256, quoted, as RFC 9110 spells it."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest())
    return '"' + digest[:27].decode("ascii") + '"'


def _tags(header: str) -> list[tuple[bool, str]]:
    """``(weak, "opaque")`` for each well-formed entity tag of a list; the rest is ignored."""
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(header):
        element = _ELEMENT.match(header, position)
        if element is None or element.end() == position:
            break
        if element[2] is not None:
            tags.append((element[1] is not None, element[2]))
        position = element.end()
    return tags


def none_match(header: str, etag: str) -> bool:
    """Whether ``If-None-Match: header`` matches ``etag``, by the weak comparison it calls for."""
    if header.strip() == "*":
        return True
    return any(tag == etag for _, tag in _tags(header))


def send_representation(req: falcon.Request, resp: falcon.Response, body: bytes) -> None:
    """Send one resource's representation with its ETag, or a 304 if the client has it already."""
    etag = etag_of(body)
    resp.set_header("ETag", etag)
    condition = req.get_header("If-None-Match")
    if condition is not None and none_match(condition, etag):
        resp.status = falcon.HTTP_304
        return
    resp.data = body


def require_match(header: str, current: bytes | None, what: str) -> None:
    """``PreconditionFailed`` unless ``If-Match: header`` matches the current representation.

    ``current`` is ``None`` when there is no representation yet; then nothing matches, not
    even ``*``. The comparison is strong: a weak tag never matches.
    """
    if current is None:
        raise PreconditionFailed(f"{what} does not exist, so If-Match cannot match it")
    if header.strip() == "*":
        return
    etag = etag_of(current)
    if not any(not weak and tag == etag for weak, tag in _tags(header)):
        raise PreconditionFailed(
            f"{what} has changed: If-Match names none of its current ETag; GET it again"
        )
