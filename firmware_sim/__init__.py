"""gridedge simulators: every device kind on virtual serial lines (ptys or TCP serial servers) with real
baud timing and fault injection, so CI, demos and benchmarks run without hardware.

Imports only `protocols` (never `gateway` or `ingest`).
"""
