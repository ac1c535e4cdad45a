"""Tests of hanet.text (captions -> vocabulary, concepts, role graphs)."""
