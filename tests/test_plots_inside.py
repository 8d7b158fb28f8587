"""The looks-inside pictures (:mod:`aelab.plots.inside`) drawn from arrays."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from aelab import plots
from aelab.plots import inside


def test_a_morph_grid_is_one_picture_a_row_with_names_as_written():
    rng = np.random.default_rng(1)
    images = rng.random((3, 5, 1, 6, 6))
    names = ["$5 price", "b", "a name longer than eighteen characters"]
    fig = inside.morph_grid(images, names, [f"t{t}" for t in range(5)], title="morphs")
    assert len(fig.axes) == 3  # a row is one image, not five axes
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["$5 price", "b", "a name longer tha…"]
    assert not any(ax.yaxis.label.get_parse_math() for ax in fig.axes)
    shown = fig.axes[1].get_images()[0].get_array()  # row 1, tile 2: the image's own pixels
    side, gap = 6, 1
    tile = np.asarray(shown[:, 2 * (side + gap) : 2 * (side + gap) + side, 0])
    np.testing.assert_allclose(tile, images[1, 2, 0], atol=1 / 255 + 1e-6)  # grey colour map
    with pytest.raises(ValueError, match=r"expected \(3, 4, C, H, W\)"):
        inside.morph_grid(images, names, ["a"] * 4, title=None)
    plots.png_bytes(fig)


def test_neighbours_frame_each_neighbour_by_its_label_in_one_picture_a_row():
    rng = np.random.default_rng(2)
    hits = [True, False, True, True]
    fig = inside.neighbours(rng.random((1, 8, 8)), rng.random((4, 1, 8, 8)),
                            rng.random((4, 1, 8, 8)), title="near", code_hits=hits,
                            pixel_hits=[False] * 4)  # fmt: skip
    assert len(fig.axes) == 3  # the query and a picture per row
    frames = [
        [p.get_edgecolor() for p in ax.patches if isinstance(p, Rectangle)] for ax in fig.axes[1:]
    ]
    green = (0x1B / 255, 0x7F / 255, 0x3B / 255, 1.0)
    red = (0xB3 / 255, 0x26 / 255, 0x1E / 255, 1.0)
    assert [tuple(c) for c in frames[0]] == [green if h else red for h in hits]
    assert [tuple(c) for c in frames[1]] == [red] * 4
    plots.png_bytes(fig)
