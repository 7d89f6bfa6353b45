"""Renderings of records: JSONL (the system of record), a JSON document, and text."""
