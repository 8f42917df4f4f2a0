"""Modbus: register maps, planner, codec, describe, simulator and interop tests."""
