"""Configuration from the environment (and a `.env` file), read once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=True)

    # Redis: REDIS_URL wins over the seed's host/port/password/db when both are set.
    REDIS_URL: str | None = None
    REDIS_HOST: str = "127.0.0.1"
    REDIS_PORT: int = 6379
    REDIS_PASSWORD: SecretStr | None = None
    REDIS_DB: int = 0
    REDIS_CLUSTER: bool = False

    # The queue.
    QUEUE_NAME: str = "default"
    KEY_PREFIX: str = "ej"
    WORKER_CONCURRENCY: int = Field(default=5, ge=1, le=1000)
    LEASE_SECONDS: float = Field(default=30.0, gt=0)
    MAX_STALLS: int = Field(default=3, ge=0)
    SHUTDOWN_GRACE_SECONDS: float = Field(default=20.0, ge=0)
    JOB_RETENTION_SECONDS: int = Field(default=3 * 24 * 3600, ge=1)
    IDEMPOTENCY_TTL_SECONDS: int = Field(default=24 * 3600, ge=1)
    EVENTS_MAXLEN: int = Field(default=1000, ge=10)
    EVENTS_RETENTION_SECONDS: int = Field(default=25 * 3600, ge=60)

    # The service's own store.
    EXPLORER_JOBS_HOME: Path = Path("./.explorer-jobs")
    DATABASE_URL: str | None = None
    ENCRYPTION_KEY: SecretStr | None = None
    ENCRYPTION_KEY_SECRET_NAME: str | None = None
    ALLOW_PRIVATE_HOSTS: bool = True
    ALLOW_SQLITE_CONNECTIONS: bool = False
    # Target databases (the users' own): bounds on connecting and on each catalog query.
    TARGET_CONNECT_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    TARGET_STATEMENT_TIMEOUT_SECONDS: float = Field(default=120.0, gt=0)
    # Schema cache versions kept per connection (the newest ones); older versions are pruned.
    SCHEMA_CACHE_VERSIONS_KEPT: int = Field(default=10, ge=2)

    # Auth.
    JWT_SECRET: SecretStr | None = None
    JWT_ISSUER: str | None = None
    JWT_AUDIENCE: str | None = None

    # Scheduling.
    SCHEMA_TRAINING_CRON: str = "0 2 * * 0"
    # How often the scheduler ticks; each tick queues what fell due in the last two periods.
    SCHEDULER_TICK_SECONDS: float = Field(default=60.0, ge=5)

    # The HTTP functions. Each of their Redis calls (connecting included) is bounded by this and not
    # retried once it timed out: a stalled Redis (CLIENT PAUSE, a long script) is a 503 after it.
    API_REDIS_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    HEALTH_TIMEOUT_SECONDS: float = Field(default=1.0, gt=0)
    ENQUEUE_RATE_LIMIT: int = Field(default=60, ge=0)  # enqueues per user per window; 0 turns it off
    ENQUEUE_RATE_WINDOW_SECONDS: int = Field(default=60, ge=1)
    # FastAPI's native OpenTelemetry spans, metrics and logs, for a deployment that configures an
    # OpenTelemetry provider. Off by default (the functions report through Powertools): when on,
    # FastAPI looks for a configured provider on every request.
    OTEL_TELEMETRY: bool = False

    # Notifications (the SSE gateway).
    SSE_TICKET_TTL_SECONDS: int = Field(default=30, ge=1, le=3600)
    SSE_HEARTBEAT_SECONDS: float = Field(default=15.0, gt=0, le=15)
    SSE_RETRY_MS: int = Field(default=3000, ge=0)
    SSE_STREAM_MAX_MINUTES: float = Field(default=15.0, gt=0)
    SSE_CLIENT_BUFFER: int = Field(default=1000, ge=1)
    SSE_POLL_WAIT_SECONDS: float = Field(default=20.0, gt=0, le=600)
    SSE_MODE: Literal["auto", "stream", "poll"] = "auto"
    SSE_READER_BLOCK_MS: int = Field(default=5000, ge=10)

    # The dashboard: `GET /dashboard/dev-login` hands out a demo token only when this is on
    # (`explorer-jobs dev` turns it on); everywhere else that route is 404.
    DEV_DEMO_LOGIN: bool = False

    def redis_url(self) -> str:
        if self.REDIS_URL:
            return self.REDIS_URL
        auth = ""
        if self.REDIS_PASSWORD is not None:
            auth = ":" + quote(self.REDIS_PASSWORD.get_secret_value(), safe="") + "@"
        return f"redis://{auth}{self.REDIS_HOST}:{self.REDIS_PORT}/{self.REDIS_DB}"

    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite:///{(self.EXPLORER_JOBS_HOME / 'explorer_jobs.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the environment."""
    return Settings()
