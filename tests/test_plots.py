"""Every figure from random arrays (no model, no torch): axes, images, bars, PNG output, errors."""

from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from skimage.io import imread

from aelab import plots
from aelab.analysis.generate import manifold_grid


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def _n_images(fig):
    return sum(len(ax.images) for ax in fig.axes)


def _row(fig, i):
    """Row ``i`` of an image grid: its RGBA mosaic, the cell side and the gap, in pixels."""
    from aelab.plots.grid import GAP

    image = np.asarray(fig.axes[i].images[0].get_array())
    side = image.shape[0]
    return image, side, max(1, round(GAP * side))


def _tile(fig, i, j):
    """Cell ``j`` of row ``i`` of an image grid, RGBA (a square of the row's side)."""
    image, side, gap = _row(fig, i)
    return image[:, j * (side + gap) : j * (side + gap) + side]


def _n_tiles(fig):
    """Tiles drawn in an image grid: cells across each row's mosaic."""
    total = 0
    for i in range(len(fig.axes)):
        image, side, gap = _row(fig, i)
        total += (image.shape[1] + gap) // (side + gap)
    return total


GREY = 1 / 255 + 1e-6  # matplotlib's grey colour map has 256 levels


# --- image_grid and save ------------------------------------------------------------------------


def test_image_grid_grey_rows_of_different_lengths():
    fig = plots.image_grid(
        [_rand(4, 1, 8, 8), _rand(3, 1, 8, 8, seed=1)],
        row_titles=["a", "b"],
        col_titles=["1", "2", "3", "4"],
        title="grid",
    )
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 and _n_images(fig) == 2  # one image a row
    assert _n_tiles(fig) == 7
    image, side, gap = _row(fig, 0)
    assert image.shape == (8, 4 * 8 + 3 * gap, 4) and side == 8
    rows = [_rand(4, 1, 8, 8), _rand(3, 1, 8, 8, seed=1)]
    for i, row in enumerate(rows):  # grey on (0, 1): r = g = b = the pixel
        for j, tile in enumerate(row):
            cell, grey = _tile(fig, i, j), np.repeat(tile[0][..., None], 3, -1)
            np.testing.assert_allclose(cell[..., :3], grey, atol=GREY)
            assert (cell[..., 3] == 1).all()
    assert (image[:, 8 : 8 + gap, 3] == 0).all()  # the gap is transparent
    # the shorter row spans as many cells as the longer: its columns line up
    assert fig.axes[1].get_xlim() == fig.axes[0].get_xlim()
    assert fig.axes[0].get_ylabel() == "a" and fig.axes[1].get_ylabel() == "b"
    assert [t.get_text() for t in fig.axes[0].texts] == ["1", "2", "3", "4"]
    assert fig.get_suptitle() == "grid"


def test_image_grid_colour_and_three_dimensional_rows():
    colour = _rand(3, 3, 8, 10)
    fig = plots.image_grid([colour, _rand(2, 5, 5)])
    assert _n_tiles(fig) == 5
    cell = _tile(fig, 0, 0)
    assert cell.shape == (10, 10, 4)  # an 8x10 tile centred in a 10x10 cell
    np.testing.assert_allclose(cell[1:9, :, :3], colour[0].transpose(1, 2, 0), atol=1e-6)
    assert (cell[[0, 9], :, 3] == 0).all() and (cell[1:9, :, 3] == 1).all()
    np.testing.assert_allclose(_tile(fig, 1, 1)[..., 0], _rand(2, 5, 5)[1], atol=GREY)


def test_image_grid_value_ranges():
    from matplotlib import colormaps

    rows = [_rand(2, 1, 4, 4) * 5 - 2, _rand(2, 1, 4, 4)]
    fig = plots.image_grid(rows, value_range=None)
    tile = rows[0][1, 0]  # on its own range: its minimum black, its maximum white
    own = (tile - tile.min()) / (tile.max() - tile.min())
    np.testing.assert_allclose(_tile(fig, 0, 1)[..., 0], own, atol=GREY)
    fig = plots.image_grid(rows, value_range=[None, (0, 1)], cmap=["viridis", "gray"])
    first = rows[0][0, 0]
    darkest = np.unravel_index(first.argmin(), first.shape)
    np.testing.assert_allclose(_tile(fig, 0, 0)[darkest], colormaps["viridis"](0.0), atol=1e-6)
    np.testing.assert_allclose(_tile(fig, 1, 0)[..., 0], rows[1][0, 0], atol=GREY)
    fig = plots.image_grid([np.full((1, 1, 3, 3), 0.5)], value_range=None)  # constant: bottom
    np.testing.assert_allclose(_tile(fig, 0, 0)[..., :3], 0.0)


