"""Modbus RTU / TCP prepaid meters: `config` (the device model), `driver` (register-map polls and
commands), `commission` (`gridedge read/scan`).

Kept empty on purpose: loading the config model must not load the driver (see `drivers.registry`)."""
