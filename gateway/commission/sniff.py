"""`gridedge sniff --port PORT [--baud 2400 --parity E]`: listen to a line and print every frame decoded.

Layer: gateway commissioning. Listening is passive (nothing is ever sent), so unlike `read` and `scan`
it reads the port directly: run it on a spare adapter wired to the bus, or with the gateway stopped.
Bytes are grouped into bursts by line silence (3.5 characters, at least 5 ms: the RTU rule, which also
separates DL/T 645 and hall frames); each burst is cut into frames of every protocol on the line by
`protocols.sniff` (every registered kind's frames; what none explains is noise) and printed with its
time, the silence before it and its wire time. Once the port is open a "listening" line goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from protocols.sniff import choices, decode_burst, summary

from ..errors import GatewayError
from ..line import LineSettings
from ..transport import Transport

__all__ = ["decode_burst", "register", "run", "sniff"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sniff", help="listen to a line (sends nothing) and print every frame decoded")
    p.add_argument("--port", required=True, help="/dev/ttyUSB0, /dev/pts/N, socket://HOST:PORT")
    p.add_argument("--baud", type=int, default=2400)
    p.add_argument("--parity", choices=("N", "E", "O"), default="E")
    p.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
    p.add_argument("--protocol", choices=choices(), default="auto")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--json", action="store_true", help="one JSON object per burst")
    p.set_defaults(handler=run)


async def sniff(args: argparse.Namespace, out: Any = sys.stdout) -> int:
    line = LineSettings(args.baud, 8, args.parity, args.stopbits)
    quiet = max(3.5 * line.char_time(), 0.005)
    transport = Transport(args.port, line)
    await transport.open()
    print(
        f"gridedge sniff: listening on {args.port} {line.baud} {line.bytesize}{line.parity}{line.stopbits}",
        file=sys.stderr,
        flush=True,
    )
    started = last_end = time.monotonic()
    deadline = started + args.duration if args.duration else float("inf")
    bursts = 0
    try:
        while time.monotonic() < deadline:
            first = await transport.read(min(0.5, max(deadline - time.monotonic(), 0.0)))
            if not first:
                continue
            begin = time.monotonic()
            burst = bytearray(first)
            while chunk := await transport.read(quiet):
                burst += chunk
            bursts += 1
            frames = decode_burst(bytes(burst), args.protocol)
            record: dict[str, Any] = {
                "t_ms": round((begin - started) * 1000, 1),
                "gap_ms": round((begin - last_end) * 1000, 1),
                "bytes": len(burst),
                "wire_ms": round(line.wire_time(len(burst)) * 1000, 1),
                "frames": frames,
            }
            last_end = time.monotonic()
            if args.json:
                print(json.dumps(record, ensure_ascii=False, default=str), file=out, flush=True)
            else:
                for frame in frames:
                    print(
                        f"{record['t_ms']:>10.1f} ms  +{record['gap_ms']:>7.1f}  {summary(frame)}",
                        file=out,
                        flush=True,
                    )
    finally:
        await transport.close()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(sniff(args))
    except KeyboardInterrupt:
        return 0
    except GatewayError as exc:
        print(f"gridedge sniff: {exc}", file=sys.stderr)
        return 1
