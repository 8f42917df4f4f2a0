"""Simulated DL/T 645 prepaid meters: `meter` (frames in, replies out), `history` (freezes, outages)."""

from .meter import Dlt645Meter, add_arguments, build, parse_password

__all__ = ["Dlt645Meter", "add_arguments", "build", "parse_password"]
