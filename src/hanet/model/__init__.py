"""hanet.model."""
