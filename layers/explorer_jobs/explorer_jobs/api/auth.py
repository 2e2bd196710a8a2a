"""Bearer JWT authentication: HS256 with `JWT_SECRET`, `exp` required, `iss`/`aud` when configured."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from explorer_jobs.api.app_settings import app_settings
from explorer_jobs.errors import Unauthenticated
from explorer_jobs.settings import Settings

log = logging.getLogger("explorer_jobs.api.auth")

# Pinned: the token's own `alg` header is never trusted (no "none", no RS/HS confusion).
ALGORITHMS = ["HS256"]
MAX_USER_ID_LENGTH = 256

bearer_scheme = HTTPBearer(auto_error=False, description="A JWT signed with HS256 (JWT_SECRET)")


@dataclass(frozen=True, slots=True)
class User:
    """The caller, from a verified token."""

    id: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def _roles(claim: Any) -> frozenset[str]:
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list):
        return frozenset(r for r in claim if isinstance(r, str))
    return frozenset()


# Verified tokens, so a client's repeated requests skip the signature check: token -> (user, exp).
# Keyed by the settings object too (another secret, issuer or audience must verify afresh); `exp` is
# checked on every hit, so a cached token expires exactly when it would have.
_verified: dict[tuple[int, str], tuple[Settings, User, float]] = {}
VERIFIED_CACHE_SIZE = 4096


def decode_token(token: str, settings: Settings) -> User:
    """Verify a bearer token and return its user; Unauthenticated when it does not verify."""
    hit = _verified.get((id(settings), token))
    if hit is not None and hit[0] is settings and time.time() < hit[2]:
        return hit[1]
    user, exp = _verify(token, settings)
    if len(_verified) >= VERIFIED_CACHE_SIZE:
        _verified.clear()  # a crude bound: refilling costs one signature check per live token
    _verified[(id(settings), token)] = (settings, user, exp)
    return user


def _verify(token: str, settings: Settings) -> tuple[User, float]:
    if settings.JWT_SECRET is None:
        log.error("JWT_SECRET is not set: every token is refused")
        raise Unauthenticated("authentication is not configured")
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SECRET.get_secret_value(),
            algorithms=ALGORITHMS,
            issuer=settings.JWT_ISSUER,
            audience=settings.JWT_AUDIENCE,
            options={"require": ["exp", "sub"], "verify_aud": settings.JWT_AUDIENCE is not None},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated("invalid token") from exc
    sub = claims.get("sub")
    # The user id names Redis keys: refuse what could not be one.
    if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID_LENGTH or not sub.isprintable():
        raise Unauthenticated("invalid token")
    return User(id=sub, roles=_roles(claims.get("roles"))), float(claims["exp"])


async def current_user(
    settings: Annotated[Settings, Depends(app_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> User:
    """The dependency behind `UserDep`: 401 unless a valid bearer token is sent."""
    if credentials is None:
        raise Unauthenticated("missing bearer token")
    return decode_token(credentials.credentials, settings)


async def authenticate(request: Request, settings: Settings) -> User:
    """`current_user` called by hand, for a route that resolves no dependencies (the enqueue hot
    path): the same bearer parsing (the scheme object itself) and the same token check."""
    return await current_user(settings, await bearer_scheme(request))


UserDep = Annotated[User, Depends(current_user)]
