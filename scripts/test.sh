#!/usr/bin/env bash
# The README's test command: installs the test prerequisites (apt packages, .venv), then runs the
# whole suite inside a fresh network namespace where only loopback exists, so no test can send
# a packet off this machine. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test || exit $?
export SANDRA_REQUIRE_REAL_AUDIO=${SANDRA_REQUIRE_REAL_AUDIO:-${CI:+1}}
export PYTHONDONTWRITEBYTECODE=1
scripts/netns-run.sh .venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "test.sh: pytest collected no tests" >&2
    exit 1
fi
exit $rc
