"""Serve the dashboard: the page, its static assets, and the dev stack's demo sign-in.

The files are read through importlib.resources, so the dashboard works from a checkout, an
installed wheel or a zip alike, and only files that exist in the package are ever served: an asset
is looked up by exact name in a table built from the package, never joined onto a path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path
from fastapi.responses import Response

from explorer_jobs.api.app_settings import SettingsDep
from explorer_jobs.models import WireModel

PACKAGE = "explorer_jobs.dashboard"
PAGE = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    # Module scripts are refused by browsers unless served with a JavaScript type.
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The page holds a bearer token (sessionStorage): only its own scripts may run, and it talks to its
# own origin only. No inline script or style anywhere in the dashboard, so nothing needs 'unsafe-inline'.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Assets carry no version in their names (no build step): revalidate each time, cheaply, by ETag.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@lru_cache(maxsize=1)
def assets() -> dict[str, Asset]:
    """Every servable file of `static/`, by name; read once, since package files do not change."""
    table: dict[str, Asset] = {}
    for entry in files(PACKAGE).joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            table[entry.name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return table


def _serve(name: str, if_none_match: str | None, extra_headers: dict[str, str] | None = None) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise HTTPException(status_code=404, detail="Not Found")
    headers = {**COMMON_HEADERS, "ETag": asset.etag, **(extra_headers or {})}
    if if_none_match is not None and asset.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1000)]


# HEAD too: link checkers and `curl -I` ask with it (the server sends the headers, no body).
@router.api_route("/", methods=["GET", "HEAD"])
@router.api_route("/dashboard", methods=["GET", "HEAD"])
async def dashboard_page(if_none_match: IfNoneMatch = None) -> Response:
    """The dashboard page."""
    return _serve(PAGE, if_none_match, {"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"})


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def dashboard_asset(
    name: Annotated[str, Path(max_length=100)], if_none_match: IfNoneMatch = None
) -> Response:
    """A script, style sheet or image of the dashboard."""
    return _serve(name, if_none_match)


class DevLogin(WireModel):
    token: str
    user_id: str


@router.get("/dashboard/dev-login")
async def dev_login(settings: SettingsDep, response: Response) -> DevLogin:
    """A token for the dev stack's demo user; 404 unless `DEV_DEMO_LOGIN` is on (only `explorer-jobs dev`).

    Answered exactly like an unknown path when off, so a deployment does not even reveal the route.
    """
    if not settings.DEV_DEMO_LOGIN or settings.JWT_SECRET is None:
        raise HTTPException(status_code=404, detail="Not Found")
    # Imported here: devstack is the dev command's module, not something a deployed function loads.
    from explorer_jobs.devstack import DEMO_USER, demo_token

    response.headers["Cache-Control"] = "no-store"
    return DevLogin(token=demo_token(), user_id=DEMO_USER)
