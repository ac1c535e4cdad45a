"""hanet.text."""
