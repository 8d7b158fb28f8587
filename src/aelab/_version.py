"""aelab's version, in one place: ``pyproject.toml`` reads it from here, and every module that
records it imports it from here rather than from the package's face."""

__version__ = "0.2.1"
