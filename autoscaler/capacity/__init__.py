"""capacity layer."""
