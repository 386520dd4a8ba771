"""The files of a run directory, written so that a reader (or a killed run) never sees a part:
each through a temporary file beside it and an atomic rename."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` through a temporary file beside it and a rename: a reader sees
    the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_history_csv(path: Path, history: list[dict]) -> None:
    if not history:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)
