"""The Lua scripts, each prefixed with the shared functions of `lua/common.lua`."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

SCRIPT_NAMES = ("enqueue", "claim", "renew", "progress", "cancel", "retry", "list", "maintain", "forget")


@cache
def script_source(name: str) -> str:
    lua = files("explorer_jobs") / "lua"
    return (lua / "common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()
