"""The catalogue of job types: a name, its payload model and its defaults.

This module is light on purpose: the enqueue and status functions import it to validate payloads,
and must not pull in a processor or a target database's driver. Processors register separately
(`explorer_jobs.processors`), and only the worker imports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import import_module

from pydantic import BaseModel

from explorer_jobs.errors import UnknownJobType


@dataclass(frozen=True, slots=True)
class JobTypeSpec:
    """A job type: what its payload looks like and how its jobs are run by default."""

    name: str
    payload: type[BaseModel]
    priority: int = 5
    max_attempts: int = 3
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    timeout_seconds: float = 600.0


JOB_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
JOB_TYPES: dict[str, JobTypeSpec] = {}

# Modules that register the built-in job types when imported (payload models only).
BUILTIN_JOB_TYPE_MODULES = ("explorer_jobs.training.payload",)


def register_job_type(spec: JobTypeSpec) -> JobTypeSpec:
    """Add a job type to the catalogue; registering the same name again replaces it."""
    # The Lua scripts write type names into event JSON and counter fields without escaping.
    if not JOB_TYPE_NAME.fullmatch(spec.name):
        raise ValueError(f"job type names are lower_snake_case identifiers, not {spec.name!r}")
    JOB_TYPES[spec.name] = spec
    return spec


def load_builtin_job_types() -> None:
    for module in BUILTIN_JOB_TYPE_MODULES:
        try:
            import_module(module)
        except ModuleNotFoundError as exc:  # the training package may not be there in a stripped build
            if exc.name is None or not module.startswith(exc.name):
                raise


def get_job_type(name: str) -> JobTypeSpec:
    spec = JOB_TYPES.get(name)
    if spec is None:
        load_builtin_job_types()
        spec = JOB_TYPES.get(name)
    if spec is None:
        raise UnknownJobType(f"unknown job type {name!r}")
    return spec


def known_job_types() -> list[str]:
    load_builtin_job_types()
    return sorted(JOB_TYPES)
