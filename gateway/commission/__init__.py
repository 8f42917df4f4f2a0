"""Commissioning tools for field engineers: `gridedge read`, `gridedge scan`, `gridedge sniff`.

The commands are built from the device-kind registry (`protocols.kinds`): each kind's module
`gateway.drivers.NAME.commission` provides

    add_read_arguments(parser)      the kind's own flags for `gridedge read`, prefixed with its name
                                     where they could clash (the shared ones are --protocol --port
                                     --baud --parity --stopbits --echo --address --json --raw)
    async read(bus, args) -> dict    one value, decoded (+ "request"/"reply" hex when args.raw)
    add_scan_arguments(parser)
    async scan(bus, args, progress) -> list[dict]   what answered; progress(done, total, label)

and the line settings come from the registration. They talk to the line through a Bus like the
gateway does, never by opening the port themselves. `sniff` decodes with `protocols.sniff`.
"""
