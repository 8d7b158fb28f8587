"""Metrics against hand computations on tiny arrays."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from aelab.analysis.metrics import (
    PSNR_CAP_DB,
    dead_units,
    knn_accuracy,
    max_activation,
    mse,
    pca_baseline,
    psnr,
    reconstruction_scores,
    ssim,
)
from aelab.analysis.metrics.reconstruction import _ssim_win_size


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


# --- mse / psnr / ssim --------------------------------------------------------------------------


def test_mse_by_hand():
    x = np.array([[[[0.0, 1.0], [1.0, 0.0]]]], dtype=np.float32)
    x_hat = np.array([[[[0.0, 0.5], [1.0, 1.0]]]], dtype=np.float32)
    # squared differences 0, 0.25, 0, 1 over 4 pixels
    assert mse(x, x_hat) == pytest.approx(1.25 / 4)
    assert mse(x, x) == 0.0


def test_mse_shape_mismatch():
    with pytest.raises(ValueError, match=r"x_hat has shape \(1, 1, 2, 3\).*\(1, 1, 2, 2\)"):
        mse(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 3)))


def test_psnr_one_image_is_10_log10_of_inverse_mse():
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    x_hat = np.full_like(x, 0.1)  # mse 0.01 -> 20 dB
    assert psnr(x, x_hat) == pytest.approx(10 * np.log10(1 / mse(x, x_hat)), abs=1e-4)
    assert psnr(x, x_hat) == pytest.approx(20.0, abs=1e-4)
    assert psnr(x * 255, x_hat * 255, data_range=255) == pytest.approx(20.0, abs=1e-4)


def test_psnr_is_mean_of_per_image_values_with_a_cap_for_exact_images():
    x = np.zeros((2, 1, 4, 4), dtype=np.float32)
    x_hat = x.copy()
    x_hat[1] = 0.1  # image 0 exact (capped), image 1 at 20 dB
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero warning either
        assert psnr(x, x) == PSNR_CAP_DB
        assert psnr(x, x_hat) == pytest.approx((PSNR_CAP_DB + 20.0) / 2, abs=1e-4)


def test_psnr_is_skimages_per_image_psnr_averaged():
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(3)
    x, x_hat = rng.random((7, 3, 9, 5)), rng.random((7, 3, 9, 5))
    per_image = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(x, x_hat)]
    assert psnr(x, x_hat) == pytest.approx(np.mean(per_image), rel=1e-12)


def test_psnr_rejects_bad_data_range_and_non_images():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match=r"x must be images of shape \(N, C, H, W\)"):
        psnr(np.zeros((4, 4)), np.zeros((4, 4)))


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (2, 1, 28, 28), (2, 3, 16, 16), (2, 1, 5, 9)])
def test_ssim_identical_is_one_and_negation_is_low(shape):
    x = _rand(*shape)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 1.0 - x) < 0.5


def test_ssim_window_fits_small_images():
    assert _ssim_win_size(64, 64) == 7
    assert _ssim_win_size(8, 8) == 7
    assert _ssim_win_size(6, 10) == 5
    assert _ssim_win_size(4, 4) == 3
    with pytest.raises(ValueError, match="at least 3x3"):
        ssim(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)))


def test_reconstruction_scores():
    x = _rand(4, 1, 8, 8)
    x_hat = np.clip(x + 0.05, 0, 1)
    scores = reconstruction_scores(x, x_hat)
    assert set(scores) == {"mse", "psnr", "ssim"}
    assert scores["mse"] == mse(x, x_hat)
    assert scores["psnr"] == psnr(x, x_hat)
    assert scores["ssim"] == ssim(x, x_hat)


# --- knn ----------------------------------------------------------------------------------------


def test_knn_with_reference_set():
    reference = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=float)
    reference_labels = np.array([0, 0, 1, 1])
    codes = np.array([[0.2, 0.3], [9, 9], [1, 0]], dtype=float)
    labels = np.array([0, 1, 1])  # the last one sits among the zeros: wrong
    acc = knn_accuracy(codes, labels, reference=reference, reference_labels=reference_labels)
    assert acc == pytest.approx(2 / 3)


def test_knn_vote_over_k_neighbours():
    reference = np.array([[0, 0], [0, 1], [1, 0.5]], dtype=float)
    reference_labels = np.array([0, 0, 1])
    query = np.array([[0.4, 0.5]])  # distances 0.64, 0.64, 0.6: nearest is the lone 1
    kwargs = {"reference": reference, "reference_labels": reference_labels}
    assert knn_accuracy(query, [0], k=1, **kwargs) == 0.0
    assert knn_accuracy(query, [0], k=3, **kwargs) == 1.0


def test_knn_leave_one_out_never_uses_the_point_itself():
    codes = np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.1], [20, 20]], dtype=float)
    labels = np.array(["a", "a", "b", "b", "c"])  # the lone "c" can only be voted "b"
    assert knn_accuracy(codes, labels) == pytest.approx(4 / 5)
    # exact duplicates: still a neighbour other than itself
    dup = np.array([[0, 0], [0, 0], [9, 9], [9, 9]], dtype=float)
    assert knn_accuracy(dup, [1, 2, 1, 1]) == pytest.approx(2 / 4)


def test_knn_groups_exclude_mirror_twins():
    photos = np.array([[0, 0], [0, 1], [10, 0], [10, 1], [4, 0]], dtype=float)
    people = np.array([0, 0, 1, 1, 2])  # person 2 has one photo only
    codes = np.concatenate([photos, photos + np.array([0.01, 0])])  # mirror images, very close
    labels = np.concatenate([people, people])
    groups = np.concatenate([np.arange(5), np.arange(5)])  # a photo and its mirror
    assert knn_accuracy(codes, labels) == 1.0  # each mirror votes for its twin
    # Without the twin, person 2's nearest other photo belongs to person 0.
    assert knn_accuracy(codes, labels, groups=groups) == pytest.approx(8 / 10)


def test_knn_errors():
    codes = np.zeros((4, 2))
    with pytest.raises(ValueError, match="k=4"):
        knn_accuracy(codes, [0, 0, 1, 1], k=4)
    with pytest.raises(ValueError, match=r"k=3.*largest group of 2"):
        knn_accuracy(codes, [0, 0, 1, 1], groups=[0, 0, 1, 1], k=3)
    with pytest.raises(ValueError, match="reference_labels"):
        knn_accuracy(codes, [0, 0, 1, 1], reference=codes)
    with pytest.raises(ValueError, match="groups"):
        knn_accuracy(codes, [0] * 4, reference=codes, reference_labels=[0] * 4, groups=[0] * 4)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        knn_accuracy(codes, [0, 1])
    with pytest.raises(ValueError, match=r"codes must have shape \(N, latent_dim\)"):
        knn_accuracy(np.zeros(4), [0, 0, 1, 1])


# --- PCA baseline -------------------------------------------------------------------------------


def test_pca_baseline_with_all_components_is_exact():
    x_train, x_test = _rand(20, 1, 2, 2), _rand(5, 1, 2, 2, seed=1)
    base = pca_baseline(x_train, x_test, n_components=4)
    assert base.codes_train.shape == (20, 4)
    assert base.codes_test.shape == (5, 4)
    assert base.x_test_hat.shape == x_test.shape
    assert base.x_test_hat.dtype == np.float32
    np.testing.assert_allclose(base.x_test_hat, x_test, atol=1e-5)
    assert base.pca.n_components_ == 4


def test_pca_baseline_clips_and_limits_components():
    x_train, x_test = _rand(3, 1, 4, 4), _rand(6, 1, 4, 4, seed=1)
    base = pca_baseline(x_train, x_test, n_components=1)
    assert base.x_test_hat.min() >= 0.0
    assert base.x_test_hat.max() <= 1.0
    with pytest.raises(ValueError, match=r"n_components=4 .*min\(n_train, n_features\) = 3"):
        pca_baseline(x_train, x_test, n_components=4)
    with pytest.raises(ValueError, match="per-image shape"):
        pca_baseline(x_train, _rand(2, 1, 4, 5), n_components=1)


# --- units --------------------------------------------------------------------------------------


def test_dead_units_and_max_activation():
    codes = np.maximum(np.random.default_rng(0).normal(size=(50, 5)), 0)
    codes[:, 1] = 0.0  # a ReLU unit that never fires
    codes[:, 2] = 0.7  # stuck at a constant
    codes[:, 4] = 0.3 + 1e-8 * np.arange(50) / 50  # varies below tol
    np.testing.assert_array_equal(dead_units(codes), [False, True, True, False, True])
    assert dead_units(codes, tol=0.0).tolist() == [False, True, True, False, False]
    np.testing.assert_array_equal(max_activation(codes), codes.max(axis=0))
