"""Typed performance profiles: one model x accelerator x tensor-parallel degree, with provenance."""
