"""The explorer's attribute directions: pick a group, move a code along its direction.

A group's direction is the mean code of its images minus the mean code of every grouped image
(:func:`aelab.analysis.keeps.group_directions`), as in the report's "Looking inside"; the
groups are the workshop's (``aelab run --groups``, its ``groups.csv``), else the data's labels,
over the explorer's held-out images where they hold two groups of two images or more, else over
its training images (:func:`aelab.analysis.inside_measure.attribute_groups`). A request names a
group and how far along, ``t`` in [-:data:`REACH`, +:data:`REACH`] times the direction; anything
else is one line (:meth:`Directions.along`).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from aelab.analysis import keeps
from aelab.analysis.inside_measure import attribute_groups
from aelab.apps.explorer.space import LatentSpace

REACH = 2.0  # the slider spans -2 to +2 times a group's direction


class Directions:
    """The attribute directions of ``space``'s model (computed on first use)."""

    def __init__(self, space: LatentSpace):
        self.space = space
        self._found: dict[str, Any] | None = None

    def _groups(self) -> dict[str, Any]:
        if self._found is None:
            s = self.space
            parts = SimpleNamespace(train=s.train, heldout=s.heldout)
            found = attribute_groups(parts, s.image_groups) if len(s.heldout) else None
            if found is None or found["part"] is None:
                source = "the data's labels" if s.image_groups is None else s.image_groups.source
                why = f"{source} give fewer than two groups of two images or more among the "
                self._found = {"why": why + "explorer's images: no attribute directions"}
            else:
                codes = s.codes_heldout if found["part"] == "heldout" else s.codes_train
                which = found["groups"]
                names = [str(found["names"][g]) for g in which]
                labels = found["labels"]
                sizes = np.bincount(labels[labels >= 0], minlength=len(found["names"]))
                self._found = {
                    "source": found["source"],
                    "images": "held-out" if found["part"] == "heldout" else "training",
                    "names": names,
                    "sizes": [int(sizes[g]) for g in which],
                    "directions": keeps.group_directions(codes, labels, which),  # (G, D)
                }
        return self._found

    def describe(self) -> dict[str, Any]:
        """The groups, their directions and the slider's reach (JSON-ready), or why none."""
        found = self._groups()
        if "why" in found:
            return {"available": False, "why": found["why"]}
        return {
            "available": True, "source": found["source"], "images": found["images"],
            "reach": REACH,
            "groups": [{"name": n, "n_images": k} for n, k in zip(found["names"], found["sizes"])],
            "directions": found["directions"].tolist(),
        }  # fmt: skip

    def along(self, group: Any, t: Any, code: Any) -> np.ndarray:
        """``code + t * direction(group)`` as a checked ``(1, latent_dim)`` float32 code."""
        found = self._groups()
        if "why" in found:
            raise ValueError(found["why"])
        names = found["names"]
        if not isinstance(group, str) or group not in names:
            shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
            raise ValueError(f"group={str(group)[:60]!r} is not a group; allowed: {shown}")
        ok = isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
        if not ok or abs(t) > REACH:
            raise ValueError(
                f"t={t!r} is not valid; allowed: a number from {-REACH:g} to {REACH:g}"
            )
        if code is None:
            raise ValueError(
                'body has no "code"; expected {"group": name, "t": t, "code": [numbers]}'
            )
        start = self.space.check_codes(code)
        if len(start) != 1:
            raise ValueError(f"code holds {len(start)} codes; expected one")
        moved = start[0].astype(np.float64) + t * found["directions"][names.index(group)]
        return self.space.check_codes(moved)


__all__ = ["REACH", "Directions"]