@pytest.mark.parametrize(
    ("rows", "kwargs", "match"),
    [
        ([np.zeros((8, 8))], {}, r"rows\[0\] must be images of shape \(n, C, H, W\).*\(8, 8\)"),
        ([np.zeros((2, 2, 8, 8))], {}, r"C 1 or 3.*\(2, 2, 8, 8\)"),
        (np.zeros((2, 1, 8, 8)), {}, r"rows must be a non-empty list.*shape \(2, 1, 8, 8\)"),
        ([], {}, "rows must be a non-empty list"),
        ([np.zeros((0, 1, 8, 8))], {}, "must not be empty"),
        ([np.full((1, 1, 2, 2), np.nan)], {}, "NaN"),
        ([np.zeros((2, 1, 4, 4))], {"row_titles": ["a", "b"]}, "row_titles must be a list of 1"),
        ([np.zeros((2, 1, 4, 4))], {"value_range": (1, 0)}, r"value_range=\(1, 0\)"),
        ([np.zeros((2, 1, 4, 4))], {"value_range": [None, None]}, "value_range="),
        ([np.zeros((2, 1, 4, 4))], {"tile_size": 0}, "tile_size"),
    ],
)
def test_image_grid_rejects_bad_input(rows, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.image_grid(rows, **kwargs)


def test_save_writes_a_png_of_the_figure_size(tmp_path):
    fig = plots.image_grid([_rand(3, 1, 8, 8), _rand(3, 3, 8, 8)], title="saved")
    path = plots.save(fig, tmp_path / "sub" / "grid.png", dpi=50)
    image = imread(path)
    width, height = fig.get_size_inches() * 50
    assert image.shape[:2] == (round(height), round(width))
    assert image.shape[2] in (3, 4)
    assert image.std() > 0  # something was drawn


def test_figures_leave_global_matplotlib_state_alone():
    before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    plots.image_grid([_rand(2, 1, 4, 4)])
    plots.latent_scatter(_rand(10, 2), np.arange(10))
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.get_backend() == backend


# --- image figures ------------------------------------------------------------------------------


def test_weight_tiles_each_on_its_own_range():
    w_in = np.random.default_rng(0).normal(size=(20, 1, 8, 8))
    w_out = np.random.default_rng(1).normal(size=(6, 3, 8, 8))
    fig = plots.weight_tiles(w_in, w_out, n=8)
    assert _n_tiles(fig) == 8 + 6
    tile = w_in[2, 0]
    own = (tile - tile.min()) / (tile.max() - tile.min())
    np.testing.assert_allclose(_tile(fig, 0, 2)[..., 0], own, atol=GREY)
    rgb = _tile(fig, 1, 0)[..., :3]  # colour weights stretched to [0, 1]
    assert rgb.min() == pytest.approx(0) and rgb.max() == pytest.approx(1)
    with pytest.raises(ValueError, match=r"w_in must be images.*\(20, 64\)"):
        plots.weight_tiles(w_in.reshape(20, 64), w_out)


def test_codes_and_reconstructions():
    x, codes, x_hat = _rand(10, 1, 8, 8), _rand(10, 20), _rand(10, 1, 8, 8, seed=1)
    fig = plots.codes_and_reconstructions(x, codes * 3, x_hat, n=5)
    assert _n_tiles(fig) == 15
    code = _tile(fig, 1, 0)  # a 4x5 code centred in a 5x5 cell, on its own range
    assert code.shape == (5, 5, 4) and (code[:4, :, 3] == 1).all() and (code[4, :, 3] == 0).all()
    brightest = np.unravel_index(codes[0].argmax(), (4, 5))
    assert code[brightest][0] == pytest.approx(1.0)
    np.testing.assert_allclose(_tile(fig, 2, 4)[..., 0], x_hat[4, 0], atol=GREY)
    assert [ax.get_ylabel() for ax in fig.axes] == ["original", "code", "reconstruction"]
    assert _n_tiles(plots.codes_and_reconstructions(x, None, x_hat, n=3)) == 6
    with pytest.raises(ValueError, match="same number of items"):
        plots.codes_and_reconstructions(x, codes[:4], x_hat)
    with pytest.raises(ValueError, match=r"codes must have shape \(N, latent_dim\)"):
        plots.codes_and_reconstructions(x, codes.reshape(10, 4, 5), x_hat)


def test_denoising_panel():
    imgs = [_rand(8, 1, 8, 8, seed=s) for s in range(3)]
    fig = plots.denoising_panel(imgs[0], _rand(8, 32), imgs[1], imgs[2], 18.34, 24.06, n=5)
    assert _n_tiles(fig) == 20
    assert "PSNR 18.3 dB -> 24.1 dB" in fig.get_suptitle()
    assert _tile(fig, 1, 0).shape == (8, 8, 4)  # the codes, 4x8 in an 8x8 cell


def test_interpolation():
    rows = [_rand(8, 1, 8, 8), _rand(8, 3, 8, 8, seed=1)]
    fig = plots.interpolation(rows, ["model a", "model b"])
    assert _n_tiles(fig) == 16
    titles = [t.get_text() for t in fig.axes[0].texts]
    assert titles[0] == "t=0" and titles[3] == "0.43" and titles[7] == "t=1"
    with pytest.raises(ValueError, match="row_titles"):
        plots.interpolation(rows, ["one title"])


def test_generated_wraps_rows():
    fig = plots.generated(_rand(23, 1, 8, 8), "faces", ncols=10)
    assert _n_tiles(fig) == 23
    assert len(fig.axes) == 3
    assert fig.get_suptitle() == "faces"


@pytest.mark.parametrize("channels", [1, 3])
def test_manifold_stitches_one_image_with_coordinate_ticks(channels):
    grid, xs, ys = manifold_grid(5)
    images = _rand(len(grid), channels, 6, 7)
    fig = plots.manifold(images, xs, ys)
    assert len(fig.axes) == 1
    stitched = fig.axes[0].images[0].get_array()
    assert stitched.shape[:2] == (30, 35)
    # tile (row 1, column 2) sits at rows 6..11, columns 14..20
    tile = images[1 * 5 + 2].transpose(1, 2, 0).squeeze(-1 if channels == 1 else ())
    np.testing.assert_allclose(np.asarray(stitched)[6:12, 14:21], tile, atol=1e-6)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-4.0", "-2.0", "0.0", "2.0", "4.0"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4.0", "2.0", "0.0", "-2.0", "-4.0"]
    with pytest.raises(ValueError, match="len\\(ys\\) \\* len\\(xs\\) = 25"):
        plots.manifold(images[:24], xs, ys)


