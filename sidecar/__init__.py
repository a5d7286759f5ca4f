"""mobile-worship sidecar: the peer layer of the worship app, driven over stdio."""

__version__ = "0.1.0"
"""Kept equal to pyproject.toml's version (a test checks it); read here rather
than through importlib.metadata, which costs ~50 ms at every start."""
