"""hanet.video."""