# --- charts -------------------------------------------------------------------------------------


def _history(n, heldout=True):
    return [
        {"epoch": e, "loss": 1 / e, "heldout_loss": 1.2 / e if heldout else None, "seconds": 0.1}
        for e in range(1, n + 1)
    ]


def test_learning_curves():
    fig = plots.learning_curves({"dense": _history(5), "conv": _history(3, heldout=False)})
    assert len(fig.axes) == 2
    dense, conv = fig.axes
    assert [line.get_linestyle() for line in dense.lines] == ["-", "--"]
    assert len(conv.lines) == 1
    assert dense.get_title() == "dense"
    fig = plots.learning_curves({str(i): _history(2) for i in range(4)}, log_y=True)
    assert len([ax for ax in fig.axes if ax.lines]) == 4
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="histories must be a non-empty dict"):
        plots.learning_curves({})
    with pytest.raises(ValueError, match="'heldout_loss'"):
        plots.learning_curves({"m": [{"epoch": 1, "loss": 1.0}]})


def test_activation_bars():
    max_act = _rand(20)
    dead = np.zeros(20, dtype=bool)
    dead[[1, 5, 7]] = True
    fig = plots.activation_bars(max_act, dead)
    (ax,) = fig.axes
    assert len(ax.patches) == 20
    assert "3 of 20 units dead" in ax.get_title()
    colours = {tuple(p.get_facecolor()) for p in ax.patches}
    assert len(colours) == 2
    assert ax.patches[1].get_facecolor() != ax.patches[0].get_facecolor()
    with pytest.raises(ValueError, match="dead must be a bool array of shape"):
        plots.activation_bars(max_act, dead[:5])


