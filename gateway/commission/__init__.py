"""Commissioning tools for field engineers: `gridedge read`, `gridedge scan`, `gridedge sniff`.

Each protocol has a module here (`dlt645`, `modbus`, `hall`) providing:

    add_read_arguments(parser)      protocol-specific flags for `gridedge read` (the shared ones are
                                     --protocol --port --baud --parity --stopbits --echo --address
                                     --json --raw --timeout)
    default_line() -> LineSettings   the protocol's usual line settings (overridden by the flags)
    async read(bus, args) -> dict    one value, decoded (+ "request"/"reply" hex when args.raw)
    add_scan_arguments(parser)
    async scan(bus, args, progress) -> list[dict]   what answered; progress(done, total, label)

They talk to the line through a Bus like the gateway does, never by opening the port themselves.
"""
