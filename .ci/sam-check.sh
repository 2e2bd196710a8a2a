#!/usr/bin/env bash
# Lints template.yaml and builds it with SAM, offline (no Docker: the local Python 3.11 builds the
# python3.11 functions and layer). The tools live in .venv-tools so their pins (boto3, pydantic, ...)
# never meet the project's. Exit status non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$root/.venv-tools"

if [[ ! -x "$tools/bin/sam" || ! -x "$tools/bin/cfn-lint" ]]; then
  echo "sam-check: installing aws-sam-cli and cfn-lint into .venv-tools"
  python3.11 -m venv "$tools" 2>/dev/null || python3 -m venv "$tools"
  # -qq: pip's "location ignored" warnings for this machine's extra index paths are noise here.
  "$tools/bin/pip" install -qq --disable-pip-version-check aws-sam-cli cfn-lint
fi

echo "sam-check: cfn-lint template.yaml"
"$tools/bin/cfn-lint" template.yaml

echo "sam-check: sam build"
export SAM_CLI_TELEMETRY=0
# --cached reuses the layer's installed dependencies while requirements.txt is unchanged (.aws-sam/cache,
# git-ignored like the build); --parallel builds the functions and the layer at once.
"$tools/bin/sam" build --template template.yaml --build-dir .aws-sam/build --cached --parallel

layer="$root/.aws-sam/build/ExplorerJobsLayer/python"
if [[ ! -f "$layer/explorer_jobs/__init__.py" ]]; then
  echo "sam-check: the layer's package is not at $layer/explorer_jobs" >&2
  exit 1
fi
for fn in EnqueueFunction StatusFunction SseGatewayFunction SseLongPollFunction SchedulerFunction; do
  if [[ ! -f "$root/.aws-sam/build/$fn/app.py" ]]; then
    echo "sam-check: $fn has no app.py in .aws-sam/build/$fn" >&2
    exit 1
  fi
done
if [[ ! -x "$root/.aws-sam/build/SseGatewayFunction/run.sh" ]]; then
  echo "sam-check: .aws-sam/build/SseGatewayFunction/run.sh is missing or not executable" >&2
  exit 1
fi
echo "sam-check: ok"
