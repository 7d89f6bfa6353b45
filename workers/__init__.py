"""Format modules that run inside sandboxed worker processes.

`workers.registry` holds the explicit registry of scanners and the content detection;
`workers.jobs` the light types the coordinator shares with workers (importing it does not
load any scanner); `workers.task` the task a pool worker runs.
"""
