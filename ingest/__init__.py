"""gridedge ingest: MQTT subscriber, payload validation, InfluxDB writers, alert engine.

Imports only `protocols` (never `gateway` or `firmware_sim`).
"""
