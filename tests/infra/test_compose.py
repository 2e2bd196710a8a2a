"""infra/docker-compose.yml and infra/Dockerfile agree with the repository and the CLI.

No Docker engine runs on the CI machines, so these read the files instead of running them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from .repo import PROMISED_SUBCOMMANDS, ROOT, cli_option_strings, cli_subcommands

COMPOSE_PATH = ROOT / "infra" / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "infra" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_PATH.read_text())
    assert isinstance(document, dict)
    return document


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict) and services
    return services


def _app_commands(compose: dict[str, Any]) -> dict[str, list[str]]:
    """Each service running the project's image, with its command as a list."""
    commands = {}
    for name, service in _services(compose).items():
        if "build" not in service and not str(service.get("image", "")).startswith("explorer-jobs"):
            continue
        command = service.get("command")
        assert isinstance(command, list), f"{name}: write the command as a list, not a shell string"
        commands[name] = [str(part) for part in command]
    return commands


def _dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE_PATH.read_text(), re.MULTILINE)
    assert match, "infra/Dockerfile needs an exec-form CMD"
    command = json.loads(match.group(1))
    assert isinstance(command, list)
    return [str(part) for part in command]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """`depends_on` as {service: condition}; the short list form means service_started."""
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {target: spec.get("condition", "service_started") for target, spec in depends.items()}


def test_every_command_is_a_promised_subcommand(compose: dict[str, Any]) -> None:
    commands = _app_commands(compose) | {"Dockerfile CMD": _dockerfile_cmd()}
    assert {"api", "sse", "worker", "scheduler", "migrate"} <= commands.keys()
    for name, command in commands.items():
        assert command[0] == "explorer-jobs", f"{name}: {command}"
        assert command[1] in PROMISED_SUBCOMMANDS, f"{name}: {command[1]} is not a promised subcommand"


def test_every_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    defined = cli_subcommands()
    if defined is None:
        defined = PROMISED_SUBCOMMANDS  # cli.py not written yet: the promise is all there is
    options = cli_option_strings()
    commands = _app_commands(compose) | {"Dockerfile CMD": _dockerfile_cmd()}
    missing = {name: command[1] for name, command in commands.items() if command[1] not in defined}
    assert not missing, f"subcommands not defined in explorer_jobs/cli.py: {missing}"
    if options:
        flags = {part for command in commands.values() for part in command if part.startswith("--")}
        assert flags <= options, f"options not defined in explorer_jobs/cli.py: {sorted(flags - options)}"


def test_build_contexts_and_dockerfiles_exist(compose: dict[str, Any]) -> None:
    built = 0
    for name, service in _services(compose).items():
        build = service.get("build")
        if build is None:
            continue
        built += 1
        context = COMPOSE_PATH.parent / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"{name}: build context {context} is missing"
        dockerfile = context / (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        assert (context / ".dockerignore").is_file(), f"{name}: no .dockerignore at the build context"
    assert built


def test_volume_sources_exist(compose: dict[str, Any]) -> None:
    named = set((compose.get("volumes") or {}).keys())
    for name, service in _services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/", "~")):
                assert (COMPOSE_PATH.parent / source).exists(), f"{name}: bind mount {source} is missing"
            else:
                assert source in named, f"{name}: named volume {source} is not declared"


def test_dependencies_exist_and_their_conditions_can_be_met(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            healthcheck = services[target].get("healthcheck", {})
            if condition == "service_healthy":
                assert healthcheck.get("test") and not healthcheck.get("disable"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} must be a one-shot"
            else:
                pytest.fail(f"{name} -> {target}: wait on a condition, not {condition}")


def test_app_services_wait_for_migrations(compose: dict[str, Any]) -> None:
    for name in ("api", "sse", "worker", "scheduler"):
        depends = _depends_on(_services(compose)[name])
        assert depends.get("migrate") == "service_completed_successfully", name
        assert depends.get("redis") == "service_healthy", name


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = _services(compose)["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = redis["command"]
    assert "--appendonly" in command and command[command.index("--appendonly") + 1] == "yes"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    text = DOCKERFILE_PATH.read_text()
    assert re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)[-1] == "python:3.11-slim"
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_copies_only_what_exists() -> None:
    # README.md included: pyproject.toml names it, and the build of the package fails without it.
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", DOCKERFILE_PATH.read_text(), re.MULTILINE):
        *sources, _destination = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_nginx_snippet_does_not_buffer_the_stream() -> None:
    text = (ROOT / "infra" / "nginx-sse.conf").read_text()
    assert re.search(r"^\s*proxy_buffering off;", text, re.MULTILINE)
    assert re.search(r"^\s*proxy_http_version 1\.1;", text, re.MULTILINE)
    assert re.search(r'^\s*proxy_set_header Connection "";', text, re.MULTILINE)
    timeout = re.search(r"^\s*proxy_read_timeout (\d+)s;", text, re.MULTILINE)
    assert timeout and int(timeout.group(1)) > 15  # the SSE heartbeat interval (API.md)
