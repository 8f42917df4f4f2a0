"""gridedge composition root: the `gridedge` CLI, the local service launchers and the demo.

This package may import every service package; none of them may import it (import-linter contract).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gridedge")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
