"""batchscan: a sandboxed, multiprocess batch security scanner for ML model files."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("batchscan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
