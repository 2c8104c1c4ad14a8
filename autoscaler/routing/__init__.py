"""Placement of requests on endpoints: prefix-cache affinity plus load, pure and seeded."""
