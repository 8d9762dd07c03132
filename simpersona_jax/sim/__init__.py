"""Population simulation: sample buyer types from a store's distribution, run agents, score."""
