"""hanet.serve."""
