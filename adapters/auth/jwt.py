"""``jwt``: bearer tokens signed by an identity provider, verified with a shared secret or its keys.

Configured from ``COMMERCE_JWT_*`` settings (docs/security.md lists them). Exactly one key
source: ``COMMERCE_JWT_SECRET`` (HMAC), ``COMMERCE_JWT_PUBLIC_KEY_FILE`` (a PEM public key)
or ``COMMERCE_JWT_JWKS_FILE`` (a JSON Web Key Set; a token's ``kid`` picks the key).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from commerce.core.auth import Principal, Role
from commerce.core.errors import Misconfigured, Unauthorized
from commerce.core.events import LogEvent, event_log
from commerce.core.ports import Storage
from commerce.plugins import AuthenticatorProvider, hookimpl

log = event_log("commerce.auth.jwt")

NAME = "jwt"
DEFAULT_LEEWAY_SECONDS = 30
DEFAULT_TENANT_CLAIM = "tenant"
DEFAULT_ROLE_CLAIM = "role"

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512"})
EDDSA_ALGORITHMS = frozenset({"EdDSA"})
_EC_DEFAULTS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_JWK_EC_DEFAULTS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}

# Three base64url parts; the last may be empty (an unsigned token is still a JWT, and refused).
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

MIN_SECRET_BYTES = 32
"""An HMAC secret shorter than the hash's 256 bits can be guessed offline from one token."""

REFUSED = "the bearer token was not accepted"
"""The one message for every refused JWT: which check failed would help only an attacker."""


def looks_like_jwt(token: str) -> bool:
    return _JWT_SHAPE.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class _Key:
    """A verification key and the algorithms that may be used with it."""

    key: Any
    algorithms: tuple[str, ...]


def _family(key: Any) -> frozenset[str]:
    """The algorithms a public key can verify; a key of any other type is refused."""
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return EC_ALGORITHMS
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return EDDSA_ALGORITHMS
    raise Misconfigured(
        f"the JWT key is a {type(key).__name__}; use an RSA, EC or Ed25519 public key"
    )


