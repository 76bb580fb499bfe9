#!/usr/bin/env bash
# Installs what sandra-tui needs on Debian/Ubuntu and builds .venv. Idempotent: a second run
# checks and returns in a few seconds.  Usage: scripts/setup.sh run|test
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

run_pkgs=(libportaudio2 python3 python3-venv python3-dev)
test_pkgs=(pulseaudio pulseaudio-utils libasound2-plugins coturn espeak-ng sox libsox-fmt-all iproute2 util-linux tmux wrk curl
           librsvg2-bin fonts-firacode postgresql stress-ng nftables chromium chromium-common
           nginx prometheus)
pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv); only ask apt for it when there is none.
if command -v python3 >/dev/null && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    filtered=()
    for p in "${missing[@]}"; do case $p in python3|python3-venv|python3-dev) ;; *) filtered+=("$p");; esac; done
    missing=("${filtered[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # coturn and postgresql start system services on install; the tests run their own.
    for svc in coturn postgresql; do
        "${sudo_cmd[@]}" service "$svc" stop >/dev/null 2>&1 || true
    done
fi

py=${PYTHON:-python3}
extra=""
[ "$mode" = test ] && extra="[test]"
stamp_dir=.venv/.stamps
want=$( (cat pyproject.toml; echo "$mode"; "$py" --version) | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
have_stamp=$stamp_dir/$mode-$want
if [ ! -f "$have_stamp" ] || ! .venv/bin/python -c 'import sandra_tui' 2>/dev/null; then
    echo "setup: installing sandra-tui$extra into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".$extra"
    mkdir -p "$stamp_dir"
    rm -f "$stamp_dir/$mode-"*
    touch "$have_stamp"
fi
