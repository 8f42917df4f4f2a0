"""The business hall (ticket dispenser, caller keypads, rating pads on one bus): `config`, `driver`,
`queue` (the hall's queue logic, pure), `commission` (`gridedge read/scan`).

Kept empty on purpose: loading the config model must not load the driver (see `drivers.registry`)."""
