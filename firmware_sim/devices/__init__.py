"""Simulated device models, one module per device kind (pure logic behind firmware_sim.line)."""
