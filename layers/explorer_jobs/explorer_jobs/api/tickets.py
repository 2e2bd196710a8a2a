"""Single-use tickets that open an event stream: EventSource cannot send an Authorization header.

A ticket is random (`secrets.token_urlsafe`), lives a few seconds in Redis bound to its user, and
is taken with GETDEL, so it opens one stream at most and a long-lived token never reaches a URL.
"""

from __future__ import annotations

import secrets

from explorer_jobs.errors import Unauthenticated
from explorer_jobs.keys import ticket_key
from explorer_jobs.redis_client import RedisClient
from explorer_jobs.settings import Settings

TICKET_BYTES = 32
MAX_TICKET_LENGTH = 128


async def issue_ticket(redis: RedisClient, settings: Settings, user_id: str) -> str:
    """A new ticket for the user, valid `SSE_TICKET_TTL_SECONDS`."""
    ticket = secrets.token_urlsafe(TICKET_BYTES)
    await redis.set(ticket_key(settings.KEY_PREFIX, ticket), user_id, ex=settings.SSE_TICKET_TTL_SECONDS)
    return ticket


async def redeem_ticket(redis: RedisClient, settings: Settings, ticket: str) -> str:
    """The user id a ticket was issued to; the ticket is gone afterwards. Unauthenticated if unknown."""
    if not ticket or len(ticket) > MAX_TICKET_LENGTH:
        raise Unauthenticated("invalid or used ticket")
    user_id = await redis.getdel(ticket_key(settings.KEY_PREFIX, ticket))
    if not user_id:
        raise Unauthenticated("invalid or used ticket")
    return str(user_id)
