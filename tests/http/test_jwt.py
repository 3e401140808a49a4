"""The ``jwt`` authenticator: HS256, RS256 and ES256 tokens from PEM keys and JWKS files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from commerce.adapters.auth.jwt import JwtAuthenticator
from commerce.core import usecases
from commerce.core.errors import Misconfigured
from commerce.entrypoints.bootstrap import bootstrap
from commerce.entrypoints.config import Settings
from commerce.entrypoints.http.app import create_app
from commerce.entrypoints.http.problems import MEDIA_PROBLEM, PROBLEM_BASE
from commerce.plugins import get_plugin_manager
from tests.http.conftest import ACME, GLOBEX, App, Seed

pytestmark = pytest.mark.http

SECRET = "a-shared-secret-of-at-least-32-bytes!"
ISSUER = "https://idp.example.com/"
AUDIENCE = "commerce"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "user-1",
        "tenant": ACME,
        "role": "reader",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _settings(**extra: str) -> dict[str, str]:
    return {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, **extra}


def _hs256(**overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), SECRET, algorithm="HS256")


def _app(seed: Seed, settings: Mapping[str, str]) -> App:
    return create_app(seed.storage, [JwtAuthenticator.from_settings(settings)])


def _get(app: App, token: str, path: str = "/chain") -> falcon.testing.Result:
    return falcon.testing.TestClient(app).simulate_get(
        path, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def hs_app(seed: Seed) -> App:
    return _app(seed, _settings(jwt_secret=SECRET))


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_file(tmp_path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _jwks_file(
    tmp_path: Path, keys: Mapping[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> Path:
    entries = []
    for kid, key in keys.items():
        if isinstance(key, rsa.RSAPrivateKey):
            entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        else:
            entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        entry.update(kid=kid, use="sig")
        entries.append(entry)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    return path


def _assert_refused(result: falcon.testing.Result) -> None:
    assert result.status_code == 401
    assert result.headers["Content-Type"] == MEDIA_PROBLEM
    assert result.headers["WWW-Authenticate"].startswith("Bearer")
    assert result.json == {
        "type": PROBLEM_BASE + "unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "detail": "the bearer token was not accepted",
    }


def test_a_valid_hs256_token_reads_its_tenants_chains(hs_app: App, seed: Seed) -> None:
    result = _get(hs_app, _hs256())
    assert result.status_code == 200
    assert [c["id"] for c in result.json] == [c.id for c in seed.chains]


def test_a_jwt_is_a_principal_of_its_tenant_and_role_with_a_jwt_subject() -> None:
    auth = JwtAuthenticator.from_settings(_settings(jwt_secret=SECRET))
    principal = auth.authenticate(_hs256(role="writer", sub="u-42"))
    assert principal is not None
    assert (principal.tenant, principal.subject, principal.role.name) == (
        ACME,
        "jwt:u-42",
        "writer",
    )


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_token_signed_by_the_key_of_a_pem_file_reads(
    seed: Seed,
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    algorithm: str,
) -> None:
    key = rsa_key if algorithm == "RS256" else ec_key
    app = _app(seed, _settings(jwt_public_key_file=str(_pem_file(tmp_path, key))))
    token = jwt.encode(_claims(), key, algorithm=algorithm)
    assert _get(app, token).status_code == 200


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_token_signed_by_a_key_of_a_jwks_file_is_verified_with_the_key_its_kid_names(
    seed: Seed,
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    algorithm: str,
) -> None:
    jwks = _jwks_file(tmp_path, {"rsa-1": rsa_key, "ec-1": ec_key})
    app = _app(seed, _settings(jwt_jwks_file=str(jwks)))
    key, kid = (rsa_key, "rsa-1") if algorithm == "RS256" else (ec_key, "ec-1")
    good = jwt.encode(_claims(), key, algorithm=algorithm, headers={"kid": kid})
    assert _get(app, good).status_code == 200
    other = "ec-1" if kid == "rsa-1" else "rsa-1"
    wrong_kid = jwt.encode(_claims(), key, algorithm=algorithm, headers={"kid": other})
    _assert_refused(_get(app, wrong_kid))
    unknown_kid = jwt.encode(_claims(), key, algorithm=algorithm, headers={"kid": "nope"})
    _assert_refused(_get(app, unknown_kid))


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


REFUSED_HS256: dict[str, Callable[[], str]] = {
    "expired beyond the leeway": lambda: _hs256(exp=int(time.time()) - 120),
    "not valid before a moment beyond the leeway": lambda: _hs256(nbf=int(time.time()) + 120),
    "without an expiry": lambda: _hs256(exp=None),
    "from another issuer": lambda: _hs256(iss="https://evil.example.com/"),
    "for another audience": lambda: _hs256(aud="someone-else"),
    "signed with another secret": lambda: jwt.encode(
        _claims(), "another-secret-of-at-least-32-bytes!!", algorithm="HS256"
    ),
    "unsigned, alg none": lambda: _unsigned(_claims()),
    "without a tenant claim": lambda: _hs256(tenant=None),
    "with an empty tenant claim": lambda: _hs256(tenant=""),
    "without a role claim": lambda: _hs256(role=None),
    "with an unknown role": lambda: _hs256(role="superuser"),
    "without a subject": lambda: _hs256(sub=None),
    "tampered with": lambda: _hs256()[:-4] + "AAAA",
    "with a header that is not JSON": lambda: "bm90LWpzb24." + _hs256().split(".", 1)[1],
}


@pytest.mark.parametrize("make", REFUSED_HS256.values(), ids=REFUSED_HS256.keys())
def test_a_jwt_failing_any_check_is_a_401_with_the_same_body(
    hs_app: App, make: Callable[[], str]
) -> None:
    _assert_refused(_get(hs_app, make()))


def test_a_token_expired_within_the_leeway_is_still_accepted(hs_app: App) -> None:
    now = int(time.time())
    assert _get(hs_app, _hs256(exp=now - 5, nbf=now + 5)).status_code == 200


def test_the_leeway_is_configurable(seed: Seed) -> None:
    app = _app(seed, _settings(jwt_secret=SECRET, jwt_leeway_seconds="0"))
    _assert_refused(_get(app, _hs256(exp=int(time.time()) - 5)))


def test_an_hs256_token_signed_with_the_public_key_is_refused_by_an_rs256_config(
    seed: Seed, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = _pem_file(tmp_path, rsa_key)
    app = _app(seed, _settings(jwt_public_key_file=str(pem)))
    # The classic algorithm confusion: the public key, which anyone may have, as an HMAC secret.
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    signature = hmac.new(pem.read_bytes(), header + b"." + payload, hashlib.sha256).digest()
    forged = b".".join([header, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")])
    _assert_refused(_get(app, forged.decode()))


def test_a_refused_jwt_is_logged_at_debug_without_the_token(
    hs_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    token = _hs256(iss="https://evil.example.com/")
    with caplog.at_level(logging.DEBUG, logger="commerce"):
        _assert_refused(_get(hs_app, token))
    reasons = [r for r in caplog.records if r.name == "commerce.auth.jwt"]
    assert reasons
    assert reasons[0].levelno == logging.DEBUG
    assert all(token not in r.getMessage() for r in caplog.records)
    assert all(token.split(".")[2] not in r.getMessage() for r in caplog.records)


def test_a_token_that_is_not_a_jwt_is_left_to_the_next_authenticator() -> None:
    auth = JwtAuthenticator.from_settings(_settings(jwt_secret=SECRET))
    assert auth.authenticate(None) is None
    assert auth.authenticate("ck_live_abcdef0123456789") is None
    assert auth.authenticate("a.b") is None
    assert auth.authenticate("a.b.c.d") is None


def test_a_reader_jwt_may_not_write(hs_app: App) -> None:
    result = falcon.testing.TestClient(hs_app).simulate_post(
        "/chain",
        json={"name": "New"},
        headers={"Authorization": f"Bearer {_hs256(role='reader')}"},
    )
    assert result.status_code == 403


def test_an_admin_jwt_may_write(hs_app: App) -> None:
    result = falcon.testing.TestClient(hs_app).simulate_post(
        "/chain",
        json={"name": "New"},
        headers={"Authorization": f"Bearer {_hs256(role='admin')}"},
    )
    assert result.status_code == 201


def test_a_jwt_sees_only_its_own_tenants_data(hs_app: App, seed: Seed) -> None:
    assert seed.globex_chain is not None
    globex_chain = f"/chain/{seed.globex_chain.id}"
    assert _get(hs_app, _hs256(tenant=GLOBEX), globex_chain).status_code == 200
    result = _get(hs_app, _hs256(tenant=ACME), globex_chain)
    assert result.status_code == 404
    assert result.json["type"] == PROBLEM_BASE + "not-found"
    names = [c["name"] for c in _get(hs_app, _hs256(tenant=GLOBEX)).json]
    assert names == ["Globex Mart"]


def test_the_tenant_and_role_claims_are_configurable(seed: Seed) -> None:
    settings = _settings(
        jwt_secret=SECRET,
        jwt_tenant_claim="https://commerce.example/tenant",
        jwt_role_claim="https://commerce.example/role",
    )
    app = _app(seed, settings)
    token = _hs256(
        tenant=None,
        role=None,
        **{"https://commerce.example/tenant": GLOBEX, "https://commerce.example/role": "reader"},
    )
    assert [c["name"] for c in _get(app, token).json] == ["Globex Mart"]


def test_without_a_configured_audience_a_tokens_audience_is_not_checked(seed: Seed) -> None:
    app = _app(seed, {"jwt_secret": SECRET})
    assert _get(app, _hs256(aud="anyone", iss="anyone")).status_code == 200


def test_jwt_is_named_in_commerce_auth_and_built_from_commerce_jwt_settings() -> None:
    env = {
        "COMMERCE_DATABASE_URL": "memory://",
        "COMMERCE_AUTH": "jwt",
        "COMMERCE_JWT_SECRET": SECRET,
        "COMMERCE_JWT_ISSUER": ISSUER,
        "COMMERCE_JWT_AUDIENCE": AUDIENCE,
    }
    runtime = bootstrap(Settings.from_env(env), get_plugin_manager())
    client = falcon.testing.TestClient(create_app(runtime.storage, runtime.authenticators))
    bearer = {"Authorization": f"Bearer {_hs256()}"}
    assert client.simulate_get("/chain").status_code == 401
    # The token is good, but its tenant does not exist yet in this empty storage.
    assert client.simulate_get("/chain", headers=bearer).status_code == 401
    usecases.create_tenant(runtime.storage.catalogue, ACME)
    assert client.simulate_get("/chain", headers=bearer).status_code == 200


MISCONFIGURED: dict[str, tuple[dict[str, str], str]] = {
    "no key at all": ({}, "set exactly one of"),
    "two key sources": (
        {"jwt_secret": SECRET, "jwt_jwks_file": "/x.json"},
        "not both COMMERCE_JWT_SECRET and COMMERCE_JWT_JWKS_FILE",
    ),
    "an unreadable PEM file": ({"jwt_public_key_file": "/no/such.pem"}, "cannot read"),
    "an unreadable JWKS file": ({"jwt_jwks_file": "/no/such.json"}, "cannot read"),
    "alg none": ({"jwt_secret": SECRET, "jwt_algorithms": "none"}, "none"),
    "a public-key algorithm with a secret": (
        {"jwt_secret": SECRET, "jwt_algorithms": "HS256,RS256"},
        "RS256",
    ),
    "a negative leeway": ({"jwt_secret": SECRET, "jwt_leeway_seconds": "-1"}, "LEEWAY"),
}


@pytest.mark.parametrize(("settings", "says"), MISCONFIGURED.values(), ids=MISCONFIGURED.keys())
def test_a_jwt_misconfiguration_stops_the_start_with_one_line(
    settings: dict[str, str], says: str
) -> None:
    with pytest.raises(Misconfigured, match=says) as raised:
        JwtAuthenticator.from_settings(settings)
    assert "\n" not in str(raised.value)
    assert SECRET not in str(raised.value)


def test_an_hmac_algorithm_is_refused_beside_a_public_key(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = str(_pem_file(tmp_path, rsa_key))
    with pytest.raises(Misconfigured, match="HS256"):
        JwtAuthenticator.from_settings({"jwt_public_key_file": pem, "jwt_algorithms": "HS256"})


def test_a_file_that_is_no_pem_key_or_no_jwks_is_misconfigured(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("not a key")
    with pytest.raises(Misconfigured, match="no PEM public key"):
        JwtAuthenticator.from_settings({"jwt_public_key_file": str(junk)})
    with pytest.raises(Misconfigured, match="not a JWKS"):
        JwtAuthenticator.from_settings({"jwt_jwks_file": str(junk)})


def test_a_jwks_with_a_symmetric_key_is_misconfigured(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}))
    with pytest.raises(Misconfigured, match="symmetric"):
        JwtAuthenticator.from_settings({"jwt_jwks_file": str(path)})
