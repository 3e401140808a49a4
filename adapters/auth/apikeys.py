"""``apikeys``: bearer API keys (``cm_<prefix>_<secret>``) checked against the stored digests.

A token that does not start with ``cm_`` is not this authenticator's: it answers ``None``
and the next one may try. A token that does, but is malformed, unknown, revoked or carries
the wrong secret, is refused with one and the same message, so that an answer never tells
whether a prefix exists; nor does the time it takes: a well-formed key that is not exactly
one verified recently costs one storage lookup and one digest comparison, whether its
prefix exists or not.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from commerce.core.apikeys import hash_secret, is_api_key, parse_api_key
from commerce.core.auth import Principal
from commerce.core.errors import Misconfigured, Unauthorized
from commerce.core.events import LogEvent, event_log
from commerce.core.ports import ApiKeys, Storage
from commerce.plugins import AuthenticatorProvider, hookimpl

log = event_log("commerce.auth.apikeys")

NAME = "apikeys"

REFUSED = "the bearer token was not accepted"
"""The one detail of every refusal: the same words the HTTP layer uses for a token no
authenticator knows, so a refused key and a token of no known kind cannot be told apart."""

DEFAULT_CACHE_SECONDS = 5.0
"""How long a verified key is trusted without asking storage: a revocation takes effect
in every process within this time. 0 turns the cache off."""

DEFAULT_TOUCH_SECONDS = 60.0
"""``last_used_at`` is written at most once per key per this many seconds, per process."""

CACHE_LIMIT = 10_000
"""Keys remembered at most; past it the cache starts again empty, which only costs lookups."""

# Compared against when no key has the prefix, so an unknown prefix costs the same digest
# comparison as a known one.
_NO_SUCH_HASH = hash_secret("no key has this prefix")


def digests_match(given: str, stored: str) -> bool:
    """The one comparison of a key's digest with a stored one, in constant time."""
    return hmac.compare_digest(given, stored)


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    key_id: int
    until: float


class ApiKeyAuthenticator:
    """Verifies API keys against the ``ApiKeys`` port; thread-safe, with a short cache of
    verified keys. It is given that port alone: it never sees the catalogue or the inventory.

    ``monotonic`` measures the cache's and the touch throttle's intervals; ``now`` gives the
    time recorded as ``last_used_at``. Both are parameters so tests need not sleep.
    """

    def __init__(
        self,
        api_keys: ApiKeys,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        touch_seconds: float = DEFAULT_TOUCH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api_keys = api_keys
        self._cache_seconds = cache_seconds
        self._touch_seconds = touch_seconds
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], _Verified] = {}
        self._touched: dict[int, float] = {}

    def authenticate(self, token: str | None) -> Principal | None:
        if token is None or not is_api_key(token):
            return None
        parsed = parse_api_key(token)
        if parsed is None:
            raise Unauthorized(REFUSED)
        prefix, secret = parsed
        digest = hash_secret(secret)
        verified = self._cached(prefix, digest)
        if verified is None:
            verified = self._verify(prefix, digest)
        self._touch(verified.key_id)
        return verified.principal

    def _cached(self, prefix: str, digest: str) -> _Verified | None:
        """The key verified recently with exactly this prefix and secret, if any.

        The cache is found by prefix and digest together: a wrong secret on a cached key's
        prefix misses it as an unknown prefix does, and both go to storage, so a quick
        answer cannot tell that a prefix is in use.
        """
        with self._lock:
            verified = self._cache.get((prefix, digest))
            if verified is not None and verified.until <= self._monotonic():
                del self._cache[(prefix, digest)]
                return None
            return verified

    def _verify(self, prefix: str, digest: str) -> _Verified:
        found = self._api_keys.find_api_key(prefix)
        stored = _NO_SUCH_HASH if found is None else found[1]
        # Compare first, decide after: every refusal takes the same path.
        matches = digests_match(digest, stored)
        if found is None or not matches or found[0].revoked:
            raise Unauthorized(REFUSED)
        key = found[0]
        verified = _Verified(
            principal=Principal(tenant=key.tenant, subject=f"key:{key.prefix}", role=key.role),
            key_id=key.id,
            until=self._monotonic() + self._cache_seconds,
        )
        if self._cache_seconds > 0:
            with self._lock:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[(prefix, digest)] = verified
        return verified

    def _touch(self, key_id: int) -> None:
        """Record the use, at most once per ``touch_seconds``; a failure never fails the request."""
        moment = self._monotonic()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and moment - last < self._touch_seconds:
                return
            if len(self._touched) >= CACHE_LIMIT:
                self._touched.clear()
            # Claimed before the write, so concurrent requests with the key do not all write.
            self._touched[key_id] = moment
        try:
            self._api_keys.touch_api_key(key_id, self._now())
        except Exception as error:
            # last_used_at is a convenience; the request it came with is served regardless.
            log(
                LogEvent.API_KEY_USE_NOT_RECORDED,
                "could not record the use of API key %s: %s",
                key_id,
                type(error).__name__,
                key_id=key_id,
                error=type(error).__name__,
            )


def _seconds(settings: Mapping[str, str], name: str, default: float) -> float:
    raw = settings.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:  # also refuses NaN
        raise Misconfigured(
            f"COMMERCE_{name.upper()} must be a number of seconds, 0 or more, not {raw[:40]!r}"
        )
    return value


def make_authenticator(settings: Mapping[str, str], storage: Storage) -> ApiKeyAuthenticator:
    """The authenticator ``COMMERCE_AUTH=apikeys`` names, over ``storage.api_keys`` only."""
    return ApiKeyAuthenticator(
        storage.api_keys,
        cache_seconds=_seconds(settings, "apikey_cache_seconds", DEFAULT_CACHE_SECONDS),
        touch_seconds=_seconds(settings, "apikey_touch_seconds", DEFAULT_TOUCH_SECONDS),
    )


@hookimpl
def commerce_authenticators() -> list[AuthenticatorProvider]:
    return [
        AuthenticatorProvider(
            name=NAME,
            make=make_authenticator,
            description="API keys made with `commerce keys create`, stored as digests",
        )
    ]
