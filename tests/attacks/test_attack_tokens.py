"""Forged and broken JWTs: every /api route, the SSE ticket route and the event stream answer 401,
with no detail leak. Among them the header key injections (`jwk`, `jku`, `x5u`, `kid` naming a
file or an SQL-ish value) and an RS/HS confusion: the server's key is `JWT_SECRET`, HS256, and
nothing a token carries in its header may change that. `jku` and `x5u` point at a live trap server
holding the attacker's key set, which must never be fetched.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from explorer_jobs.settings import Settings
from tests.api.support import SECRET

from .support import attack_settings, real_app

UNAUTHORIZED = 401
ISSUER, AUDIENCE = "https://issuer.example", "db-explorer"
STREAM = "/api/jobs/notifications/stream"
REQUEST_SECONDS = 5.0
# A body that would create a connection, should a forged token ever get past auth.
CONNECTION = {
    "name": "x",
    "dialect": "postgresql",
    "host": "127.0.0.1",
    "database": "x",
    "username": "x",
    "password": "x",
}

ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_PUBLIC_PEM = ATTACKER_RSA.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
ATTACKER_JWK: dict[str, Any] = {
    **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_RSA.public_key())),
    "kid": "attacker",
    "use": "sig",
}
ATTACKER_SECRET = b"the-attackers-own-hmac-key-long-enough-for-hs256-0123456789"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for alice; a change to None drops that claim."""
    values = {"sub": "alice", "exp": int(time.time()) + 600, "iss": ISSUER, "aud": AUDIENCE, **changes}
    return {k: v for k, v in values.items() if v is not None}


def good_token() -> str:
    return jwt.encode(claims(), SECRET, algorithm="HS256")


def hs256_by_hand(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT signed with any key at all (PyJWT refuses empty and PEM-shaped HMAC keys)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def unsigned(alg: str, signature: str = "") -> str:
    header, payload = json.dumps({"alg": alg, "typ": "JWT"}), json.dumps(claims())
    return f"{_b64(header.encode())}.{_b64(payload.encode())}.{signature}"


def forged_tokens(trap_url: str) -> dict[str, str]:
    right_signature = good_token().rsplit(".", 1)[1]
    me = Path(__file__)
    return {
        "alg none": unsigned("none"),
        "alg None": unsigned("None"),
        "alg none with the right signature": unsigned("none", right_signature),
        "wrong key": jwt.encode(claims(), "another-secret-of-sixty-four-bytes-or-more-" + "x" * 32),
        "HS512 with the right key": jwt.encode(claims(), SECRET, algorithm="HS512"),
        "expired": jwt.encode(claims(exp=int(time.time()) - 60), SECRET),
        "not yet valid": jwt.encode(claims(nbf=int(time.time()) + 600), SECRET),
        "missing exp": jwt.encode(claims(exp=None), SECRET),
        "missing sub": jwt.encode(claims(sub=None), SECRET),
        "empty sub": jwt.encode(claims(sub=""), SECRET),
        "wrong iss": jwt.encode(claims(iss="https://evil.example"), SECRET),
        "missing iss": jwt.encode(claims(iss=None), SECRET),
        "wrong aud": jwt.encode(claims(aud="someone-else"), SECRET),
        "missing aud": jwt.encode(claims(aud=None), SECRET),
        # Header key injection: the token names its own key; signed with that key.
        "jwk: the attacker's RSA key, RS256": jwt.encode(
            claims(), ATTACKER_RSA, algorithm="RS256", headers={"jwk": ATTACKER_JWK}
        ),
        "jwk: the attacker's HMAC key, HS256": hs256_by_hand(
            {"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": _b64(ATTACKER_SECRET)}},
            claims(),
            ATTACKER_SECRET,
        ),
        "jku: the attacker's key set": jwt.encode(
            claims(),
            ATTACKER_RSA,
            algorithm="RS256",
            headers={"jku": f"{trap_url}/jwks.json", "kid": "attacker"},
        ),
        "x5u: the attacker's certificate URL": jwt.encode(
            claims(), ATTACKER_RSA, algorithm="RS256", headers={"x5u": f"{trap_url}/cert.pem"}
        ),
        "kid: /dev/null by path traversal, empty key": hs256_by_hand(
            {"alg": "HS256", "typ": "JWT", "kid": "../../../../../../../../dev/null"}, claims(), b""
        ),
        "kid: a file the attacker can read, its bytes as key": hs256_by_hand(
            {"alg": "HS256", "typ": "JWT", "kid": str(me)}, claims(), me.read_bytes()
        ),
        "kid: SQL injection selecting a known key": hs256_by_hand(
            {"alg": "HS256", "typ": "JWT", "kid": "x' UNION SELECT 'pwned' -- "}, claims(), b"pwned"
        ),
        "kid: SQL injection, empty key": hs256_by_hand(
            {"alg": "HS256", "typ": "JWT", "kid": "'; DROP TABLE keys; --"}, claims(), b""
        ),
        # RS/HS confusion: a public key (here the one the token carries) used as an HMAC secret.
        "RS/HS confusion: HS256 keyed with a public key PEM": hs256_by_hand(
            {"alg": "HS256", "typ": "JWT", "jwk": ATTACKER_JWK}, claims(), ATTACKER_PUBLIC_PEM
        ),
        "RS256 by the attacker, no key hint": jwt.encode(claims(), ATTACKER_RSA, algorithm="RS256"),
        "malformed": "not.a.jwt",
        "garbage": "abc",
    }


