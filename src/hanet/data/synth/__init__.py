"""hanet.data.synth."""
