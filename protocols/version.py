"""The distribution's version, in one place: pyproject.toml reads it (`[tool.setuptools.dynamic]`), the
gateway's retained status and `gridedge --version` print it. A constant rather than an
`importlib.metadata` lookup, which costs a running gateway ~3 MB of resident memory for one string."""

VERSION = "0.1.0"
