"""Processors: the functions that run a job type's jobs. Only the worker imports this registry.

A processor is `async def run(ctx: JobContext, payload: Model) -> result` (or a plain `def`, which
the worker runs in a thread). The result is anything JSON-serialisable, a pydantic model, or None.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any, TypeVar

from explorer_jobs.context import JobContext

Processor = Callable[[JobContext, Any], Awaitable[Any] | Any]
P = TypeVar("P", bound=Processor)

PROCESSORS: dict[str, Processor] = {}

# Built-in processors by job type, imported on a job type's first job: a worker that never sees
# a training does not pay for SQLAlchemy and the database drivers at start.
BUILTIN_PROCESSOR_MODULES = {"schema_training": "explorer_jobs.training.processor"}


def processor(job_type: str) -> Callable[[P], P]:
    """Register the decorated function as the processor of `job_type`."""

    def register(fn: P) -> P:
        PROCESSORS[job_type] = fn
        return fn

    return register


def load_builtin_processors() -> None:
    """Import every built-in processor now (a deployment check, or a process that wants them all)."""
    for job_type in BUILTIN_PROCESSOR_MODULES:
        find_processor(job_type)


def find_processor(job_type: str) -> Processor | None:
    """The processor of `job_type`, importing its built-in module on first use; None if there is none."""
    fn = PROCESSORS.get(job_type)
    module = BUILTIN_PROCESSOR_MODULES.get(job_type)
    if fn is None and module is not None:
        try:
            import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
        fn = PROCESSORS.get(job_type)
    return fn
