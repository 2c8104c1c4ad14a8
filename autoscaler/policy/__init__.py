"""Pure scaling decisions: Observation (+ state, settings, now) -> Decision (+ new state)."""
