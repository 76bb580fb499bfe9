#!/bin/sh
# Restart the replicas one at a time, each back on /healthz before the next goes down, so nginx
# always has two to send requests to. Calls on a restarted replica reconnect to another.
set -eu
for i in ${REPLICAS:-1 2 3}; do
    systemctl restart "sandra-serve@$i"
    tries=0
    until curl -fsS "http://127.0.0.1:875$i/healthz" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            echo "sandra-serve@$i is not healthy after 30 s; stopping here" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "sandra-serve@$i healthy"
done
