"""gridedge gateway: runs on the Pi. Config, one Bus per serial line, device drivers, poll scheduler,
durable spool, MQTT publisher, command handler and the commissioning tools.

Imports only `protocols` (never `ingest` or `firmware_sim`).
"""
