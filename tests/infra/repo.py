"""Where things are in the repository, and the CLI subcommands the deployment files may run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI_PATH = ROOT / "layers" / "explorer_jobs" / "explorer_jobs" / "cli.py"

# The subcommands the project promises (API.md "Start it"); what deployment files may run.
PROMISED_SUBCOMMANDS = frozenset({"api", "worker", "scheduler", "migrate", "dev"})


def cli_subcommands() -> frozenset[str] | None:
    """The names passed to `add_parser(...)` in explorer_jobs/cli.py, or None while it does not exist."""
    if not CLI_PATH.exists():
        return None
    tree = ast.parse(CLI_PATH.read_text(), filename=str(CLI_PATH))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_parser"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return frozenset(names)


def cli_option_strings() -> frozenset[str]:
    """Every `--flag` literal passed to `add_argument(...)` in cli.py (any subcommand)."""
    if not CLI_PATH.exists():
        return frozenset()
    tree = ast.parse(CLI_PATH.read_text(), filename=str(CLI_PATH))
    return frozenset(
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--")
    )
