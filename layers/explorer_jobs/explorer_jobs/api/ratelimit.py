"""A per-user fixed-window limit on enqueues, counted in Redis so every function instance shares it."""

from __future__ import annotations

import time
import weakref

from redis.commands.core import AsyncScript

from explorer_jobs.errors import RateLimited
from explorer_jobs.keys import rate_limit_key
from explorer_jobs.redis_client import RedisClient
from explorer_jobs.settings import Settings

# KEYS[1] the window's counter   ARGV[1] its lifetime (ms)   Returns the count, this request included.
# One round trip, and the TTL is set with the first count, so a crash cannot leave a counter behind.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

_scripts: weakref.WeakKeyDictionary[RedisClient, AsyncScript] = weakref.WeakKeyDictionary()


def _script(redis: RedisClient) -> AsyncScript:
    script = _scripts.get(redis)
    if script is None:
        script = _scripts[redis] = redis.register_script(_COUNT)
    return script


async def check_enqueue_rate(redis: RedisClient, settings: Settings, user_id: str) -> None:
    """Count one enqueue for the user; RateLimited (429) once the window's allowance is spent."""
    limit, window = settings.ENQUEUE_RATE_LIMIT, settings.ENQUEUE_RATE_WINDOW_SECONDS
    if limit <= 0:
        return
    now = time.time()
    index = int(now // window)
    key = rate_limit_key(settings.KEY_PREFIX, user_id, index)
    # The counter outlives its window a little, so a slow clock elsewhere cannot restart it early.
    count = int(await _script(redis)(keys=[key], args=[(window + 5) * 1000]))
    if count > limit:
        retry_after = max(1, int((index + 1) * window - now + 0.999))
        raise RateLimited(f"too many jobs queued: at most {limit} every {window} s", retry_after)
