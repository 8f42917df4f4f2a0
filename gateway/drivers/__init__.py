"""Device drivers: turn a poll into canonical readings/events through the bus."""
