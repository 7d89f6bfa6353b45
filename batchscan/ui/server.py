"""`batchscan ui [--runs DIR] [--host 127.0.0.1] [--port N]`: start the web UI.

Prints one line, the URL with the access token, then serves until Ctrl-C (running scans are
interrupted, their outputs valid and resumable). `--port 0` picks a free port.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    ui = sub.add_parser("ui", help="web UI: set up scans, watch them, read and triage results")
    ui.add_argument("--runs", default="batchscan-runs", metavar="DIR",
                    help="runs folder: one JSONL per run (default ./batchscan-runs)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    ui.add_argument("--parallel", type=int, default=1, metavar="N",
                    help="scans run at once; the others queue (default 1)")


def serve(args: argparse.Namespace, parse: Callable[[list[str]], Any]) -> int:
    try:
        import uvicorn

        from batchscan.ui.app import build_app
    except ImportError as exc:
        raise SystemExit(f"batchscan ui needs the ui extra: pip install 'batchscan[ui]' ({exc})"
                         ) from exc
    token = secrets.token_urlsafe(24)
    app = build_app(Path(args.runs), token, parse, args.parallel)
    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    port = listener.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    sys.stdout.write(f"batchscan ui: http://{host}:{port}/?token={token}\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    server.run(sockets=[listener])
    return 0
