"""The temporary directory of one benchmark run: removed when the run ends, logs kept when it fails.

A benchmark starts a private Mosquitto and influxd (data, WAL, ~48 MB per `make bench`), SQLite state
and logs under one directory. Left in /tmp, every run would add to it; so a run that ends normally
removes it all, and a run that fails (an exception, Ctrl-C, or the benchmark saying so with
`failed()`) keeps only its `*.log` files, for the post-mortem, and says where.

Layer: bench (a tool run by hand or by `make bench`); it must not be imported by a service.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunDir:
    path: Path
    ok: bool = True

    def failed(self) -> None:
        """The benchmark found a problem without raising: keep the logs."""
        self.ok = False


@contextlib.contextmanager
def run_dir(prefix: str) -> Iterator[RunDir]:
    """A fresh directory under the system temp dir (honours TMPDIR); see the module docstring."""
    run = RunDir(Path(tempfile.mkdtemp(prefix=prefix)))
    try:
        yield run
    except BaseException:  # KeyboardInterrupt and CancelledError too: clean up, then re-raise
        run.ok = False
        raise
    finally:
        _finish(run)


def _finish(run: RunDir) -> None:
    if run.ok:
        shutil.rmtree(run.path, ignore_errors=True)
        return
    logs = prune_to_logs(run.path)
    if logs:
        print(f"run failed: {len(logs)} log(s) kept in {run.path}", file=sys.stderr)
    else:
        shutil.rmtree(run.path, ignore_errors=True)


def prune_to_logs(root: Path) -> list[Path]:
    """Delete everything under `root` except `*.log` files (and the directories holding them)."""
    kept = []
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink() or path.is_file():
            if path.suffix == ".log":
                kept.append(path)
            else:
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return kept
