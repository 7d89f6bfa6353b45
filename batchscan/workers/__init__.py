"""Format modules and the worker runtime, installed as `batchscan.workers`.

The folder sits at the top of the repository (one module per format), but it is installed
only inside the `batchscan` package: a generic top-level `workers` package would clash with,
or be shadowed by, any `workers/` folder in the directory a user scans from.

`registry` holds the explicit registry of scanners and the content detection; `jobs` the
light types the coordinator shares with workers; `entry` the function the pool schedules;
`task` the task a pool worker runs. The registry is not imported here on purpose: the
coordinator imports `base`, `jobs` and `entry`, and an `__init__` that imported every
scanner would add 70 ms to every run's start-up.
"""
