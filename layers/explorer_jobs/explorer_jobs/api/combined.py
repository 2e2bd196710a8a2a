"""Every HTTP function in one ASGI app, for `explorer-jobs api` and `dev`.

Each `functions/<name>/app.py` is loaded by file path (they are all named `app.py`, so they cannot
be imported by name side by side) and its `routers` are mounted here: the local run serves the
deployed handlers' own routes, and one OpenAPI document covers them all.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from fastapi import FastAPI

from explorer_jobs import dashboard
from explorer_jobs.api.app import create_app

FUNCTIONS = ("enqueue", "status", "sse_gateway")


def functions_dir() -> Path:
    """`EXPLORER_JOBS_FUNCTIONS`, else `functions/` of the checkout this package sits in, else ./functions."""
    configured = os.environ.get("EXPLORER_JOBS_FUNCTIONS")
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[4] / "functions"
    return checkout if checkout.is_dir() else Path.cwd() / "functions"


def load_function(name: str, root: Path | None = None) -> ModuleType:
    """Import `functions/<name>/app.py` under the module name `explorer_jobs_functions.<name>`."""
    path = (root or functions_dir()) / name / "app.py"
    module_name = f"explorer_jobs_functions.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the {name} function from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def create_combined_app(names: tuple[str, ...] = FUNCTIONS, root: Path | None = None) -> FastAPI:
    """One app with the routers of every named function."""
    routers = [router for name in names for router in load_function(name, root).routers]
    # The dashboard is served by the local stack (`dev`, `api`), not by a Lambda function.
    return create_app([*routers, dashboard.router])
