#!/usr/bin/env bash
# The README's test command: installs the test prerequisites (apt packages, .venv), then runs the
# whole suite inside a fresh network namespace where only loopback exists, so no test can send
# a packet off this machine. Extra arguments go to pytest.
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
ip link set lo up || { echo "test.sh: cannot bring up loopback in the namespace" >&2; exit 2; }
export SANDRA_REQUIRE_REAL_AUDIO=${SANDRA_REQUIRE_REAL_AUDIO:-${CI:+1}}
export PYTHONDONTWRITEBYTECODE=1
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "test.sh: pytest collected no tests" >&2
    exit 1
fi
exit $rc
