#!/usr/bin/env bash
# Benchmarks, inside a fresh network namespace like the tests. Usage: scripts/bench.sh [--quick|--full]
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test || exit $?
exec scripts/netns-run.sh .venv/bin/python -m bench "${@:---quick}"
