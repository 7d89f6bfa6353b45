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
