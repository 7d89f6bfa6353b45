"""Copy a chosen few generated artefacts into the committed fast subset.

    python -m benchmarks.real_artefacts.pick bench-data/real-models tests/fixtures/real_models

`CHOSEN` names each file by `<library>/<path>` under OUT/files and says what the scanner is
expected to do with it today: "clean", or the false-positive class (issue 16) it still falls
into. tests/test_real_models_corpus.py reads the manifest this writes and marks the latter
`xfail(strict=True)`, so fixing a class turns its tests into unexpected passes to flip.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

MAX_FILE = 200 * 1024
MAX_TOTAL = 3 * 1024 * 1024

CHOSEN: dict[str, str] = {}


def main(argv: list[str]) -> int:
    out, target = Path(argv[0]), Path(argv[1])
    manifests = {m.stem: json.loads(m.read_text()) for m in (out / "manifest").glob("*.json")}
    shutil.rmtree(target, ignore_errors=True)
    rows = []
    total = 0
    for name, expect in CHOSEN.items():
        library, rel = name.split("/", 1)
        source = out / "files" / library / rel
        size = source.stat().st_size
        if size > MAX_FILE:
            raise SystemExit(f"{name} is {size} bytes (over {MAX_FILE})")
        total += size
        destination = target / library / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        manifest = manifests[library]
        how = next((a["how"] for a in manifest["artefacts"] if a["path"] == rel), "")
        rows.append({"file": f"{library}/{rel}", "library": library,
                     "versions": manifest["versions"], "how": how, "expect": expect})
    if total > MAX_TOTAL:
        raise SystemExit(f"the subset is {total} bytes (over {MAX_TOTAL})")
    (target / "manifest.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(rows)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
