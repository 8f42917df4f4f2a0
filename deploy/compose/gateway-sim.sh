#!/bin/sh
# docker-compose's `gateway` service: the simulators and the gateway in one container, because a
# pseudo-terminal cannot cross a container boundary. The simulators link their ptys where the gateway
# config expects them; the gateway starts once every link exists. SIGTERM stops both (gateway first,
# so it drains its spool to the broker while the simulators still answer).
set -eu
SIM_CONFIG=${SIM_CONFIG:-/etc/gridedge/sim.yaml}
GATEWAY_CONFIG=${GATEWAY_CONFIG:-/etc/gridedge/gateway.yaml}

# GRIDEDGE_* overrides are meant for the gateway; the simulator would apply them to its own config
(
    for var in $(env | sed -n 's/^\(GRIDEDGE_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
    exec gridedge sim run -c "$SIM_CONFIG" </dev/null
) &
sim=$!
gw=""
stop() {
    [ -n "$gw" ] && kill -TERM "$gw" 2>/dev/null && wait "$gw" || true
    kill -TERM "$sim" 2>/dev/null || true
    wait "$sim" || true
    exit 0
}
trap stop TERM INT

# the links named in the simulator config (`link: ...`)
links=$(sed -n 's/^ *link: *//p' "$SIM_CONFIG")
tries=0
for link in $links; do
    while [ ! -e "$link" ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ] || ! kill -0 "$sim" 2>/dev/null; then
            echo "gateway-sim: simulator link $link did not appear" >&2
            exit 1
        fi
        sleep 0.1
    done
done

gridedge gateway check -c "$GATEWAY_CONFIG"
gridedge gateway run -c "$GATEWAY_CONFIG" &
gw=$!
wait "$gw"
