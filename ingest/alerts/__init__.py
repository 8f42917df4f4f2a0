"""The alert engine (`gridedge ingest run --role alerts`): rules on the message stream and on timers."""
