"""mobile-worship sidecar: the peer layer of the worship app, driven over stdio."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mobile-worship-sidecar")
except PackageNotFoundError:  # running from a frozen build or a bare checkout
    __version__ = "0.1.0"
