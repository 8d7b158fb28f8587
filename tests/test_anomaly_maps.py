"""Calibrated per-pixel maps, explanations and galleries as pure functions: each pixel's
conformal p-value against its own calibration errors, the rate it holds on exchangeable normal
maps (with and without Bonferroni's correction), the one fixed colour scale, the regions an
explanation names, the most normal and most unusual images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aelab.analysis import anomaly
from aelab.analysis.explain import excess_errors, explain, pixel_reference
from aelab.plots import anomaly_gallery, outlined, significance_rgb


def test_pixel_p_values_by_hand():
    # two pixels; calibration errors 1..4 at the first, 10, 20, 30, 40 at the second
    cal = anomaly.calibrate_pixels(np.array([[[4.0, 10.0]], [[1.0, 40.0]], [[3.0, 20.0]],
                                             [[2.0, 30.0]]]))  # fmt: skip  # (4, 1, 2)
    maps = np.array([[[5.0, 25.0]], [[2.0, 40.0]], [[0.0, 0.0]]])  # (3, 1, 2)
    # (1 + #{calibration >= error}) / 5
    want = np.array([[[1 / 5, 3 / 5]], [[4 / 5, 2 / 5]], [[1.0, 1.0]]])
    np.testing.assert_allclose(anomaly.pixel_p_values(cal, maps), want)
    # a pixel's p-value is the image-level p-value of that pixel's errors, as scores
    for j in range(2):
        image = anomaly.p_values(anomaly.calibrate(-cal[:, 0, j]), -maps[:, 0, j])
        np.testing.assert_allclose(anomaly.pixel_p_values(cal, maps)[:, 0, j], image)


def _normal_maps(rng, n, shape=(6, 5)):
    """Exchangeable per-pixel errors: each pixel its own skewed distribution, pixels
    correlated through a shared factor per image (as a badly reconstructed image is bad
    everywhere)."""
    scale = np.linspace(0.1, 3.0, math.prod(shape)).reshape(shape)
    shared = rng.gamma(2.0, size=(n, 1, 1))
    return scale * shared * rng.gamma(1.5, size=(n, *shape))


def test_each_pixels_rate_holds_on_new_normal_maps():
    """Over many calibration sets, the share of a new normal map's pixels flagged is the
    conformal rate floor(fpr (n + 1)) / (n + 1) <= fpr (exact for continuous errors)."""
    rng = np.random.default_rng(0)
    n, fpr, rates = 39, 0.05, []
    for _ in range(400):
        cal = anomaly.calibrate_pixels(_normal_maps(rng, n))
        p = anomaly.pixel_p_values(cal, _normal_maps(rng, 20))
        rates.append(np.mean(p <= anomaly.pixel_level(fpr, p[0].size)))
    bound = math.floor(fpr * (n + 1)) / (n + 1)  # 2 / 40
    assert bound <= fpr and abs(np.mean(rates) - bound) < 0.004, np.mean(rates)
    # a pixel flagged by a level below 1 / (n + 1): never
    cal = anomaly.calibrate_pixels(_normal_maps(rng, n))
    assert not (anomaly.pixel_p_values(cal, _normal_maps(rng, 50) * 100) <= 0.02).any()


def test_bonferroni_bounds_the_chance_of_any_flagged_pixel():
    rng = np.random.default_rng(1)
    shape, fpr = (3, 4), 0.1
    level = anomaly.pixel_level(fpr, 12, "bonferroni")  # 0.1 / 12
    n = 239  # floor(level * 240) = 2: the level is reachable
    anywhere, each = [], []
    for _ in range(300):
        cal = anomaly.calibrate_pixels(_normal_maps(rng, n, shape))
        flagged = anomaly.pixel_p_values(cal, _normal_maps(rng, 20, shape)) <= level
        anywhere.append(flagged.reshape(20, -1).any(axis=1).mean())
        each.append(flagged.mean())
    assert np.mean(anywhere) <= fpr + 0.01, np.mean(anywhere)
    assert abs(np.mean(each) - 2 / 240) < 0.002  # each pixel: floor(level (n + 1)) / (n + 1)


def test_one_fixed_scale_whose_middle_is_the_threshold():
    level = 0.05
    low, middle, top = anomaly.significance_scale(level)
    assert (low, top) == (0.0, 2 * middle) and middle == pytest.approx(-math.log10(level))
    assert anomaly.significance(level) == pytest.approx(middle)
    rgb = significance_rgb(np.array([low, middle, top, 10 * top]), level)
    assert rgb[1].min() > 220  # white at the threshold
    assert rgb[0, 2] > rgb[0, 0] and rgb[2, 0] > rgb[2, 2]  # blue below, red above
    assert (rgb[3] == rgb[2]).all()  # past the top: drawn as the top
    # a map's colours depend on its own values only: drawn alone or beside a far worse one
    rng = np.random.default_rng(2)
    normal, unusual = rng.uniform(0, 1, (8, 8)), rng.uniform(2, 5, (8, 8))
    alone = significance_rgb(normal[None], level)[0]
    together = significance_rgb(np.stack([normal, unusual]), level)[0]
    assert (alone == together).all()


def test_an_explanation_finds_a_planted_defect():
    rng = np.random.default_rng(3)
    normal = rng.gamma(2.0, 0.01, (40, 32, 32))  # calibration errors
    reference = pixel_reference(normal)
    image = rng.gamma(2.0, 0.01, (32, 32))
    image[10:15, 20:26] += 2.0  # a defect: 30 pixels far above the rest
    why = explain(excess_errors(image, reference))
    top, left, bottom, right = why.regions[0].box
    assert top <= 10 and left <= 20 and bottom >= 14 and right >= 25  # it holds the defect
    assert bottom - top < 12 and right - left < 12  # and not the whole image
    assert why.regions[0].share > 0.8 and why.share <= 1.0
    assert "rows" in why.text() and f"{why.share:.0%}" in why.text()
    # diffuse error: no small region holds it (one as large as the image, or small shares)
    diffuse = explain(excess_errors(rng.gamma(2.0, 0.02, (32, 32)), reference))
    assert all(r.area > 0.5 or r.share < 0.2 for r in diffuse.regions), diffuse
    # nothing above the normal images' median: nothing to explain
    nothing = explain(excess_errors(reference * 0.5, reference))
    assert nothing.regions == () and "no pixel" in nothing.text()
    with pytest.raises(ValueError, match="one image's map"):
        explain(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="finite and >= 0"):
        explain(np.full((3, 3), -1.0))


def test_extremes_are_the_most_normal_and_the_most_unusual():
    scores = np.array([-0.3, -0.1, -0.5, -0.1, -0.9])
    normal, unusual = anomaly.extremes(scores, 2)
    assert normal.tolist() == [1, 3] and unusual.tolist() == [4, 2]  # ties in index order
    normal, unusual = anomaly.extremes(scores, 10)
    assert sorted(normal.tolist()) == sorted(unusual.tolist()) == [0, 1, 2, 3, 4]


def test_bad_maps_and_corrections_are_one_line():
    with pytest.raises(ValueError, match=r"expected \(n, H, W\)"):
        anomaly.calibrate_pixels(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least one normal image"):
        anomaly.calibrate_pixels(np.zeros((0, 2, 2)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        anomaly.calibrate_pixels(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="map_correction='fdr' is not valid; allowed: 'none'"):
        anomaly.pixel_level(0.05, 10, "fdr")
    cal = anomaly.calibrate_pixels(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"calibration's pixels are \(N, 2, 2\)"):
        anomaly.pixel_p_values(cal, np.zeros((1, 3, 2)))


def test_the_gallery_figure_and_enlarged_maps():
    rng = np.random.default_rng(4)
    images = rng.uniform(0, 1, (4, 1, 8, 8))
    sig = rng.uniform(0, 3, (4, 8, 8))
    fig = anomaly_gallery(images, sig, 0.05, ["a", "b", "c", "d"], [[(1, 1, 2, 3)], [], [], []],
                          n_normal=2)  # fmt: skip
    assert len(fig.axes) == 9  # 2 rows of 4, and the colour bar
    with pytest.raises(ValueError, match="one entry per image"):
        anomaly_gallery(images, sig[:3], 0.05, ["a"] * 4, [[]] * 4, 2)
    big = outlined(significance_rgb(sig[0], 0.05), [(1, 1, 2, 3)], 4)
    assert big.shape == (32, 32, 3)
    assert (big[4, 4:16] == (0, 160, 0)).all()  # the box's top edge, enlarged


@pytest.mark.parametrize("cols", [None, 2])
def test_the_gallerys_labels_under_small_images_neither_overlap_nor_touch_the_bar(cols):
    """Under 8x8 digits a label ("100% in 3 boxes") is wider than its image: the columns widen
    to hold it, and the colour bar keeps clear of the last column's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rng = np.random.default_rng(0)
    shown = [(1, 100, 3), (1, 95, 2), (1, 88, 3), (0.0069, 71, 2), (0.0069, 77, 3), (0.021, 74, 2)]
    labels = [f"p={p}; {s}% in {b} boxes" for p, s, b in shown]
    fig = anomaly_gallery(rng.random((6, 1, 8, 8)), rng.random((6, 8, 8)) * 3, 0.05, labels,
                          [[(1, 1, 3, 3)]] * 6, 3, title=None, cols=cols)  # fmt: skip
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    *maps, bar = [ax for ax in fig.axes if ax.get_xlabel() or ax.get_label() == "<colorbar>"]
    boxes = [ax.xaxis.label.get_window_extent(renderer) for ax in maps]
    assert len(boxes) == 6
    for i, a in enumerate(boxes):
        assert 0 <= a.x0 and a.x1 <= bar.get_window_extent(renderer).x0
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
