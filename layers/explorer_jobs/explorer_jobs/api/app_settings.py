"""The settings dependency (`SettingsDep`): the cached `get_settings`, answered on the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from explorer_jobs.settings import Settings, get_settings


async def app_settings(request: Request) -> Settings:
    """`get_settings()`, or the app's override of it.

    FastAPI runs a plain-`def` dependency such as `get_settings` in a worker thread: a thread hop
    on every request for a cached value. This async twin answers on the loop and still honours
    `app.dependency_overrides[get_settings]`.
    """
    override = request.app.dependency_overrides.get(get_settings)
    settings: Settings = override() if override is not None else get_settings()
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]
