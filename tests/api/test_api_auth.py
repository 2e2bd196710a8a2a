"""JWT handling: every /api route refuses a token that does not verify, with 401 and no detail leak."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest

from .conftest import api_settings
from .support import SECRET, make_app, make_token

UNAUTHORIZED = 401


def _alg_none_token(sub: str = "alice") -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': sub, 'exp': int(time.time()) + 600})}."


BAD_TOKENS = {
    "alg none": _alg_none_token(),
    "wrong key": make_token(key="another-secret-of-sixty-four-bytes-or-more-" + "x" * 32),
    "HS512 with the right key": make_token(algorithm="HS512"),
    "expired": make_token(ttl=-60),
    "missing exp": jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
    "missing sub": jwt.encode({"exp": int(time.time()) + 600}, SECRET, algorithm="HS256"),
    "empty sub": make_token(sub=""),
    "malformed": "not.a.jwt",
    "garbage": "abc",
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get("/api/jobs", headers={"Authorization": f"Bearer {BAD_TOKENS[name]}"})
    assert response.status_code == UNAUTHORIZED
    assert response.headers["www-authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs"),
        ("GET", "/api/jobs/x"),
        ("GET", "/api/queues"),
        ("POST", "/api/connections/c1/train-schema"),
        ("POST", "/api/jobs/x/cancel"),
        ("POST", "/api/jobs/x/retry"),
        ("POST", "/api/jobs/notifications/ticket"),
        ("GET", "/api/jobs/notifications/stream"),
    ],
)
async def test_every_api_route_needs_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert (await client.request(method, path)).status_code == UNAUTHORIZED
    basic = {"Authorization": "Basic YWxpY2U6cHc="}
    assert (await client.request(method, path, headers=basic)).status_code == UNAUTHORIZED


async def test_issuer_and_audience_are_checked_when_configured() -> None:
    settings = api_settings(JWT_ISSUER="https://issuer.example", JWT_AUDIENCE="db-explorer")
    app = make_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:

        async def status(**claims: object) -> int:
            headers = {"Authorization": f"Bearer {make_token(**claims)}"}  # type: ignore[arg-type]
            return (await client.get("/api/queues", headers=headers)).status_code

        assert await status(iss="https://issuer.example", aud="db-explorer") == 200
        assert await status(iss="https://evil.example", aud="db-explorer") == UNAUTHORIZED
        assert await status(iss="https://issuer.example", aud="someone-else") == UNAUTHORIZED
        assert await status(aud="db-explorer") == UNAUTHORIZED  # no iss at all
        assert await status(iss="https://issuer.example") == UNAUTHORIZED  # no aud at all


async def test_no_secret_configured_refuses_every_token() -> None:
    app = make_app(api_settings(JWT_SECRET=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        response = await client.get("/api/queues", headers={"Authorization": f"Bearer {make_token()}"})
    assert response.status_code == UNAUTHORIZED
