#!/usr/bin/env bash
# Benchmarks, inside a fresh network namespace like the tests (only loopback exists there).
# Usage: scripts/bench.sh [--quick|--full]
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SANDRA_IN_NETNS:-}" ]; then
    scripts/setup.sh test || exit $?
    export SANDRA_IN_NETNS=1
    if [ "$(id -u)" -eq 0 ]; then
        exec unshare -n -- "$0" "$@"
    fi
    exec unshare -rn -- "$0" "$@"
fi
ip link set lo up
exec .venv/bin/python -m bench "${@:---quick}"
