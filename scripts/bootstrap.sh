#!/usr/bin/env bash
# Sets up what `make demo` and `make test` need on a Debian machine:
#   - Debian's mosquitto, influxdb (InfluxDB 1.x) and prometheus-alertmanager when their binaries are
#     missing (needs root),
#   - python3-venv when the interpreter cannot make a virtualenv,
#   - .venv with gridedge installed in editable mode with its test extras.
# On other systems it says exactly what to install and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have mosquitto || need_apt+=(mosquitto)
have openssl || need_apt+=(openssl)  # the TLS tests make their certificates with it
have influxd || need_apt+=(influxdb)
have prometheus-alertmanager || need_apt+=(prometheus-alertmanager)  # the alerts' Alertmanager output tests
have mbpoll || need_apt+=(mbpoll)
# tests/deploy/test_compose.py validates docker-compose.yml with `docker-compose config` (offline, no daemon)
if ! have docker-compose && ! docker compose version >/dev/null 2>&1; then need_apt+=(docker-compose); fi
if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  need_apt+=(python3 python3-venv python3-dev)
elif [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  need_apt+=(python3-venv)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "gridedge bootstrap: missing system packages: ${need_apt[*]}" >&2
    echo "  run as root, or install them first: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "gridedge bootstrap: this is not a Debian-like system (no apt-get)." >&2
    echo "  install by hand: Mosquitto >= 2.0 (mosquitto), InfluxDB 1.x (influxd), Alertmanager, mbpoll, Python >= 3.11 with venv" >&2
    exit 1
  fi
  echo "gridedge bootstrap: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "gridedge bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
# the run-time dependencies, and pymodbus, which only the test extra brings
"$VENV/bin/python" -c 'import gridedge, aiomqtt, msgspec, prometheus_client, pymodbus' || {
  echo "gridedge bootstrap: the Python install failed (see pip output above)" >&2; exit 1; }
echo "gridedge bootstrap: ready ($("$VENV/bin/gridedge" --version))"