@pytest.mark.parametrize("n_classes", [10, 40])
def test_embedding_panels(n_classes):
    labels = np.arange(80) % n_classes
    panels = [
        (name, _rand(80, 2, seed=i))
        for i, name in enumerate(["PCA(X)", "PCA(codes)", "t-SNE(X)", "t-SNE(codes)"])
    ]
    fig = plots.embedding_panels(panels, labels)
    scatter_axes = [ax for ax in fig.axes if ax.collections and ax.get_title()]
    assert [ax.get_title() for ax in scatter_axes] == [name for name, _ in panels]
    assert len(fig.axes) == 5  # four panels and one colour bar
    assert len(plots.embedding_panels(panels, None).axes) == 4
    with pytest.raises(ValueError, match=r"panels\[1\] \(bad\) must have shape \(N, 2\)"):
        plots.embedding_panels([panels[0], ("bad", _rand(80, 3))], labels)
    with pytest.raises(ValueError, match=r"labels must have shape \(80,\)"):
        plots.embedding_panels(panels, labels[:10])


def test_latent_scatter():
    fig = plots.latent_scatter(np.random.default_rng(0).normal(size=(100, 2)), np.arange(100) % 10)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z[0]", "z[1]")
    assert len(ax.collections[0].get_offsets()) == 100
    assert len(fig.axes) == 2  # the scatter and its colour bar
    with pytest.raises(ValueError, match=r"must have shape \(N, 2\)"):
        plots.latent_scatter(np.zeros((100, 3)), None)


# --- figures drawn for the size they are shown at -----------------------------------------------


def _drawn(fig):
    """Draw ``fig`` (tick labels exist once drawn) and return its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _texts(fig):
    """Every visible text of a drawn figure: (text, font size, bounding box in pixels)."""
    from matplotlib.text import Text

    renderer = _drawn(fig)
    return [(t.get_text(), t.get_fontsize(), t.get_window_extent(renderer))
            for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]  # fmt: skip


def _every_figure():
    curve = {"levels": {"gaussian": [0.0, 0.1, 0.5]}, "input": {"gaussian": [100.0, 20.0, 8.0]},
             "methods": {"a": {"gaussian": [14.0, 13.0, 11.0]},
                         "pca-4": {"gaussian": [18.0, 16.0, 9.0]}}}  # fmt: skip
    return [
        plots.image_grid([_rand(3, 1, 8, 8)], row_titles=["reconstruction"], title="t"),
        plots.codes_and_reconstructions(_rand(5, 1, 28, 28), _rand(5, 20), _rand(5, 1, 28, 28)),
        plots.activation_bars(_rand(2), np.array([False, True]), "vae: maximum activation"),
        plots.learning_curves({"a": _history(3), "b": _history(4)}),
        plots.embedding_panels([("p", _rand(30, 2)), ("q", _rand(30, 2))], np.arange(30) % 3),
        plots.pca_ratio({"conv": (32, 17.6), "denoising": (32, 17.0), "shallow": (100, 1.2)}),
        plots.robustness(curve, pca_of={"a": "pca-4"}),
        plots.manifold(_rand(225, 1, 28, 28), *manifold_grid(15)[1:]),
    ]


def test_every_text_of_every_figure_has_one_size_and_stays_inside_it():
    """One font size across figures (it was 7 px manifold ticks beside giant bar-chart titles),
    and no text cut by the figure's edge (the VAE's activation title was)."""
    from aelab.plots.style import FONT_SIZE

    for fig in _every_figure():
        for text, size, _ in _texts(fig):
            assert size == FONT_SIZE, (text, size)
        drawn = fig.get_tightbbox(_drawn(fig))  # inches: everything drawn, ticks in view only
        width, height = fig.get_size_inches()
        assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01, drawn
        assert drawn.x1 <= width + 0.01 and drawn.y1 <= height + 0.01, drawn


def test_image_tiles_are_sized_by_their_pixels_not_the_page():
    """Five 28x28 reconstructions stood 600 px tall on the page: a tile is twice its pixels,
    64 to 112 CSS pixels, and a grid fits a phone's screen when asked to."""
    from aelab.plots.style import PX_PER_INCH

    fig = plots.codes_and_reconstructions(_rand(5, 1, 28, 28), None, _rand(5, 1, 28, 28))
    tile = fig.axes[0].get_window_extent().height / fig.dpi * PX_PER_INCH
    assert 55 <= tile <= 64  # 64 less the layout's padding
    faces = plots.codes_and_reconstructions(_rand(5, 1, 64, 64), None, _rand(5, 1, 64, 64))
    assert faces.get_size_inches()[0] > 5.5
    narrow = plots.codes_and_reconstructions(
        _rand(5, 1, 64, 64), None, _rand(5, 1, 64, 64), max_width=3.5
    )
    assert narrow.get_size_inches()[0] <= 3.5 + 1e-9


