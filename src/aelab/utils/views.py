"""Views that an upper layer draws for a lower one: the Jupyter view of a run is drawn by an
application (``aelab.apps.display``), which the run layer must not import. The renderers live
here, torch-free, so that ``import aelab`` can register one that loads the application on first
use, and the application its own when it is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RUN_HTML: list[Callable[[Any], str]] = []  # Jupyter renderers of a Run; the last one registered


def run_html(run: Any) -> str | None:
    """``run`` as Jupyter's HTML, by the last renderer registered (None: none)."""
    return RUN_HTML[-1](run) if RUN_HTML else None
