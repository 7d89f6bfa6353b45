"""Executors: where a run's items are scanned (`local`: this machine's pool; `dask`: a cluster)."""
