"""The project's one error hierarchy. The API edge maps these to HTTP status codes in one table."""

from __future__ import annotations


class ExplorerJobsError(Exception):
    """Base of every error this package raises on purpose."""


class NotFound(ExplorerJobsError):
    """An unknown id, or one that belongs to someone else (the two are indistinguishable on purpose)."""


class Conflict(ExplorerJobsError):
    """The request is valid but the object is in a state that does not allow it."""


class IdempotencyConflict(Conflict):
    """The same idempotency key was used with a different request."""


class InvalidInput(ExplorerJobsError):
    """Input that passed the schema but makes no sense (an unknown job type, a bad cron)."""


class UnknownJobType(InvalidInput):
    """No job type of that name is registered."""


class HostNotAllowed(InvalidInput):
    """A connection's host is, or resolves to, an address this deployment refuses to connect to."""


class ConfigurationError(ExplorerJobsError):
    """The deployment is misconfigured (no encryption key, a key that cannot read the stored secrets)."""


class Unavailable(ExplorerJobsError):
    """A dependency (Redis, the store, a target database) does not answer."""


class Unauthenticated(ExplorerJobsError):
    """No credentials, or credentials that do not verify (a bad, expired or wrongly signed token)."""


class PreconditionFailed(ExplorerJobsError):
    """An enqueue's precondition key did not hold its value; nothing was queued or counted."""


class RateLimited(ExplorerJobsError):
    """Too many requests in the current window; `retry_after` is the whole seconds until it ends."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TargetUnavailable(Unavailable):
    """A user's database cannot be reached or refused the login; the message is for a person to read."""


class TargetTimeout(TargetUnavailable):
    """A user's database did not answer in time (connect or statement timeout): worth retrying."""


class JobCancelled(ExplorerJobsError):
    """Raised inside a processor at a checkpoint once its job's cancellation was requested."""


class LeaseLost(ExplorerJobsError):
    """The worker no longer owns the job: its lease ran out and another worker may hold it."""


class PermanentJobError(ExplorerJobsError):
    """A processor failure that cannot succeed on retry (bad credentials, bad options): fail at once."""


class RetryableJobError(ExplorerJobsError):
    """A processor failure worth retrying with backoff (a timeout, a dropped connection)."""
