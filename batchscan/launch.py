"""Process entry point: start the workers' forkserver first, then import the rest.

The forkserver imports every scanner (`batchscan.workers.task`) once so that pool workers
fork ready to scan. Started before the coordinator's own imports, the two import in parallel
on two cores instead of one after the other: about 0.1 s off every run, which a CI gate
scanning a handful of files feels.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

# `ui` scans in CLI child processes, each with its own forkserver; `doctor` starts its own.
_NO_POOL = {"report", "schema", "doctor", "ui", "-h", "--help", "--version", "--list-scanners"}
# Ctrl-C or SIGTERM before the scan's own handler is in place (during the imports below): kept
# here and honoured by the CLI as soon as it runs (a clean exit 130 with a valid output),
# instead of a KeyboardInterrupt traceback out of some import.
EARLY_SIGNALS: list[int] = []


def _early(signum: int, frame: FrameType | None) -> None:
    EARLY_SIGNALS.append(signum)


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _early)
    if sys.argv[1:2] and sys.argv[1] not in _NO_POOL:
        from batchscan import forkserver

        forkserver.start()
    from batchscan.cli import main as cli_main

    code = cli_main(early_signals=EARLY_SIGNALS)
    # The output is complete; only the interpreter's exit is left (multiprocessing's exit
    # handlers). Python resets its own handlers to the default there, so one more Ctrl-C
    # would kill the process by signal instead of letting it exit with `code`.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    return code
