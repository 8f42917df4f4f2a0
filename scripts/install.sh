#!/bin/sh
# Install (or re-install) a gridedge gateway from an unpacked release artifact, without internet:
#
#   tar xzf gridedge-0.2.0-manylinux_2_36_aarch64.tar.gz && sudo gridedge-0.2.0/install.sh
#
# What it does (each step idempotent: running it again changes nothing that is already right):
#   - the system user `gridedge` (group gridedge, member of dialout for the serial ports)
#   - /opt/gridedge/releases/<version>/venv: a virtualenv, installed offline from ./wheels
#     (pip --no-index --find-links: nothing is downloaded, nothing compiled)
#   - /opt/gridedge/current -> releases/<version> (what the unit starts), owned by gridedge so that the
#     gateway's signed `update` command can install the next release beside it and switch over
#   - /etc/gridedge (gridedge 0750: remote configuration replaces gateway.yaml there; write yours from
#     gateway.example.yaml, mode 0600) and /var/lib/gridedge (gridedge 0750: spool, nonces, state)
#   - /etc/systemd/system/gridedge-gateway.service, enabled; started when /etc/gridedge/gateway.yaml
#     exists, else the last line says what to do
#   - $BIN/gridedge -> /opt/gridedge/current/venv/bin/gridedge (for commissioning: gridedge scan ...)
# Environment: PREFIX (default /opt/gridedge), ETC (/etc/gridedge), STATE (/var/lib/gridedge),
# SYSTEMD (/etc/systemd/system), BIN (/usr/local/bin), PYTHON (python3, >= 3.11), NO_SYSTEMD=1 (skip systemctl: images, tests).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/opt/gridedge}
ETC=${ETC:-/etc/gridedge}
STATE=${STATE:-/var/lib/gridedge}
SYSTEMD=${SYSTEMD:-/etc/systemd/system}
BIN=${BIN:-/usr/local/bin}
PYTHON=${PYTHON:-python3}
USER_NAME=gridedge

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo): it creates a user, directories and a systemd unit"
WHEEL=$(ls "$HERE"/wheels/gridedge-*.whl 2>/dev/null | head -n 1)
[ -n "$WHEEL" ] || die "no gridedge wheel in $HERE/wheels: run this from an unpacked release artifact"
VERSION=$(basename "$WHEEL" | cut -d- -f2)
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than 3.11 (Raspberry Pi OS Bookworm has 3.11)"

if ! id "$USER_NAME" >/dev/null 2>&1; then
    say "creating system user $USER_NAME"
    useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
getent group dialout >/dev/null && usermod -a -G dialout "$USER_NAME"

install -d -o "$USER_NAME" -g "$USER_NAME" -m 0755 "$PREFIX" "$PREFIX/releases"
install -d -o "$USER_NAME" -g "$USER_NAME" -m 0750 "$ETC"
install -d -o "$USER_NAME" -g "$USER_NAME" -m 0750 "$STATE"

RELEASE="$PREFIX/releases/$VERSION"
if [ -x "$RELEASE/venv/bin/gridedge" ] && "$RELEASE/venv/bin/gridedge" --version | grep -qx "gridedge $VERSION"; then
    say "release $VERSION already installed in $RELEASE"
else
    say "installing release $VERSION into $RELEASE (offline, from $HERE/wheels)"
    rm -rf "$RELEASE"
    "$PYTHON" -m venv "$RELEASE/venv"
    "$RELEASE/venv/bin/python" -m pip install --quiet --no-index --find-links "$HERE/wheels" "gridedge==$VERSION"
    cp -r "$HERE/wheels" "$RELEASE/wheelhouse"
    chown -R "$USER_NAME:$USER_NAME" "$RELEASE"
fi
# the current link, replaced atomically (a new link renamed over the old one)
ln -sfn "$RELEASE" "$PREFIX/.current.new" && mv -T "$PREFIX/.current.new" "$PREFIX/current"
chown -h "$USER_NAME:$USER_NAME" "$PREFIX/current"
install -d "$BIN" && ln -sfn "$PREFIX/current/venv/bin/gridedge" "$BIN/gridedge"

if [ ! -e "$ETC/gateway.yaml" ] && [ -e "$HERE/gateway.example.yaml" ]; then
    install -o "$USER_NAME" -g "$USER_NAME" -m 0640 "$HERE/gateway.example.yaml" "$ETC/gateway.example.yaml"
fi
install -o root -g root -m 0644 "$HERE/gridedge-gateway.service" "$SYSTEMD/gridedge-gateway.service"

if [ "${NO_SYSTEMD:-0}" = 1 ]; then
    say "installed $VERSION (NO_SYSTEMD=1: the unit is not enabled)"
    exit 0
fi
systemctl daemon-reload
systemctl enable gridedge-gateway.service >/dev/null
if [ -e "$ETC/gateway.yaml" ]; then
    systemctl restart gridedge-gateway.service
    say "installed $VERSION and (re)started gridedge-gateway: journalctl -u gridedge-gateway -f"
else
    say "installed $VERSION; write $ETC/gateway.yaml (owner $USER_NAME, 0600), then: systemctl start gridedge-gateway"
fi
