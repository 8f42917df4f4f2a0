"""Small state files of the gateway's drivers (hall queue, DL/T 645 back-fill marks), written so that a
power cut leaves either the old or the new file, never half of one.

Layer: gateway core (blocking file I/O: call it in a thread from async code).
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
