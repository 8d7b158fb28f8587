"""Latent-space sampling against hand computations on tiny arrays: random and PCA codes,
interpolation, the manifold grid, codes drawn as images."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.analysis.generate import (
    code_image_shape,
    interpolate,
    manifold_grid,
    pca_codes,
    random_codes,
)


def test_random_codes_within_observed_range_and_reproducible():
    codes = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    samples = random_codes(codes, 2000, random_state=1)
    assert samples.shape == (2000, 6)
    assert samples.dtype == np.float32
    top = lo + 0.75 * (hi - lo)
    assert np.all(samples >= lo - 1e-6)
    assert np.all(samples <= top + 1e-6)
    # Beta(0.5, 0.5) piles up at both ends, so the samples reach both limits
    assert np.all(samples.max(axis=0) - samples.min(axis=0) > 0.95 * (top - lo))
    np.testing.assert_array_equal(samples, random_codes(codes, 2000, random_state=1))
    assert not np.array_equal(samples, random_codes(codes, 2000, random_state=2))
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(samples, random_codes(codes, 2000, random_state=rng))
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        random_codes(codes, 0)


def test_pca_codes_follow_the_component_variances():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 10)) @ rng.normal(size=(10, 10)) + 3.0
    samples, pca = pca_codes(codes, 20000, n_components=4, random_state=0)
    assert samples.shape == (20000, 10)
    assert pca.n_components_ == 4
    coords = pca.transform(samples)
    assert coords[:, 0].var(ddof=1) == pytest.approx(pca.explained_variance_[0], rel=0.05)
    assert coords[:, 3].var(ddof=1) == pytest.approx(pca.explained_variance_[3], rel=0.05)
    wide, _ = pca_codes(codes, 20000, n_components=4, scale=2.0, random_state=0)
    assert pca.transform(wide)[:, 0].var() == pytest.approx(4 * pca.explained_variance_[0], 0.05)
    again, _ = pca_codes(codes, 20000, n_components=4, random_state=0)
    np.testing.assert_array_equal(samples, again)


def test_pca_codes_caps_components():
    codes = np.random.default_rng(0).normal(size=(3, 8))
    samples, pca = pca_codes(codes, 5, n_components=16, random_state=0)
    assert pca.n_components_ == 3
    assert samples.shape == (5, 8)
    _, pca = pca_codes(codes[:, :2], 5, random_state=0)
    assert pca.n_components_ == 2


def test_interpolate_endpoints():
    a, b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -2.0])
    path = interpolate(a, b, steps=5)
    assert path.shape == (5, 3)
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    np.testing.assert_allclose(path[2], (a + b) / 2)
    assert interpolate(a[None], b[None]).shape == (8, 3)
    with pytest.raises(ValueError, match="z_b has shape"):
        interpolate(a, b[:2])
    with pytest.raises(ValueError, match="steps must be an int >= 2"):
        interpolate(a, b, steps=1)


def test_manifold_grid_corners_and_order():
    grid, xs, ys = manifold_grid(3, 1.0)
    np.testing.assert_allclose(xs, [-1, 0, 1])
    np.testing.assert_allclose(ys, [1, 0, -1])
    assert grid.shape == (9, 2)
    np.testing.assert_allclose(grid[0], [-1, 1])  # top left
    np.testing.assert_allclose(grid[2], [1, 1])  # top right
    np.testing.assert_allclose(grid[6], [-1, -1])  # bottom left
    np.testing.assert_allclose(grid[-1], [1, -1])  # bottom right
    np.testing.assert_allclose(grid[3:6], [[-1, 0], [0, 0], [1, 0]])  # rows are row-major
    grid, xs, ys = manifold_grid()
    assert grid.shape == (225, 2)
    assert xs[0] == -4.0 and ys[0] == 4.0


@pytest.mark.parametrize(
    ("latent_dim", "shape"),
    [(100, (10, 10)), (20, (4, 5)), (32, (4, 8)), (2, (1, 2)), (7, (1, 7)), (1, (1, 1)),
     (12, (3, 4)), (64, (8, 8))],
)  # fmt: skip
def test_code_image_shape(latent_dim, shape):
    assert code_image_shape(latent_dim) == shape


def test_code_image_shape_rejects_zero():
    with pytest.raises(ValueError, match="latent_dim must be an int >= 1, got 0"):
        code_image_shape(0)


def test_manifold_grid_spans_the_codes_observed_range():
    """A trained VAE's codes filled z0 in [-0.8, 0], z1 in [0, 4.5]: half the notebook's
    [-4, 4]^2 decoded to grey. Given codes, the grid spans their quantiles; [-4, 4] stays the
    option without them."""
    rng = np.random.default_rng(0)
    codes = np.stack([rng.uniform(-0.8, 0.0, 2000), rng.uniform(0.0, 4.5, 2000)], axis=1)
    grid, xs, ys = manifold_grid(15, codes=codes)
    lo, hi = np.quantile(codes, [0.01, 0.99], axis=0)
    np.testing.assert_allclose([xs[0], xs[-1]], [lo[0], hi[0]])
    np.testing.assert_allclose([ys[-1], ys[0]], [lo[1], hi[1]])  # rows descend
    assert grid.shape == (225, 2) and np.all(np.diff(xs) > 0) and np.all(np.diff(ys) < 0)
    _, xs, _ = manifold_grid(15, codes=codes, quantiles=(0.0, 1.0))
    assert xs[0] == pytest.approx(codes[:, 0].min()) and xs[-1] == pytest.approx(codes[:, 0].max())
    _, xs, _ = manifold_grid(15, 4.0)  # the notebook's square
    assert (xs[0], xs[-1]) == (-4.0, 4.0)
    constant = np.zeros((10, 2))  # a unit that never moves still gets a span
    _, xs, _ = manifold_grid(3, codes=constant)
    assert xs[0] < xs[-1]
    with pytest.raises(ValueError, match=r"limit=4\.0 and codes are not valid together"):
        manifold_grid(15, 4.0, codes=codes)
    with pytest.raises(ValueError, match=r"codes must have shape \(N, 2\)"):
        manifold_grid(15, codes=np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"quantiles=.* is not valid"):
        manifold_grid(15, codes=codes, quantiles=(0.9, 0.1))
