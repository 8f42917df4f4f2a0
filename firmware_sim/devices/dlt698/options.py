"""`gridedge sim dlt698` options and building the meters from them (the CLI and site files share them).

Layer: simulator device model (argument parsing only; `gridedge sim` adds --port/--baud and runs the
line). Must not: do I/O.
"""

from __future__ import annotations

import argparse

from protocols.dlt698 import Address, AddressType
from protocols.errors import ConfigError, FrameError

from .blocks import MIN_APDU_SIZE
from .meter import DEFAULT_APDU_SIZE, DEFAULT_PREAMBLE, TURNAROUND_S, Dlt698Meter


def meter_address(text: str) -> str:
    """A meter's own address: 2..32 hex digits (BCD on real meters), no wildcard `A` digit."""
    try:
        address = Address(text)
    except FrameError as exc:
        raise ConfigError([f"dlt698 {exc}"]) from None
    if address.type != AddressType.SINGLE or not address.sa.isdigit():
        raise ConfigError([f"dlt698 meter address {text!r}: must be decimal digits (no wildcard)"])
    return address.sa


def _address_arg(text: str) -> str:
    try:
        return meter_address(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _turnaround(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        lo, hi = float(low) / 1000, float(high or low) / 1000
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN[-MAX] milliseconds") from None
    if not 0.0 <= lo <= hi <= 5.0:
        raise argparse.ArgumentTypeError(f"turnaround {text} ms must be 0 <= MIN <= MAX <= 5000")
    return lo, hi


def _apdu_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"APDU size {text!r} is not a number") from None
    if not MIN_APDU_SIZE <= size <= 16000:
        raise argparse.ArgumentTypeError(f"APDU size {size} outside {MIN_APDU_SIZE}..16000 bytes")
    return size


def _mac_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"MAC key {text!r} is not hex") from None
    if not key:
        raise argparse.ArgumentTypeError("MAC key is empty")
    return key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--meter", type=_address_arg, action="append", required=True, help="12-digit address (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the load profiles, balances and MAC key")
    parser.add_argument(
        "--cost-control",
        choices=("local", "remote"),
        default="local",
        help="local: the meter has a wallet (202C) and trips itself; remote: no wallet (DAR 4)",
    )
    parser.add_argument(
        "--apdu-size",
        type=_apdu_size,
        default=DEFAULT_APDU_SIZE,
        help=f"longest answer APDU; longer ones go in GET-Next blocks (default {DEFAULT_APDU_SIZE})",
    )
    parser.add_argument(
        "--first-block",
        type=int,
        choices=(0, 1),
        default=1,
        help="number of a GET-Next transfer's first block (1, as conformance-tested terminals; 0 as 600888)",
    )
    parser.add_argument(
        "--preamble", type=int, choices=range(5), default=DEFAULT_PREAMBLE, help="FE bytes before each reply"
    )
    parser.add_argument(
        "--turnaround-ms",
        type=_turnaround,
        default=TURNAROUND_S,
        help="reply delay MIN[-MAX] in ms, uniform (default 20-100)",
    )
    parser.add_argument(
        "--secured", action="store_true", help="refuse SET/ACTION that are not ciphertext (DAR 20)"
    )
    parser.add_argument(
        "--mac-key",
        type=_mac_key,
        default=None,
        help="hex key of the simulated MAC (not ESAM crypto; default: drawn from --seed and the address)",
    )


def build(args: argparse.Namespace, start_time: float) -> list[Dlt698Meter]:
    meters: list[str] = args.meter
    if len(set(meters)) != len(meters):
        raise ConfigError([f"dlt698: duplicate meter addresses in {meters}"])
    return [
        Dlt698Meter(
            m,
            seed=getattr(args, "seed", 0),
            start_time=start_time,
            cost_control=getattr(args, "cost_control", "local"),
            apdu_size=getattr(args, "apdu_size", DEFAULT_APDU_SIZE),
            preamble=getattr(args, "preamble", DEFAULT_PREAMBLE),
            turnaround_s=getattr(args, "turnaround_ms", TURNAROUND_S),
            secured=getattr(args, "secured", False),
            mac_key=getattr(args, "mac_key", None),
            first_block=getattr(args, "first_block", 1),
        )
        for m in meters
    ]
