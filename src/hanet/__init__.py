"""hanet: Hierarchical Alignment Networks for video-text retrieval.

A reference-grade implementation of HANet (Wu et al., ACM MM 2021) that reproduces the
official code number for number (see ``hanet parity``) with batched, tested code.
"""

__version__ = "0.1.0"
