"""Configuration: the one place that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from commerce.core import validation
from commerce.core.errors import InvalidInput, Misconfigured

DEFAULT_DATABASE_URL = "sqlite:///commerce.db"
"""Embedded and durable; the path is relative to the directory the service starts in."""

DEFAULT_AUTH = ("apikeys",)
"""Secure unless configured otherwise: a request needs an API key of its tenant."""

MIN_IDEMPOTENCY_TTL_HOURS = 24
"""A client may retry a day later and still be answered from its key, so never less."""

DEFAULT_CONNECTION_LIMIT = 1000
"""Open connections ``serve`` holds at most; past it new ones wait in the listen backlog.
Idle connections cost no thread (waitress reads them in its event loop), so this is set well
above any legitimate client count: a few hundred idle or slow connections must not lock
everyone out, as waitress's own default of 100 would."""

DEFAULT_IDLE_TIMEOUT = 75
"""Seconds an idle keep-alive connection is kept: above the 60 s idle timeout of common
proxies and load balancers, so that they, not we, close a pooled connection."""

DEFAULT_READ_TIMEOUT = 30
"""Seconds a request may take to arrive in full, headers and body, from its first byte: a
client that trickles a header line every few seconds (slowloris) is cut off after this."""

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
"""Request line and headers together; a larger head is refused (431) before it is buffered."""

DEFAULT_RATE_LIMIT_STORE = "memory://"
"""Each process counts its own tenants' requests unless ``COMMERCE_RATE_LIMIT_STORE`` says."""


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
    log_format: str = "auto"
    """``COMMERCE_LOG_FORMAT`` (or ``--log-format``): ``json``, ``console``, or ``auto``:
    console lines when stderr is a terminal, JSON lines otherwise."""
    slow_request_ms: int = 1000
    """``COMMERCE_SLOW_REQUEST_MS``: a request taking longer is logged as ``SLOW_REQUEST``."""
    demo: bool = False
    """Set by ``commerce serve --demo``: the one case besides ``memory://`` that allows ``none``."""
    rate_limit: str | None = None
    """``COMMERCE_RATE_LIMIT``: requests per tenant, such as ``100/second``; off if unset."""
    rate_burst: str | None = None
    """``COMMERCE_RATE_BURST``: how many requests a tenant may send at once (default: the limit)."""
    rate_limit_store: str = DEFAULT_RATE_LIMIT_STORE
    """``COMMERCE_RATE_LIMIT_STORE``: where the rate limit's buckets live, by URL: ``memory://``
    (each process its own) or ``redis://host:6379/0`` (shared by every process and host)."""
    tenant_concurrency: int | None = None
    """``COMMERCE_TENANT_CONCURRENCY``: requests one tenant may have in progress at once; 0
    turns the cap off; unset, a share of the server's threads (``tenant_concurrency_for``)."""
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    """``COMMERCE_CONNECTION_LIMIT``: connections ``serve`` keeps open at once."""
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    """``COMMERCE_IDLE_TIMEOUT``: seconds an idle connection is kept open."""
    read_timeout: int = DEFAULT_READ_TIMEOUT
    """``COMMERCE_READ_TIMEOUT``: seconds a request may take to arrive, from its first byte."""
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    """``COMMERCE_MAX_HEADER_BYTES``: the most a request's line and headers may hold."""
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
            tenant=_tenant(env.get("COMMERCE_TENANT", "demo")),
            max_body_bytes=_whole(env, "COMMERCE_MAX_BODY_BYTES", 1024 * 1024),
            idempotency_ttl_hours=max(
                MIN_IDEMPOTENCY_TTL_HOURS,
                _whole(env, "COMMERCE_IDEMPOTENCY_TTL_HOURS", MIN_IDEMPOTENCY_TTL_HOURS),
            ),
            log_level=env.get("COMMERCE_LOG_LEVEL", "INFO").strip().upper() or "INFO",
            log_format=env.get("COMMERCE_LOG_FORMAT", "auto").strip().lower() or "auto",
            slow_request_ms=_whole(env, "COMMERCE_SLOW_REQUEST_MS", 1000),
            rate_limit=env.get("COMMERCE_RATE_LIMIT", "").strip() or None,
            rate_burst=env.get("COMMERCE_RATE_BURST", "").strip() or None,
            rate_limit_store=env.get("COMMERCE_RATE_LIMIT_STORE", "").strip()
            or DEFAULT_RATE_LIMIT_STORE,
            tenant_concurrency=_tenant_concurrency(env.get("COMMERCE_TENANT_CONCURRENCY", "")),
            connection_limit=_whole(env, "COMMERCE_CONNECTION_LIMIT", DEFAULT_CONNECTION_LIMIT),
            idle_timeout=_whole(env, "COMMERCE_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT),
            read_timeout=_whole(env, "COMMERCE_READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
            max_header_bytes=_whole(env, "COMMERCE_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES),
            extra=extra,
        )

    def tenant_concurrency_for(self, threads: int) -> int | None:
        """How many requests one tenant may have in progress on a server of ``threads``
        threads; ``None``: no cap. Unset, half the threads rounded up (at least 1), so that
        one tenant never holds them all while another waits."""
        if self.tenant_concurrency == 0:
            return None
        if self.tenant_concurrency is None:
            return max(1, (threads + 1) // 2)
        return self.tenant_concurrency

    def plugin_settings(self) -> dict[str, str]:
        """What plugins see: every ``COMMERCE_*`` setting plus the resolved core ones."""
        return {**self.extra, "database_url": self.database_url, "tenant": self.tenant}


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the environment; ``Misconfigured`` names the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise Misconfigured(f"{name} must be a positive whole number, not {raw[:40]!r}")
    return int(raw)


def _tenant(raw: str) -> str:
    """``COMMERCE_TENANT``, checked by the rule every tenant id follows."""
    try:
        return validation.tenant_id("COMMERCE_TENANT", raw.strip())
    except InvalidInput as error:
        raise Misconfigured(error.detail) from None


def _tenant_concurrency(raw: str) -> int | None:
    """``COMMERCE_TENANT_CONCURRENCY``: ``None`` when unset (the default share), else 0 or more."""
    raw = raw.strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise Misconfigured(
            "COMMERCE_TENANT_CONCURRENCY must be a whole number of requests per tenant, "
            f"0 for no cap, not {raw[:40]!r}"
        )
    return int(raw)
