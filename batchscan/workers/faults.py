"""Fault injection for the engine's own tests: files that make a worker misbehave on purpose.

Only active when the coordinator is configured with `fault_injection=True` (the test suite,
or `BATCHSCAN_FAULT_INJECTION=1` for the CLI); a file alone can never enable it. A fault file
starts with `BATCHSCAN-FAULT ` followed by one action:

- `sleep SECONDS`      hang (a C parser stuck in a loop)
- `allocate MIB`       allocate memory (a decompression bomb)
- `segfault`           read address 0 (a crashing native parser)
- `sigkill`            SIGKILL itself (the kernel OOM killer)
- `raise`              raise an unexpected exception (a scanner bug)
- `connect PORT`       try to reach 127.0.0.1:PORT (checks network isolation)
- `write PATH`         try to create a file (checks RLIMIT_FSIZE)
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import time
from collections.abc import Iterator

from batchscan import rules
from batchscan.records import Finding
from batchscan.rules import Rule
from batchscan.workers.base import ScanContext, Source

FORMAT = "fault"
MAGIC = b"BATCHSCAN-FAULT "

FAULT_RAN = rules.TST001
RULES: tuple[Rule, ...] = (FAULT_RAN,)


def sniff(head: bytes, name: str) -> bool:
    return head.startswith(MAGIC)


def scan(source: Source, ctx: ScanContext) -> Iterator[Finding]:
    words = source.head[len(MAGIC) :].split()
    action = words[0].decode() if words else ""
    arg = float(words[1]) if len(words) > 1 and words[1][:1].isdigit() else 0.0
    if action == "sleep":
        time.sleep(arg)
    elif action == "allocate":
        hog = bytearray(int(arg * 1024 * 1024))
        hog[::4096] = b"x" * len(hog[::4096])
    elif action == "segfault":
        ctypes.string_at(0)
    elif action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise RuntimeError("injected scanner bug")
    elif action == "connect":
        try:
            with socket.create_connection(("127.0.0.1", int(arg)), timeout=2):
                outcome = "connected"
        except OSError as exc:
            outcome = f"blocked: {exc}"
        yield FAULT_RAN.finding(f"fault connect {outcome}")
        return
    elif action == "write":
        target = words[1].decode()
        try:
            with open(target, "wb") as handle:
                handle.write(b"x" * 4096)
            outcome = "written"
        except OSError as exc:
            outcome = f"blocked: {exc}"
        yield FAULT_RAN.finding(f"fault write {outcome}")
        return
    yield FAULT_RAN.finding(f"fault {action} completed")
