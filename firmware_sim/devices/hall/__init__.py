"""A simulated business hall: `model` (arrivals, queue, counters, ratings; pure), `device` (the
dispenser, keypads and rating pads answering hall-bus frames)."""

from .device import HallDevice, add_arguments, build, build_hall, params_from, quiet_reasons

__all__ = ["HallDevice", "add_arguments", "build", "build_hall", "params_from", "quiet_reasons"]
