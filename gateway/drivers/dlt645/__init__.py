"""DL/T 645 (2007 and 1997) meters: `config` (the device model), `driver` (polls, back-fill of
frozen data, remote cost-control commands), `backfill`, `commission` (`gridedge read/scan`).

Kept empty on purpose: loading the config model must not load the driver (see `drivers.registry`)."""
