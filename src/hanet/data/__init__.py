"""hanet.data."""
