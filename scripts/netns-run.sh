#!/usr/bin/env bash
# netns-run.sh CMD [ARGS...]: run CMD in a fresh network namespace where only loopback exists,
# so nothing it starts can send a packet off this machine.
set -uo pipefail
if [ -z "${SANDRA_IN_NETNS:-}" ]; then
    export SANDRA_IN_NETNS=1
    if [ "$(id -u)" -eq 0 ]; then
        exec unshare -n -- "$0" "$@"
    fi
    exec unshare -rn -- "$0" "$@"
fi
ip link set lo up || { echo "netns-run.sh: cannot bring up loopback in the namespace" >&2; exit 2; }
exec "$@"
