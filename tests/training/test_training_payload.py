"""The schema-training payload and job type: what enqueue validates, without heavy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from explorer_jobs.jobtypes import get_job_type
from explorer_jobs.processors import PROCESSORS, load_builtin_processors
from explorer_jobs.training.payload import SchemaTrainingPayload


def test_camel_case_in_defaults_and_out() -> None:
    payload = SchemaTrainingPayload.model_validate(
        {"connectionId": "c1", "tables": {"public": ["users"]}, "options": {"includeIndexes": False}}
    )
    assert payload.schemas is None
    assert payload.model_dump(by_alias=True) == {
        "connectionId": "c1",
        "schemas": None,
        "tables": {"public": ["users"]},
        "options": {
            "includeColumns": True,
            "includeTypes": True,
            "includeConstraints": True,
            "includeIndexes": False,
            "includeForeignKeys": True,
        },
    }


@pytest.mark.parametrize(
    "body",
    [
        {"connectionId": "c1", "priority": 5},
        {"connectionId": "c1", "options": {"includeViews": True}},
        {"connectionId": "c1", "schemas": [""]},
        {"connectionId": "c1", "schemas": "public"},
        {"connectionId": "c1", "tables": {"public": "users"}},
        {"schemas": ["public"]},
    ],
)
def test_bad_payloads_are_rejected(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SchemaTrainingPayload.model_validate(body)


def test_registered_as_a_job_type_with_its_defaults() -> None:
    spec = get_job_type("schema_training")
    assert spec.payload is SchemaTrainingPayload
    assert (spec.priority, spec.max_attempts, spec.timeout_seconds) == (5, 3, 1800.0)


def test_the_processor_registers_under_the_job_type() -> None:
    from explorer_jobs.training.processor import train_schema

    load_builtin_processors()
    assert PROCESSORS["schema_training"] is train_schema


def test_importing_the_payload_pulls_in_no_database_code() -> None:
    code = (
        "import sys, explorer_jobs.jobtypes as j; j.get_job_type('schema_training'); "
        "heavy = [m for m in ('sqlalchemy', 'pg8000', 'pymysql', 'cryptography') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
