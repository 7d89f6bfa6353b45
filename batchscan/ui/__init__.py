"""The web UI (`batchscan ui`): set up a scan, watch it run, read and triage the results.

A local Starlette app over a runs folder. Each run is one JSONL file, exactly the CLI's
`-f jsonl` output, plus a small metadata file; runs the CLI or shards wrote into the folder
show up too. Reading goes through DuckDB (`query.py`), so a run of a million records pages,
filters and counts without being loaded into Python. Scans started from the UI run the CLI
itself in a child process (`runner.py`): same engine, same worker sandbox, SIGINT to cancel,
`--resume` to resume.

    app.py      routes, access token, templates (autoescaped)
    runs.py     the runs folder: names confined to it, metadata
    query.py    DuckDB over the JSONL files: pages, counts, one file, diff, export rows
    scans.py    the queue of scans, their child processes, cancel and resume
    runner.py   the child process: the CLI, observed (progress for the live page)
    triage.py   accepted / false-positive findings, in the file the CLI's --baseline reads
    server.py   `batchscan ui`: arguments, token, uvicorn

Needs the `ui` extra (`pip install 'batchscan[ui]'`).
"""
