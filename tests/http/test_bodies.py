"""Request bodies of the writes: JSON only (415), and never more than the limit (413)."""

from __future__ import annotations

import io
import json
from typing import Any

import falcon.testing
import pytest

from commerce.entrypoints.http.app import create_app
from tests.http.conftest import ADMIN_TOKEN, PRINCIPALS, App, Seed, TokenAuthenticator, client_for
from tests.http.test_errors import assert_problem

pytestmark = pytest.mark.http

Client = falcon.testing.TestClient
LIMIT = 64


@pytest.fixture
def small(seed: Seed) -> App:
    """The app with a body limit of 64 bytes."""
    return create_app(seed.storage, [TokenAuthenticator(PRINCIPALS)], max_body_bytes=LIMIT)


class CountingStream(io.BytesIO):
    """A request body that remembers how many bytes the app read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def send_chunked(
    app: App, path: str, body: bytes, *, terminated: bool = True
) -> tuple[falcon.testing.StartResponseMock, dict[str, Any] | None, CountingStream]:
    """A POST whose body has no Content-Length, as a server passes on a chunked request."""
    env = falcon.testing.create_environ(
        method="POST",
        path=path,
        headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
    )
    env.pop("CONTENT_LENGTH", None)
    stream = CountingStream(body)
    env["wsgi.input"] = stream
    if terminated:
        env["wsgi.input_terminated"] = True
    start = falcon.testing.StartResponseMock()
    content = b"".join(app(env, start))
    return start, json.loads(content) if content else None, stream


# -- 415 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/jsonx"],
)
def test_a_body_that_is_not_json_is_a_415(admin: Client, content_type: str) -> None:
    result = admin.simulate_post(
        "/chain", body='{"name": "A"}', headers={"Content-Type": content_type}
    )
    assert_problem(result, 415, "unsupported-media-type")


def test_a_body_without_a_content_type_is_a_415(app: App) -> None:
    client = falcon.testing.TestClient(app)
    env_headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    result = client.simulate_post("/chain", body='{"name": "A"}', headers=env_headers)
    assert result.status_code == 415


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_is_accepted_with_or_without_a_charset(admin: Client, content_type: str) -> None:
    result = admin.simulate_post(
        "/chain", body='{"name": "A"}', headers={"Content-Type": content_type}
    )
    assert result.status_code == 201, result.text


# -- 413 -----------------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_a_413(small: App) -> None:
    body = json.dumps({"name": "x" * LIMIT})
    result = client_for(small, ADMIN_TOKEN).simulate_post(
        "/chain", body=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(result, 413, "content-too-large")


def test_a_body_at_the_limit_is_accepted(small: App) -> None:
    body = json.dumps({"name": "x" * (LIMIT - 12)})
    assert len(body) == LIMIT
    result = client_for(small, ADMIN_TOKEN).simulate_post(
        "/chain", body=body, headers={"Content-Type": "application/json"}
    )
    assert result.status_code == 201, result.text


def test_a_chunked_body_over_the_limit_is_a_413_read_no_further_than_needed(small: App) -> None:
    body = json.dumps({"name": "x" * 10_000}).encode()
    start, problem, stream = send_chunked(small, "/chain", body)
    assert start.status.startswith("413")
    assert problem is not None
    assert problem["type"].endswith("/content-too-large")
    assert stream.taken == LIMIT + 1


def test_a_chunked_body_within_the_limit_is_read(small: App) -> None:
    start, created, _ = send_chunked(small, "/chain", b'{"name": "Chunked"}')
    assert start.status.startswith("201")
    assert created is not None
    assert created["name"] == "Chunked"


def test_a_chunked_body_is_read_even_if_the_server_does_not_say_it_is_terminated(
    small: App,
) -> None:
    start, _, stream = send_chunked(small, "/chain", b"x" * 1000, terminated=False)
    assert start.status.startswith("413")
    assert stream.taken == LIMIT + 1


def test_a_chunked_body_over_the_limit_with_an_idempotency_key_claims_nothing(
    small: App, seed: Seed
) -> None:
    env = falcon.testing.create_environ(
        method="POST",
        path="/chain",
        headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "Content-Type": "application/json",
            "Idempotency-Key": "big",
        },
    )
    env.pop("CONTENT_LENGTH", None)
    env["wsgi.input"] = io.BytesIO(b"x" * 1000)
    env["wsgi.input_terminated"] = True
    start = falcon.testing.StartResponseMock()
    b"".join(small(env, start))
    assert start.status.startswith("413")
    # The key is free: a proper retry with it runs.
    retry = client_for(small, ADMIN_TOKEN).simulate_post(
        "/chain", json={"name": "Small"}, headers={"Idempotency-Key": "big"}
    )
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