def test_pca_ratio_labels_do_not_overlap_and_ticks_are_plain():
    """conv and denoising at the same code size printed over one another, "shallow" sat outside
    the axes, ticks read 2 × 10^0, and the shaded band stopped short of the axis."""
    points = {"conv": (32, 17.6), "denoising": (32, 17.0), "deep": (20, 3.6), "vae": (2, 1.09),
              "shallow": (100, 0.8)}  # fmt: skip
    fig = plots.pca_ratio(points)
    (ax,) = fig.axes
    renderer = _drawn(fig)
    labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    assert set(labels) == set(points)
    axes_box = ax.get_window_extent(renderer)
    for name, box in labels.items():
        assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1, name
        assert axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1, name
    for (a, box_a), (b, box_b) in itertools.combinations(labels.items(), 2):
        assert not box_a.overlaps(box_b), (a, b)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["2", "20", "32", "100"]
    assert all("10^" not in t.get_text() and "$" not in t.get_text()
               for t in ax.get_yticklabels())  # fmt: skip
    (band,) = [p for p in ax.patches if p.get_facecolor()[3] < 0.5]
    y = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1]
    assert min(y) <= ax.get_ylim()[0] * (1 + 1e-9)  # down to the axis


def test_robustness_scales_to_the_models_and_pairs_each_pca_with_its_model():
    """The clean input's capped 100 dB ran the axis to 100 and squashed the ten curves; PCA had
    colours of its own; the legend sat on one panel."""
    curve = {
        "levels": {"gaussian": [0.0, 0.1, 0.5], "mask": [0.0, 0.2, 0.5]},
        "input": {"gaussian": [100.0, 20.0, 8.0], "mask": [100.0, 14.0, 9.0]},
        "methods": {
            "conv": {"gaussian": [14.0, 13.0, 11.0], "mask": [14.0, 12.5, 10.0]},
            "pca-32": {"gaussian": [24.0, 19.0, 9.5], "mask": [24.0, 13.0, 9.0]},
            "deep": {"gaussian": [13.0, 12.0, 10.0], "mask": [13.0, 12.0, 10.0]},
            "pca-20": {"gaussian": [19.0, 17.0, 9.0], "mask": [19.0, 12.0, 9.0]},
            "pca-64": {"gaussian": [100.0, 20.0, 8.0], "mask": [100.0, 14.0, 9.0]},  # exact
        },
    }
    fig = plots.robustness(curve, pca_of={"conv": "pca-32", "deep": "pca-20"},
                           colors={"conv": "C3", "deep": "C5"})  # fmt: skip
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 2
    for ax in panels:
        assert ax.get_ylim()[1] < 30  # the models' range, not the cap
        by_label = {line.get_label(): line for line in ax.lines}
        assert by_label["conv"].get_color() == by_label["PCA, 32 components"].get_color() == "C3"
        assert by_label["deep"].get_color() == by_label["PCA, 20 components"].get_color() == "C5"
        assert by_label["PCA, 32 components"].get_linestyle() == "--"
        assert ax.get_legend() is None
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1


def test_manifold_labels_a_few_ticks_of_any_range():
    _, xs, ys = manifold_grid(15, codes=np.array([[-0.8, 0.0], [0.0, 4.5], [-0.4, 2.0]]),
                              quantiles=(0.0, 1.0))  # fmt: skip
    fig = plots.manifold(_rand(225, 1, 6, 6), xs, ys)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 5 and labels[0] == "-0.80" and labels[-1] == "0.00"
    assert len(set(labels)) == 5
