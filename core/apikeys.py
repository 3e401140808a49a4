"""API keys: the record a store keeps, and how a key is made, parsed, hashed and checked.

A key reads ``cm_<prefix>_<secret>``. The prefix is public: it names the key in listings
and logs, and is how the key's record is found. The secret is 256 random bits and is never
stored: only its SHA-256 digest is. A digest that fast is safe here because the secret is
not a password: with 256 bits of entropy there is no dictionary to try and no brute force
to slow down, so a slow KDF (bcrypt, scrypt, Argon2) would only cost CPU on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from commerce.core.auth import Role

TOKEN_START = "cm_"  # noqa: S105 -- the public marker of a key, not a secret
"""Every key starts so; a bearer token that does not is another authenticator's."""

PREFIX_LENGTH = 8
SECRET_BYTES = 32
"""256 bits, as ``secrets.token_urlsafe(32)`` gives: 43 URL-safe characters."""

# Lower-case letters and digits only, so the ``_`` after the prefix is never ambiguous
# (the secret itself may contain ``_`` and ``-``). 36^8 prefixes: collisions are rare, and
# the store's unique constraint turns one into a retry, never into a shared prefix.
_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = re.compile(r"^cm_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the store describes it: never its secret, nor the secret's digest."""

    id: int
    tenant: str
    prefix: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class NewApiKey(NamedTuple):
    """A freshly made key: the ``token`` to hand over once, and what the store keeps."""

    token: str
    prefix: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    """The hex SHA-256 digest of a key's secret, as stored."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_api_key() -> NewApiKey:
    """A new key from the system's CSPRNG; pure apart from that randomness."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return NewApiKey(f"{TOKEN_START}{prefix}_{secret}", prefix, hash_secret(secret))


def is_api_key(token: str) -> bool:
    """Whether ``token`` claims to be an API key (it may still be malformed or wrong)."""
    return token.startswith(TOKEN_START)


def parse_api_key(token: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a well-formed key; ``None`` otherwise."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, secret_hash: str) -> bool:
    """Whether ``secret`` is the one ``secret_hash`` was made from, in constant time."""
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def redacted(prefix: str) -> str:
    """How a key is shown once made: its public part only."""
    return f"{TOKEN_START}{prefix}_…"
