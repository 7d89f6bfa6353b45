"""Format modules that run inside sandboxed worker processes.

`workers.registry` holds the explicit registry of scanners and the content detection;
`workers.jobs` the light types the coordinator shares with workers; `workers.task` the task
a pool worker runs. The registry is not in this file on purpose: the coordinator imports
`workers.base` and `workers.jobs`, and a package `__init__` that imported every scanner would
add 70 ms (h5py, py7zr, every rule table) to every run's start-up for modules only the
workers' forkserver needs.
"""
