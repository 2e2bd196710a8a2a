"""The dependencies routes take, as named `Annotated` aliases.

Settings come from the cached `get_settings`; tests override it with
`app.dependency_overrides[get_settings] = lambda: their_settings`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from explorer_jobs.api.app_settings import SettingsDep, app_settings
from explorer_jobs.api.auth import User, UserDep, current_user
from explorer_jobs.api.clients import get_queue
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient


# Async (not a plain def, which FastAPI would run in a thread) so the client is made on the loop.
async def queue_dependency(settings: SettingsDep) -> Queue:
    return get_queue(settings)


QueueDep = Annotated[Queue, Depends(queue_dependency)]


async def redis_dependency(queue: QueueDep) -> RedisClient:
    return queue.redis


RedisDep = Annotated[RedisClient, Depends(redis_dependency)]

__all__ = ["QueueDep", "RedisDep", "SettingsDep", "User", "UserDep", "app_settings", "current_user"]
