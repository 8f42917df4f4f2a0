#!/bin/sh
# Writes the broker's password file from the environment (MQTT_<ROLE>_PASSWORD), then runs mosquitto.
# Secrets stay out of the repository and out of the image; rotate by changing .env and restarting.
set -eu
: "${MQTT_GATEWAY_USER:?}" "${MQTT_GATEWAY_PASSWORD:?}" "${MQTT_INGEST_PASSWORD:?}" "${MQTT_OPERATOR_PASSWORD:?}"
umask 077
passwd=/mosquitto/data/passwd
: > "$passwd"
mosquitto_passwd -b "$passwd" "$MQTT_GATEWAY_USER" "$MQTT_GATEWAY_PASSWORD"
mosquitto_passwd -b "$passwd" gridedge-ingest "$MQTT_INGEST_PASSWORD"
mosquitto_passwd -b "$passwd" gridedge-operator "$MQTT_OPERATOR_PASSWORD"
chown mosquitto:mosquitto "$passwd" 2>/dev/null || true
exec mosquitto -c /mosquitto/config/mosquitto.conf
