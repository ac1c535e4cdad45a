"""hanet.index."""
