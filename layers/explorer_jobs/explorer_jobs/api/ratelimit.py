"""The per-user enqueue allowance for routes that queue work without the enqueue script (retry).

It is the same fixed-window counter the enqueue script counts in (`RateLimit`, key
`<queue prefix>rate:<user>:<window>`), so train-schema and retry share one allowance.
"""

from __future__ import annotations

import weakref

from redis.commands.core import AsyncScript

from explorer_jobs.enqueueing import RateLimit
from explorer_jobs.queue import Queue
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


def enqueue_allowance(settings: Settings, user_id: str) -> RateLimit:
    return RateLimit(user_id, settings.ENQUEUE_RATE_LIMIT, settings.ENQUEUE_RATE_WINDOW_SECONDS)


async def check_enqueue_rate(queue: Queue, settings: Settings, user_id: str) -> None:
    """Count one enqueue for the user; RateLimited (429) once the window's allowance is spent."""
    allowance = enqueue_allowance(settings, user_id)
    window, limit, ttl_ms = allowance.args()
    if not window:
        return
    count = int(await _script(queue.redis)(keys=[f"{queue.keys.prefix}rate:{window}"], args=[ttl_ms]))
    if count > int(limit):
        raise allowance.refusal()
