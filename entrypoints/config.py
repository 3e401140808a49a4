"""Configuration: the one place that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from commerce.core.errors import Misconfigured

DEFAULT_DATABASE_URL = "sqlite:///commerce.db"
"""Embedded and durable; the path is relative to the directory the service starts in."""

DEFAULT_AUTH = ("apikeys",)
"""Secure unless configured otherwise: a request needs an API key of its tenant."""

MIN_IDEMPOTENCY_TTL_HOURS = 24
"""A client may retry a day later and still be answered from its key, so never less."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service is configured by; built from the environment or by hand in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    auth: tuple[str, ...] = DEFAULT_AUTH
    """``COMMERCE_AUTH``: authenticators tried in order; API keys unless configured otherwise."""
    tenant: str = "demo"
    max_body_bytes: int = 1024 * 1024
    idempotency_ttl_hours: int = MIN_IDEMPOTENCY_TTL_HOURS
    """How long ``Idempotency-Key`` responses are kept; values below 24 count as 24."""
    log_level: str = "INFO"
    """Threshold of the JSON log lines ``commerce serve`` writes to stderr."""
    demo: bool = False
    """Set by ``commerce serve --demo``: the one case besides ``memory://`` that allows ``none``."""
    rate_limit: str | None = None
    """``COMMERCE_RATE_LIMIT``: requests per tenant, such as ``100/second``; off if unset."""
    rate_burst: str | None = None
    """``COMMERCE_RATE_BURST``: how many requests a tenant may send at once (default: the limit)."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Every ``COMMERCE_*`` variable, lower-cased and without the prefix, for plugins."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        extra = {
            key.removeprefix("COMMERCE_").lower(): value
            for key, value in env.items()
            if key.startswith("COMMERCE_")
        }
        auth = tuple(a.strip() for a in env.get("COMMERCE_AUTH", "").split(",") if a.strip())
        return cls(
            database_url=env.get("COMMERCE_DATABASE_URL", DEFAULT_DATABASE_URL),
            auth=auth or DEFAULT_AUTH,
            tenant=env.get("COMMERCE_TENANT", "demo"),
            max_body_bytes=_whole(env, "COMMERCE_MAX_BODY_BYTES", 1024 * 1024),
            idempotency_ttl_hours=max(
                MIN_IDEMPOTENCY_TTL_HOURS,
                _whole(env, "COMMERCE_IDEMPOTENCY_TTL_HOURS", MIN_IDEMPOTENCY_TTL_HOURS),
            ),
            log_level=env.get("COMMERCE_LOG_LEVEL", "INFO").strip().upper() or "INFO",
            rate_limit=env.get("COMMERCE_RATE_LIMIT", "").strip() or None,
            rate_burst=env.get("COMMERCE_RATE_BURST", "").strip() or None,
            extra=extra,
        )

    def plugin_settings(self) -> dict[str, str]:
        """What plugins see: every ``COMMERCE_*`` setting plus the resolved core ones."""
        return {**self.extra, "database_url": self.database_url, "tenant": self.tenant}


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the environment; ``Misconfigured`` names the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise Misconfigured(f"{name} must be a positive whole number, not {raw[:40]!r}")
    return int(raw)
