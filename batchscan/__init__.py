"""batchscan: a sandboxed, multiprocess batch security scanner for ML model files."""

# The single source of the version (pyproject.toml reads it); a literal, because
# importlib.metadata costs 26 ms of every run's start-up.
__version__ = "0.1.0"

__all__ = ["__version__"]
