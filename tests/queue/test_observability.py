"""Logs carry the job id as correlation id; job metrics come out as CloudWatch EMF."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from explorer_jobs.observability import CorrelationFilter, JobMetrics, configure_logging, current_job_id


def test_json_log_lines_carry_the_job_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO")

        async def job() -> None:
            current_job_id.set("job-123")
            logging.getLogger("explorer_jobs.worker").info("working on it")

        asyncio.run(job())
        logging.getLogger("explorer_jobs.worker").info("between jobs")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert lines[0]["message"] == "working on it" and lines[0]["correlation_id"] == "job-123"
    assert lines[0]["service"] and lines[0]["level"] == "INFO"
    assert lines[1].get("correlation_id") is None, "a task's job id does not leak out of its task"


def test_filter_keeps_an_explicit_correlation_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.correlation_id = "given"
    CorrelationFilter().filter(record)
    assert record.correlation_id == "given"


def test_job_metrics_are_written_as_emf(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("explorer_jobs.observability.METRICS_ON", "true")
    metrics = JobMetrics()
    for _ in range(3):
        metrics.job_finished("completed", 0.02)
    metrics.job_finished("failed", 1.5)
    metrics.flush()
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"JobsCompleted", "JobsFailed", "JobDuration"} <= names
    assert emf["JobsCompleted"] in (3, [3.0]) and emf["JobsFailed"] in (1, [1.0])
    assert metrics.flush() is None, "nothing new, nothing written"


def test_a_busy_minute_writes_one_line_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("explorer_jobs.observability.METRICS_ON", "false")
    metrics = JobMetrics()
    for _ in range(5000):
        metrics.job_finished("completed", 0.001)
    blob = metrics.flush()
    assert capsys.readouterr().out == "", "nothing on stdout when metrics are off"
    assert blob["JobsCompleted"] in (5000, [5000.0]) and len(blob["JobDuration"]) == 99
