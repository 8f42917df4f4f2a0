"""DL/T 698.45 meters: `config` (the device model), `driver` (NormalList polls with per-object
fallback, clock check, plaintext ACTION commands, ciphertext pass-through), `plan` (objects, names,
wire sizes), `control` (the command APDUs), `backfill` (daily freezes after a gap), `commission`
(`gridedge read/scan --protocol dlt698`).

Kept empty on purpose: loading the config model must not load the driver (see `drivers.registry`)."""
