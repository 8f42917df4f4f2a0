"""gridedge composition root: the `gridedge` CLI, the local service launchers and the demo.

This package may import every service package; none of them may import it (import-linter contract).
"""

from protocols.version import VERSION as __version__

__all__ = ["__version__"]
