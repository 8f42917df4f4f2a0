#!/bin/sh
# Runs once, when influxdb:2 initialises its data volume (/docker-entrypoint-initdb.d): maps the
# InfluxDB 1.x database/retention policy `gridedge/autogen` onto the bucket, so Grafana's InfluxQL
# datasource (and every dashboard query) works unchanged on 1.x, on 2.x through this mapping, and on 3.x.
set -eu
influx v1 dbrp create \
    --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --db "${INFLUXQL_DATABASE:-gridedge}" \
    --rp autogen \
    --default \
    --org "${DOCKER_INFLUXDB_INIT_ORG}"
