"""template.yaml agrees with the repository and with the HTTP contract (API.md).

`.ci/sam-check.sh` runs cfn-lint and `sam build`; these are the checks neither of them makes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from .cfn_yaml import load_template
from .repo import ROOT, cli_subcommands

TEMPLATE_PATH = ROOT / "template.yaml"

# Every route of API.md, as (method, path). Kept here so the test runs wherever API.md is not; when
# it is found, the two are compared, so the contract and this list cannot drift apart.
API_ROUTES = frozenset(
    {
        ("POST", "/api/connections"),
        ("GET", "/api/connections"),
        ("GET", "/api/connections/{id}"),
        ("DELETE", "/api/connections/{id}"),
        ("POST", "/api/connections/{id}/test"),
        ("GET", "/api/connections/{id}/schemas"),
        ("POST", "/api/connections/{id}/train-schema"),
        ("GET", "/api/connections/{id}/schema-cache"),
        ("DELETE", "/api/connections/{id}/schema-cache"),
        ("GET", "/api/jobs/{jobId}"),
        ("GET", "/api/jobs"),
        ("POST", "/api/jobs/{jobId}/cancel"),
        ("POST", "/api/jobs/{jobId}/retry"),
        ("GET", "/api/jobs/notifications/stream"),
        ("POST", "/api/jobs/notifications/ticket"),
        ("GET", "/healthz"),
        ("GET", "/api/queues"),
    }
)
API_MD_CANDIDATES = [ROOT / "API.md", ROOT / "docs" / "API.md", Path("/work/shared/API.md")]
ROUTE_IN_MARKDOWN = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    functions = _resources(template, "AWS::Serverless::Function")
    assert functions
    return functions


def _http_routes(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(method, path) of every HttpApi event -> the function it invokes."""
    routes: dict[tuple[str, str], str] = {}
    for name, function in _functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                route = (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
                assert route not in routes, f"{route} is routed to {routes[route]} and {name}"
                routes[route] = name
    return routes


def test_api_routes_match_api_md() -> None:
    found = next((path for path in API_MD_CANDIDATES if path.is_file()), None)
    if found is None:
        pytest.skip("no API.md in the repository or /work/shared; the embedded route list stands")
    documented = set(ROUTE_IN_MARKDOWN.findall(found.read_text()))
    assert documented == API_ROUTES, f"API.md and API_ROUTES differ: {documented ^ API_ROUTES}"


def test_every_api_route_is_an_http_api_event(template: dict[str, Any]) -> None:
    routes = _http_routes(template)
    assert API_ROUTES - routes.keys() == set(), "routes of API.md with no HttpApi event"
    assert routes.keys() - API_ROUTES == set(), "HttpApi events that API.md does not define"


def test_routes_go_to_the_function_that_owns_them(template: dict[str, Any]) -> None:
    for (method, path), function in _http_routes(template).items():
        if path == "/api/jobs/notifications/stream":
            expected = "SseLongPollFunction"
        elif method in {"POST", "DELETE"}:
            expected = "EnqueueFunction"
        else:
            expected = "StatusFunction"
        assert function == expected, f"{method} {path}"


def test_code_uri_and_handler_module_exist(template: dict[str, Any]) -> None:
    for name, function in _functions(template).items():
        properties = function["Properties"]
        code = ROOT / properties["CodeUri"]
        assert code.is_dir(), f"{name}: CodeUri {code} is missing"
        handler = properties["Handler"]
        if handler.endswith(".sh"):
            # A Lambda Web Adapter start script: executable, and the module it serves exists.
            script = code / handler
            assert script.is_file() and os.access(script, os.X_OK), f"{name}: {script} not executable"
            served = re.search(r"uvicorn\s+(?:\S+\s+)*?(\w+):(\w+)", script.read_text())
            assert served, f"{name}: {script} does not start uvicorn"
            assert (code / f"{served.group(1)}.py").is_file(), f"{name}: {served.group(1)}.py missing"
        else:
            module, _, attribute = handler.rpartition(".")
            assert module and attribute, f"{name}: handler {handler} is not module.attribute"
            assert (code / (module.replace(".", "/") + ".py")).is_file(), f"{name}: {module}.py missing"


def test_layer_has_the_layout_sam_builds_under_python(template: dict[str, Any]) -> None:
    layer = template["Resources"]["ExplorerJobsLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    assert template["Globals"]["Function"]["Runtime"] == "python3.11"
    content = ROOT / layer["Properties"]["ContentUri"]
    assert (content / "requirements.txt").is_file()
    assert (content / "explorer_jobs" / "__init__.py").is_file()
    assert not (content / "python").exists(), "SAM adds python/ itself (NOTES.md)"


def test_sse_gateway_streams_through_the_web_adapter(template: dict[str, Any]) -> None:
    properties = template["Resources"]["SseGatewayFunction"]["Properties"]
    assert properties["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    variables = properties["Environment"]["Variables"]
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    layers = [str(layer) for layer in properties["Layers"]]
    assert any("LambdaAdapterLayer" in layer for layer in layers)


def test_the_scheduler_ticks_every_minute_and_the_default_cron_reaches_the_functions(
    template: dict[str, Any],
) -> None:
    events = template["Resources"]["SchedulerFunction"]["Properties"]["Events"]
    (schedule,) = [event for event in events.values() if event["Type"] == "ScheduleV2"]
    # Connections carry crons of their own: the schedule is a clock, each cron decides what is due.
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "SchedulerTick"}
    assert template["Parameters"]["SchedulerTick"]["Default"] == "cron(* * * * ? *)"
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["SCHEDULER_TICK_SECONDS"] == "60"
    assert variables["SCHEMA_TRAINING_CRON"] == {"Ref": "SchemaTrainingCron"}
    assert template["Parameters"]["SchemaTrainingCron"]["Default"] == "0 2 * * 0"


def test_worker_runs_the_worker_subcommand(template: dict[str, Any]) -> None:
    (task,) = _resources(template, "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert container["Command"] == ["explorer-jobs", "worker"]
    assert container["Image"] == {"Ref": "WorkerImage"}
    defined = cli_subcommands()
    assert defined is None or "worker" in defined
    environment = {item["Name"] for item in container["Environment"] if "Name" in item}
    assert "WORKER_CONCURRENCY" in environment


def test_secrets_are_secrets_manager_arns_without_defaults(template: dict[str, Any]) -> None:
    secret_parameters = {
        name: spec for name, spec in template["Parameters"].items() if name.endswith("SecretArn")
    }
    assert {"JwtSecretArn", "EncryptionKeySecretArn", "DatabaseUrlSecretArn"} <= secret_parameters.keys()
    for name, spec in secret_parameters.items():
        assert spec.get("Default", "") == "", f"{name} must not default to a value"
        assert "secretsmanager" in spec["AllowedPattern"], name
    for name, spec in template["Parameters"].items():
        assert not re.search(r"(secret|password|token|key)$", name, re.IGNORECASE) or not spec.get(
            "Default"
        ), f"{name} looks like a secret with a plaintext default"


def test_a_streamed_gateway_ends_each_stream_before_its_lambda_timeout(template: dict[str, Any]) -> None:
    gateway = template["Resources"]["SseGatewayFunction"]["Properties"]
    minutes = float(gateway["Environment"]["Variables"]["SSE_STREAM_MAX_MINUTES"])
    assert minutes * 60 < gateway["Timeout"]
