"""The explorer in Jupyter: ipywidgets sliders over a model's code and its live decode.

The notebook wished for this ("one could use ipywidgets and sliders, but Colab does not support
them"). :class:`Explorer` builds the same sliders as the page (one per code unit up to 32, else one
per principal component of the training codes), a picker of held-out images to start from, and
the notebook's two ways to draw random codes; the decode runs in the kernel at every move.
Needs ``pip install aelab[notebook]``.
"""

from __future__ import annotations

import numpy as np

from aelab.apps.explorer.space import LatentSpace, png, to_uint8

DISPLAY_WIDTH = 192  # pixels on screen for the decoded image, whatever its size


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        raise ImportError(
            "the Jupyter explorer needs ipywidgets: pip install 'aelab[notebook]'"
        ) from None
    return ipywidgets


class Explorer:
    """Sliders over ``space``'s code and the decoded image; ``.widget`` is what to display."""

    def __init__(self, space: LatentSpace, *, components: int | None = None):
        w = _ipywidgets()
        self.space = space
        self.meta = space.describe()
        self.seed = 0
        self._quiet = False
        self.sliders = []
        for i, s in enumerate(self.meta["sliders"]):
            slider = w.FloatSlider(
                value=s["value"], min=s["low"], max=s["high"], step=(s["high"] - s["low"]) / 200,
                description=s["label"] + (" (dead)" if s["dead"] else ""),
                readout_format=".3f", continuous_update=True,
                style={"description_width": "initial"},
            )  # fmt: skip
            slider.observe(lambda change, i=i: self._moved(i, change["new"]), names="value")
            self.sliders.append(slider)
        self.image = w.Image(format="png", width=DISPLAY_WIDTH)
        self.original = w.Image(format="png", width=DISPLAY_WIDTH)
        n = len(self.sliders)
        self.shown = w.BoundedIntText(
            value=components or self.meta["default_components"], min=1, max=n,
            description="components", layout={"display": "" if self.pca else "none"},
        )  # fmt: skip
        self.shown.observe(lambda _: self._show_sliders(), names="value")
        self.heldout = w.BoundedIntText(
            value=0, min=0, max=max(0, self.meta["n_heldout"] - 1), description="held-out",
            layout={"display": "" if self.meta["n_heldout"] else "none"},
        )  # fmt: skip
        self.heldout.observe(lambda change: self.start_from(change["new"]), names="value")
        buttons = []
        for text, approach in (("Random (unit by unit)", "units"), ("Random (PCA)", "pca")):
            b = w.Button(description=text)
            b.on_click(lambda _, a=approach: self.random(a))
            buttons.append(b)
        mean = w.Button(description="Mean code")
        mean.on_click(lambda _: self.set_code(self.meta["mean_code"]))
        self.widget = w.VBox(
            [
                w.HBox(
                    [
                        w.VBox([self.original, w.Label("original")]),
                        w.VBox([self.image, w.Label("live decode")]),
                    ]
                ),
                w.HBox([*buttons, mean]),
                w.HBox([self.heldout, self.shown]),
                w.VBox(self.sliders, layout={"max_height": "28em", "overflow": "auto"}),
            ]
        )
        self._show_sliders()
        if self.meta["n_heldout"]:
            self.start_from(0)
        else:
            self.set_code(self.meta["mean_code"])

    @property
    def pca(self) -> bool:
        return self.meta["mode"] == "pca"

    def _show_sliders(self) -> None:
        for k, slider in enumerate(self.sliders):
            slider.layout.display = "none" if self.pca and k >= self.shown.value else ""

    def _coords(self, code: np.ndarray) -> np.ndarray:
        return self.space.pca.transform(code[None])[0]

    def set_code(self, code) -> None:
        """Move the sliders to ``code`` (a ``latent_dim`` vector) and decode it."""
        self.code = self.space.check_codes(code)[0].astype(np.float64)
        if self.pca:  # moves start from here, along each slider's component
            self.base = self.code.copy()
            self.base_coords = self._coords(self.code)
            self.coords = self.base_coords.copy()
        values = self.coords if self.pca else self.code
        self._quiet = True
        try:
            for slider, v in zip(self.sliders, values):
                slider.value = float(np.clip(v, slider.min, slider.max))
        finally:
            self._quiet = False
        self._decode()

    def _moved(self, i: int, value: float) -> None:
        if self._quiet:
            return
        if self.pca:
            self.coords[i] = value
            delta = (self.coords - self.base_coords)[: self.shown.value]
            self.code = self.base + delta @ self.space.pca.components_[: len(delta)]
        else:
            self.code[i] = value
        self._decode()

    def _decode(self) -> None:
        self.image.value = png(self.space.decode(self.space.check_codes(self.code))[0])

    def start_from(self, k: int) -> None:
        """Start from held-out image ``k``: show it and move the sliders to its code."""
        x = self.space.heldout.images[k]
        self.original.value = png(to_uint8(x[None])[0])
        self.set_code(self.space.encode(x[None])[0])

    def random(self, approach: str) -> None:
        """A random code drawn as the notebook did (``"units"`` or ``"pca"``)."""
        self.seed += 1
        self.set_code(self.space.random_code(approach, self.seed))
