"""The latent-space explorer: sliders, a map of the codes and images to start from.

``aelab explore RUN`` serves a page (:mod:`.server`); :func:`explore` gives the same sliders as a
Jupyter widget (:mod:`.widget`). Both stand on :class:`.space.LatentSpace`. Nothing here imports
the web framework or ipywidgets until it is used (``pip install aelab[explore]`` /
``aelab[notebook]``). ``aelab.explore`` is :func:`explore`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aelab.runs.open import open_runs
from aelab.runs.run import Run, load_run

if TYPE_CHECKING:
    from aelab.apps.explorer.space import LatentSpace

__all__ = ["LatentSpace", "explore", "open_spaces"]


def __getattr__(name: str) -> Any:  # LatentSpace on first use: `import aelab` stays light
    if name == "LatentSpace":
        from aelab.apps.explorer.space import LatentSpace

        return LatentSpace
    raise AttributeError(name)


def open_spaces(
    path: str | os.PathLike,
    *,
    data_home: str | os.PathLike | None = None,
    device: str = "cpu",
    legacy: bool = False,
) -> dict[str, LatentSpace]:
    """The latent space of every trained model in ``path`` (a run, or each model of an
    ``aelab run`` workshop), over the training and held-out images the run records, with the
    workshop's groups of images (``aelab run --groups``) where it has them."""
    from aelab.apps.explorer.space import LatentSpace

    opened = open_runs(path, device=device, data=True, data_home=data_home, legacy=legacy)
    return {
        name: LatentSpace(run, opened.split, name=name, image_groups=opened.image_groups)
        for name, run in opened.runs.items()
    }


def explore(run: Any, *, split: Any = None, data_home: str | os.PathLike | None = None) -> Any:
    """An ipywidgets UI with a slider per code unit (or per principal component of the codes)
    and the live decode of ``run``: a :class:`aelab.Run`, or the path of a run directory.

    ``split`` (an :class:`aelab.data.Split`) saves rebuilding the run's data when it is at hand.
    Needs ``pip install aelab[notebook]``.
    """
    from aelab.apps.explorer.space import LatentSpace
    from aelab.apps.explorer.widget import Explorer

    if not isinstance(run, Run):
        run = load_run(run)
    if split is None:
        split = run.data(None if data_home is None else str(data_home), carve=False)
    return Explorer(LatentSpace(run, split)).widget