class KeyTrap:
    """An HTTP server holding the attacker's JWKS; it records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                trap.requests.append(self.path)
                body = json.dumps({"keys": [ATTACKER_JWK]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="key-trap", daemon=True)


@pytest.fixture(scope="module")
def key_trap() -> Iterator[KeyTrap]:
    trap = KeyTrap()
    trap.thread.start()
    yield trap
    trap.server.shutdown()
    trap.server.server_close()


@pytest.fixture(scope="module")
def forged(key_trap: KeyTrap) -> dict[str, str]:
    return forged_tokens(key_trap.url)


@pytest.fixture
def settings() -> Settings:
    return attack_settings(JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE)


@functools.cache
def api_routes() -> list[tuple[str, str]]:
    """(method, path) of every /api route the app serves (its OpenAPI document), parameters filled in."""
    paths: dict[str, dict[str, Any]] = real_app(attack_settings()).openapi()["paths"]
    return sorted(
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in paths.items()
        if path.startswith("/api")
        for method in operations
    )


ROUTES_THAT_MUST_EXIST = {
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/x"),
    ("POST", "/api/jobs/x/cancel"),
    ("POST", "/api/jobs/x/retry"),
    ("GET", "/api/queues"),
    ("POST", "/api/jobs/notifications/ticket"),
    ("GET", STREAM),
    ("POST", "/api/connections"),
    ("GET", "/api/connections"),
    ("GET", "/api/connections/x"),
    ("DELETE", "/api/connections/x"),
    ("POST", "/api/connections/x/test"),
    ("GET", "/api/connections/x/schemas"),
    ("GET", "/api/connections/x/schema-cache"),
    ("DELETE", "/api/connections/x/schema-cache"),
    ("POST", "/api/connections/x/train-schema"),
}


async def call(http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = CONNECTION if (method, path) == ("POST", "/api/connections") else None
    async with asyncio.timeout(REQUEST_SECONDS):
        return await http.request(method, path, headers=headers, json=body)


def assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == UNAUTHORIZED, (what, response.status_code, response.text)
    assert response.headers["www-authenticate"] == "Bearer", what
    assert isinstance(response.json()["detail"], str), what


def assert_not_a_ticket(response: httpx.Response) -> None:
    # 401, or 422 for what is longer than any ticket: either way no stream opens.
    assert response.status_code in (UNAUTHORIZED, 422), (response.status_code, response.text)
    assert not response.headers["content-type"].startswith("text/event-stream")


def test_the_route_list_covers_the_contract(settings: Settings) -> None:
    assert set(api_routes()) >= ROUTES_THAT_MUST_EXIST


@pytest.mark.parametrize("name", sorted(forged_tokens("http://trap.invalid")))
async def test_a_forged_or_broken_token_is_401_everywhere(
    http: httpx.AsyncClient, settings: Settings, forged: dict[str, str], key_trap: KeyTrap, name: str
) -> None:
    token = forged[name]
    for method, path in api_routes():
        assert_refused(
            await call(http, method, path, {"Authorization": f"Bearer {token}"}), f"{method} {path}"
        )
    # The stream's other door: a token is not a ticket.
    async with asyncio.timeout(REQUEST_SECONDS):
        assert_not_a_ticket(await http.get(STREAM, params={"ticket": token}))
    assert key_trap.requests == []  # no key was ever fetched from where a token pointed


async def test_the_valid_token_passes_every_route(http: httpx.AsyncClient, settings: Settings) -> None:
    # The control: the same requests with a good token get past auth (200, 404, 502, ...: never 401).
    headers = {"Authorization": f"Bearer {good_token()}"}
    for method, path in api_routes():
        if path == STREAM:
            async with asyncio.timeout(REQUEST_SECONDS):
                answer = await http.get(path, params={"mode": "poll"}, headers=headers)
        else:
            answer = await call(http, method, path, headers)
        assert answer.status_code != UNAUTHORIZED, (method, path, answer.text)
    # And a valid JWT is still not a ticket.
    async with asyncio.timeout(REQUEST_SECONDS):
        assert_not_a_ticket(await http.get(STREAM, params={"ticket": good_token()}))


async def test_no_token_or_another_scheme_is_401(http: httpx.AsyncClient, settings: Settings) -> None:
    for method, path in api_routes():
        for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer "}):
            assert_refused(await call(http, method, path, headers), f"{method} {path} {headers}")


async def test_no_secret_configured_refuses_every_token() -> None:
    app = real_app(attack_settings(JWT_SECRET=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        response = await client.get("/api/queues", headers={"Authorization": f"Bearer {good_token()}"})
    assert_refused(response, "no JWT_SECRET")
