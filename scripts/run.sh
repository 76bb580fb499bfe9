#!/usr/bin/env bash
# The README's run command: installs what sandra-tui needs, then starts it on the embedded
# local Sandra agent. Extra arguments go to sandra-tui.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
exec .venv/bin/sandra-tui "$@"
