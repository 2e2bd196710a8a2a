#!/usr/bin/env bash
# The peer benchmark (../shared/bench/peers) with our adapter beside the peers.
# It installs this project into the harness's venv first, then runs the harness:
#   bench/run_peers.sh --peers ours,dramatiq,bullmq,taskiq,saq --n 10000 --reps 3
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_WORK:-$PWD/.bench/peers}
mkdir -p "$work"
[ -x "$work/.venv/bin/python" ] || python3 -m venv "$work/.venv"
"$work/.venv/bin/pip" install -q --disable-pip-version-check -e .
EXTRA_ADAPTERS=bench/adapters BENCH_WORK="$work" exec ../shared/bench/peers/run.sh "$@"
