#!/bin/sh
# Make this machine ready for the container tests: Docker engine, the offline base
# image, and the codecs/debian image. Idempotent: a no-op (a few seconds) when done.
#
#   PYTHON=.venv/bin/python codecs/ci-setup.sh
#
# Needs root on Debian 12 (apt-get). PYTHON is the interpreter that has the harness
# installed (default: python3); the docker SDK is installed into it when missing.
# Steps, each skipped when already done:
#   1. apt-get install docker.io debootstrap
#   2. start the Docker engine (systemd if it runs, else dockerd in the background)
#   3. codecs/seed-base-image.sh: debian:bookworm-slim without a registry
#   4. python -m harness.containers build debian (tagged by the recipe's content hash)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/lic-harness-dockerd.log}

say() { echo "ci-setup: $*"; }

if [ "$(id -u)" != 0 ]; then
    say "needs root (apt-get, dockerd, debootstrap); run it with sudo" >&2
    exit 1
fi

missing=""
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    missing="$missing docker.io"
fi
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    say "installing$missing"
    apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

if ! docker info >/dev/null 2>&1; then
    if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1; then
        say "started docker with systemd"
    else
        say "starting dockerd in the background (log: $DOCKERD_LOG)"
        # setsid: the engine outlives this script and the shell that ran it
        setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    tries=0
    until docker info >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            say "the Docker engine did not come up in 60 s; last lines of $DOCKERD_LOG:" >&2
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 1
    done
fi
say "docker engine: $(docker version --format '{{.Server.Version}}')"

"$HERE/seed-base-image.sh" debian:bookworm-slim

if ! "$PYTHON" -c 'import docker' >/dev/null 2>&1; then
    say "installing the docker SDK into $PYTHON"
    "$PYTHON" -m pip install -q 'docker==7.1.0'
fi
cd "$HERE/.."
"$PYTHON" -m harness.containers build debian
say "done"
