"""Format modules that run inside sandboxed worker processes.

`SCANNERS` is the explicit registry (order matters: the first module whose `sniff` accepts
the head bytes scans the file). `workers.magic` names formats that have no scanner yet.
"""

from __future__ import annotations

from workers import pickle
from workers.base import FormatModule
from workers.magic import recognise

SCANNERS: tuple[FormatModule, ...] = (pickle,)

UNKNOWN = "unknown"


def detect(head: bytes, name: str, scanners: tuple[FormatModule, ...] = SCANNERS) -> tuple[
    str, FormatModule | None
]:
    """Format id and scanner module for a file, decided by content (the name is a hint)."""
    for module in scanners:
        if module.sniff(head, name):
            return module.FORMAT, module
    return recognise(head, name) or UNKNOWN, None