def _default_algorithm(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_DEFAULTS.get(key.curve.name, "ES256")
    return "EdDSA"


def _allowed(
    configured: tuple[str, ...] | None, family: frozenset[str], default: str
) -> tuple[str, ...]:
    """The configured algorithms if all fit the key's type, else ``Misconfigured``.

    Never ``none``, never an HMAC algorithm beside a public key: a token could otherwise be
    signed with the public key as an HMAC secret (algorithm confusion).
    """
    if configured is None:
        return (default,)
    wrong = [a for a in configured if a not in family]
    if wrong:
        raise Misconfigured(
            f"COMMERCE_JWT_ALGORITHMS names {', '.join(wrong)}, which this key cannot verify; "
            f"use some of: {', '.join(sorted(family))}"
        )
    return configured


def _read(path: str, variable: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise Misconfigured(f"cannot read {variable} {path!r}: {exc.strerror or exc}") from None


def _pem_key(path: str, configured: tuple[str, ...] | None) -> _Key:
    try:
        key = load_pem_public_key(_read(path, "COMMERCE_JWT_PUBLIC_KEY_FILE"))
    except ValueError:
        raise Misconfigured(
            f"COMMERCE_JWT_PUBLIC_KEY_FILE {path!r} holds no PEM public key"
        ) from None
    return _Key(key, _allowed(configured, _family(key), _default_algorithm(key)))


def _jwks_keys(path: str, configured: tuple[str, ...] | None) -> dict[str | None, _Key]:
    raw = _read(path, "COMMERCE_JWT_JWKS_FILE")
    try:
        document = json.loads(raw)
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise Misconfigured(
            f'COMMERCE_JWT_JWKS_FILE {path!r} is not a JWKS (a JSON object with "keys")'
        ) from None
    keys: dict[str | None, _Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue  # encryption keys have no place here
        if entry.get("kty") == "oct":
            raise Misconfigured(
                f"COMMERCE_JWT_JWKS_FILE {path!r} holds a symmetric key; "
                "use COMMERCE_JWT_SECRET for a shared secret"
            )
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWKError:
            raise Misconfigured(
                f"COMMERCE_JWT_JWKS_FILE {path!r} holds a key that cannot be used "
                f"(kid {entry.get('kid')!r})"
            ) from None
        family = _family(jwk.key)
        named = entry.get("alg")
        if isinstance(named, str):
            if configured is not None and named not in configured:
                continue  # the provider pins this key to an algorithm we do not accept
            algorithms = _allowed((named,), family, named)
        else:
            if entry.get("kty") == "EC":
                default = _JWK_EC_DEFAULTS.get(str(entry.get("crv")), "ES256")
            else:
                default = _default_algorithm(jwk.key)
            algorithms = _allowed(configured, family, default)
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) else None] = _Key(jwk.key, algorithms)
    if not keys:
        raise Misconfigured(f"COMMERCE_JWT_JWKS_FILE {path!r} holds no usable signing key")
    return keys


def _algorithms(raw: str | None) -> tuple[str, ...] | None:
    if raw is None or not raw.strip():
        return None
    names = tuple(a.strip() for a in raw.split(",") if a.strip())
    if any(a.lower() == "none" for a in names):
        raise Misconfigured("COMMERCE_JWT_ALGORITHMS may not name 'none': tokens must be signed")
    return names


def _leeway(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return DEFAULT_LEEWAY_SECONDS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise Misconfigured(
            f"COMMERCE_JWT_LEEWAY_SECONDS must be a whole number of seconds, 0 or more: {raw!r}"
        )
    return value


class JwtAuthenticator:
    """Turns a signed JWT into a ``Principal``: its tenant, ``jwt:<sub>``, its role.

    A token that is not shaped like a JWT is not this authenticator's (``None``), so an API-key
    authenticator later in ``COMMERCE_AUTH`` may take it. A JWT that fails any check is refused
    with the same ``Unauthorized``; the reason is logged at DEBUG, without the token.
    """

    def __init__(
        self,
        keys: Mapping[str | None, _Key],
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
        tenant_claim: str = DEFAULT_TENANT_CLAIM,
        role_claim: str = DEFAULT_ROLE_CLAIM,
    ) -> None:
        self._keys = dict(keys)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._tenant_claim = tenant_claim
        self._role_claim = role_claim

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> JwtAuthenticator:
        """Built from ``jwt_*`` settings; ``Misconfigured`` if they do not make one key source."""

        def get(name: str) -> str | None:
            value = settings.get(name)
            return value.strip() if value is not None and value.strip() else None

        secret = settings.get("jwt_secret") or None
        pem = get("jwt_public_key_file")
        jwks = get("jwt_jwks_file")
        given = [
            s for s, v in (("SECRET", secret), ("PUBLIC_KEY_FILE", pem), ("JWKS_FILE", jwks)) if v
        ]
        if len(given) != 1:
            which = " and ".join(f"COMMERCE_JWT_{g}" for g in given)
            raise Misconfigured(
                "COMMERCE_AUTH names jwt: set exactly one of COMMERCE_JWT_SECRET, "
                "COMMERCE_JWT_PUBLIC_KEY_FILE or COMMERCE_JWT_JWKS_FILE"
                + (f" (not both {which})" if which else "")
            )
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            # The length, never the secret: it must not reach a log or a terminal.
            raise Misconfigured(
                f"COMMERCE_JWT_SECRET is {len(secret.encode())} bytes; it must be at least "
                f"{MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -base64 48`)"
            )
        configured = _algorithms(settings.get("jwt_algorithms"))
        keys: dict[str | None, _Key]
        if secret is not None:
            keys = {None: _Key(secret.encode(), _allowed(configured, HMAC_ALGORITHMS, "HS256"))}
        elif pem is not None:
            keys = {None: _pem_key(pem, configured)}
        else:
            assert jwks is not None
            keys = _jwks_keys(jwks, configured)
        return cls(
            keys,
            issuer=get("jwt_issuer"),
            audience=get("jwt_audience"),
            leeway=_leeway(settings.get("jwt_leeway_seconds")),
            tenant_claim=get("jwt_tenant_claim") or DEFAULT_TENANT_CLAIM,
            role_claim=get("jwt_role_claim") or DEFAULT_ROLE_CLAIM,
        )

    def authenticate(self, token: str | None) -> Principal | None:
        if token is None or not looks_like_jwt(token):
            return None
        try:
            claims = self._verify(token)
        except jwt.PyJWTError as exc:
            # PyJWT's messages name the check that failed, never the token.
            log(
                LogEvent.TOKEN_REJECTED,
                "JWT refused: %s: %s",
                type(exc).__name__,
                exc,
                authenticator="jwt",
                reason=type(exc).__name__,
            )
            raise Unauthorized(REFUSED) from None
        return self._principal(claims)

    def _verify(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) or kid is None else None
        if key is None and len(self._keys) == 1 and (kid is None or None in self._keys):
            # One key and nothing to choose: a secret or PEM key verifies whatever ``kid``.
            key = next(iter(self._keys.values()))
        if key is None:
            raise jwt.InvalidKeyError("no key has this kid")
        required = ["exp", "sub"]
        if self._issuer is not None:
            required.append("iss")
        if self._audience is not None:
            required.append("aud")
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            # Only the key's own algorithms: the token's header cannot choose another.
            algorithms=list(key.algorithms),
            issuer=self._issuer,
            audience=self._audience,
            leeway=self._leeway,
            options={"require": required, "verify_aud": self._audience is not None},
        )
        return claims

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        tenant = claims.get(self._tenant_claim)
        role_name = claims.get(self._role_claim)
        subject = claims.get("sub")
        role = Role.__members__.get(role_name) if isinstance(role_name, str) else None
        if not isinstance(tenant, str) or not tenant.strip():
            log(
                LogEvent.TOKEN_REJECTED,
                "JWT refused: no usable %r claim",
                self._tenant_claim,
                authenticator="jwt",
                reason="tenant_claim",
            )
        elif role is None:
            log(
                LogEvent.TOKEN_REJECTED,
                "JWT refused: the %r claim names no role",
                self._role_claim,
                authenticator="jwt",
                reason="role_claim",
            )
        elif not isinstance(subject, str) or not subject:
            log(
                LogEvent.TOKEN_REJECTED,
                "JWT refused: no usable 'sub' claim",
                authenticator="jwt",
                reason="sub_claim",
            )
        else:
            return Principal(tenant=tenant, subject=f"jwt:{subject}", role=role)
        raise Unauthorized(REFUSED)


def make_authenticator(settings: Mapping[str, str], storage: Storage) -> JwtAuthenticator:
    """The authenticator ``COMMERCE_AUTH=jwt`` names; it keeps nothing in storage."""
    return JwtAuthenticator.from_settings(settings)


@hookimpl
def commerce_authenticators() -> list[AuthenticatorProvider]:
    return [
        AuthenticatorProvider(
            name=NAME,
            make=make_authenticator,
            description="JWTs signed by an identity provider (COMMERCE_JWT_* settings)",
        )
    ]
