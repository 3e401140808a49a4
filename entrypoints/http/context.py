"""What every resource is built with: the storage bundle, the encoded OpenAPI document, limits.

It lives apart from ``resources.py`` so that the resources never import the ports: they hand
``storage.catalogue`` and ``storage.inventory`` to the use cases and call nothing on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from commerce.core.ports import Storage


@dataclass(frozen=True, slots=True)
class AppContext:
    storage: Storage
    openapi_json: bytes
    max_body_bytes: int = 1 << 20
