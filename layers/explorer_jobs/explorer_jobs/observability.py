"""Logs and metrics through aws-lambda-powertools: JSON logs that carry the job id as correlation
id, and CloudWatch metrics as embedded-metric-format (EMF) lines on stdout.

Every module logs through the standard library (`logging.getLogger("explorer_jobs...")`); this
module decides the format once per process. `LOG_FORMAT=json` (the default on Lambda and in the
container images) gives one JSON object per line; `text` reads better in a terminal (`dev`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

# The job a log line is about: set by the worker around each job, read by the log filter.
current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_job_id", default=None)

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "explorer-jobs")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ExplorerJobs")
# EMF goes to stdout, where CloudWatch (Lambda, or the awslogs driver on ECS) picks it up.
# Locally it would only clutter the terminal: off unless asked for or on AWS.
METRICS_ON = os.environ.get("EXPLORER_JOBS_METRICS", "auto")


class CorrelationFilter(logging.Filter):
    """Adds `correlation_id` (the current job id) to every record that has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = current_job_id.get()
        return True


def _wants_json() -> bool:
    fmt = os.environ.get("LOG_FORMAT")
    if fmt:
        return fmt.lower() == "json"
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("ECS_CONTAINER_METADATA_URI_V4"))


def configure_logging(level: str | None = None) -> None:
    """One handler on the root logger, JSON (powertools' formatter) or text."""
    handler = logging.StreamHandler()
    handler.addFilter(CorrelationFilter())
    if _wants_json():
        # Imported only here and in the metric writers: a worker starts faster without powertools.
        from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

        handler.setFormatter(LambdaPowertoolsFormatter(service=SERVICE, utc=True))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
    # Alembic announces each of its plugins at INFO: noise on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def configure_lambda_logging() -> None:
    """Called by each function at import: on Lambda, JSON logs through powertools' formatter
    (elsewhere the process that imports the function — uvicorn, tests — owns the logging)."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        configure_logging()


def metrics_enabled() -> bool:
    if METRICS_ON in ("1", "true", "yes"):
        return True
    if METRICS_ON in ("0", "false", "no"):
        return False
    return _wants_json()


@dataclass(slots=True)
class JobMetrics:
    """Per-process job counters, written as one EMF line per interval rather than one per job:
    the worker's hot path only adds to a dict."""

    interval: float = 60.0
    counts: dict[str, int] = field(default_factory=dict)
    durations_ms: list[float] = field(default_factory=list)
    _last: float = field(default_factory=time.monotonic)

    def job_finished(self, outcome: str, seconds: float) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        # EMF takes up to 100 values per metric and line, and powertools writes the line by itself
        # the moment a metric reaches 100: keep a sample of 99.
        if len(self.durations_ms) < 99:
            self.durations_ms.append(seconds * 1000)

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    def flush(self) -> Any:
        """Write the EMF line (when enabled) and reset; returns what was written, for tests.
        Metrics never stop a worker: a failure is logged and the counts start over."""
        self._last = time.monotonic()
        if not self.counts:
            return None
        try:
            return self._write()
        except Exception:
            logging.getLogger("explorer_jobs.metrics").exception("could not write job metrics")
            return None
        finally:
            self.counts.clear()
            self.durations_ms.clear()

    def _write(self) -> Any:
        from aws_lambda_powertools import Metrics
        from aws_lambda_powertools.metrics import MetricUnit

        metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
        for outcome, n in self.counts.items():
            metrics.add_metric(name=f"Jobs{outcome.capitalize()}", unit=MetricUnit.Count, value=n)
        for ms in self.durations_ms:
            metrics.add_metric(name="JobDuration", unit=MetricUnit.Milliseconds, value=ms)
        blob = metrics.serialize_metric_set()
        if metrics_enabled():
            metrics.flush_metrics()
        else:
            metrics.clear_metrics()
        return blob


def count_enqueued(job_type: str, n: int = 1) -> None:
    """One EMF line for jobs enqueued by a request (the enqueue function, the scheduler)."""
    if not metrics_enabled() or n <= 0:
        return
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_dimension(name="jobType", value=job_type)
    metrics.add_metric(name="JobsEnqueued", unit=MetricUnit.Count, value=n)
    metrics.flush_metrics()
