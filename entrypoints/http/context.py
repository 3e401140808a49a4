"""What every resource is built with: the storage bundle, the encoded OpenAPI document, limits.

It lives apart from ``resources.py`` so that the resources never import the ports: they hand
``storage.catalogue`` and ``storage.inventory`` to the use cases and call nothing on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from commerce.core.flags import DEFAULTS, Flags
from commerce.core.ports import Storage


class Lifecycle:
    """Where the process is in its life, as ``/readyz`` reports it.

    ``commerce serve`` sets ``draining`` when a stop begins (SIGTERM, Ctrl-C); from then on
    readiness answers 503 with the reason ``draining`` while the requests in progress finish.
    A plain attribute, so that a signal handler may set it without taking a lock.
    """

    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False


@dataclass(frozen=True, slots=True)
class AppContext:
    storage: Storage
    openapi_json: bytes
    max_body_bytes: int = 1 << 20
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    flags: Flags = DEFAULTS
    """The feature flags the use cases are asked to check (``core.flags``)."""
