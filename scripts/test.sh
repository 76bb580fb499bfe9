#!/usr/bin/env bash
# Runs the test suite inside a fresh network namespace (only loopback exists there), with
# PulseAudio and the other services the tests need started inside it.  Extra args go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SANDRA_IN_NETNS:-}" ]; then
    export SANDRA_IN_NETNS=1
    if [ "$(id -u)" -eq 0 ]; then
        exec unshare -n -- "$0" "$@"
    else
        exec unshare -rn -- "$0" "$@"
    fi
fi
ip link set lo up
export SANDRA_REQUIRE_REAL_AUDIO=${SANDRA_REQUIRE_REAL_AUDIO:-${CI:+1}}
exec .venv/bin/python -m pytest "$@"
