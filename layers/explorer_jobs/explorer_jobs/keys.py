"""Every Redis key this system writes, in one place.

All keys of a queue share the hash tag `{<queue>}`, so one Lua script may touch any of them and the
same code runs on Redis Cluster, where a queue lives on one shard.

    ej:{default}:job:<jobId>          hash   the whole job
    ej:{default}:queued               zset   score priority*1e14+seq (most urgent first, FIFO within)
    ej:{default}:suspect              zset   queued jobs whose lease once ran out (stalls > 0), same
                                             score; a worker holds at most one of them at a time
    ej:{default}:delayed              zset   score due time (ms)
    ej:{default}:active               zset   score lease deadline (ms)
    ej:{default}:finished             zset   score finish time (ms); swept after the retention
    ej:{default}:seq                  string enqueue sequence (FIFO order)
    ej:{default}:wake                 list   markers that wake a long-polling worker
    ej:{default}:suspect_wake         list   the same while suspects wait (for workers holding none)
    ej:{default}:counts               hash   "<jobType>|<status>" -> jobs, every user
    ej:{default}:ucounts:<user>       hash   the same, one user's
    ej:{default}:ujobs:<user>         zset   a user's jobs by creation time (ms)
    ej:{default}:events:<user>        stream a user's notifications; entry id = SSE id
    ej:{default}:idem:<len>:<user>:<key>
                                      string "<jobId>|<request fingerprint>", 24 h; <len> is the
                                             user id's length in bytes (user ids may hold ":")
    ej:{default}:rate:<user>:<n>      string enqueues in a user's rate-limit window n
    ej:{default}:conn:<connectionId>  string its owner's user id, cached from the store for the
                                             enqueue script's precondition (10 min)
    ej:{default}:lastclaim:<worker>   string "<claim id>|<reply JSON>" of the worker's last claim
                                             call, answered again to its replay (2 leases)
    ej:ticket:<ticket>                string the user id an SSE ticket opens a stream for
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The key names of one queue."""

    prefix: str  # "ej:{default}:"

    @classmethod
    def for_queue(cls, key_prefix: str, queue: str) -> QueueKeys:
        return cls(f"{key_prefix}:{{{queue}}}:")

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    @property
    def queued(self) -> str:
        return f"{self.prefix}queued"

    @property
    def suspect(self) -> str:
        return f"{self.prefix}suspect"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}delayed"

    @property
    def active(self) -> str:
        return f"{self.prefix}active"

    @property
    def finished(self) -> str:
        return f"{self.prefix}finished"

    @property
    def wake(self) -> str:
        return f"{self.prefix}wake"

    @property
    def suspect_wake(self) -> str:
        return f"{self.prefix}suspect_wake"

    @property
    def counts(self) -> str:
        return f"{self.prefix}counts"

    def user_counts(self, user_id: str) -> str:
        return f"{self.prefix}ucounts:{user_id}"

    def user_jobs(self, user_id: str) -> str:
        return f"{self.prefix}ujobs:{user_id}"

    def events(self, user_id: str) -> str:
        return f"{self.prefix}events:{user_id}"

    @staticmethod
    def connection_owner_suffix(connection_id: str) -> str:
        """The owner key's name after the prefix: scripts build it from their own prefix."""
        return f"conn:{connection_id}"

    def connection_owner(self, connection_id: str) -> str:
        return self.prefix + self.connection_owner_suffix(connection_id)

    def last_claim(self, worker_id: str) -> str:
        return f"{self.prefix}lastclaim:{worker_id}"

    def idempotency(self, user_id: str, key: str) -> str:
        return f"{self.prefix}idem:{len(user_id.encode())}:{user_id}:{key}"


def ticket_key(key_prefix: str, ticket: str) -> str:
    return f"{key_prefix}:ticket:{ticket}"
