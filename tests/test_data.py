"""Data sets by name, arrays, stratified splits and image sizes, checked against independent
code."""

from __future__ import annotations

import re

import numpy as np
import pytest

from aelab.data import (
    DATASETS,
    DEFAULT_DATASET,
    ImageSet,
    default_split,
    load_array,
    load_dataset,
    load_digits,
    load_mnist,
    parse_image_size,
    split,
)

# -- stratified splits -------------------------------------------------------------------------


def _indexed(n=200, n_classes=4, labelled=True):
    """Image i holds the value i / n, so each row can be traced back."""
    images = np.broadcast_to(
        (np.arange(n) / n).astype(np.float32)[:, None, None, None], (n, 1, 3, 3)
    )
    labels = np.arange(n) % n_classes if labelled else None
    return ImageSet(np.ascontiguousarray(images), labels, "indexed")


def _rows(data):
    return np.rint(data.images[:, 0, 0, 0] * 200).astype(int)


def test_stratified_split_keeps_proportions_and_is_seeded():
    data = _indexed()
    train, held = split(data, holdout=0.2, seed=0)
    a, b = _rows(train), _rows(held)
    assert len(b) == 40 and not set(a) & set(b) and sorted([*a, *b]) == list(range(200))
    np.testing.assert_array_equal(np.bincount(held.labels), [10, 10, 10, 10])
    np.testing.assert_array_equal(train.labels, a % 4)  # labels travel with their images
    assert np.array_equal(_rows(split(data, holdout=0.2, seed=0)[1]), b)
    assert not np.array_equal(_rows(split(data, holdout=0.2, seed=1)[1]), b)
    assert default_split("mnist") == default_split("some/folder") == {"holdout": 0.1}


def test_split_edge_cases():
    data = _indexed()
    train, held = split(data, holdout=0)
    assert len(train) == 200 and len(held) == 0 and held.image_shape == (1, 3, 3)
    train, held = split(_indexed(labelled=False), holdout=0.1, seed=3)
    assert held.labels is None and len(held) == 20 and not set(_rows(train)) & set(_rows(held))
    lonely = ImageSet(data.images, np.r_[np.zeros(199, int), 1], "lonely")  # a class of one
    assert len(split(lonely, holdout=0.1)[1]) == 20
    for bad in (1, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"holdout={bad} is not valid; expected a fraction"):
            split(data, holdout=bad)


# -- arrays ------------------------------------------------------------------------------------


def test_arrays_uint8_float_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (5, 6, 7), dtype=np.uint8)
    np.save(tmp_path / "u8.npy", u8)
    data = load_dataset(tmp_path / "u8.npy")
    assert data.images.shape == (5, 1, 6, 7) and data.labels is None
    np.testing.assert_allclose(data.images[:, 0], u8 / 255.0, atol=1e-7)
    rgb = rng.random((4, 6, 7, 3))
    np.savez(tmp_path / "rgb.npz", x=rgb, y=np.array([3, 1, 3, 0], np.int32))
    data = load_array(tmp_path / "rgb.npz")
    assert data.images.dtype == np.float32 and data.images.flags.c_contiguous
    np.testing.assert_allclose(data.images, rgb.transpose(0, 3, 1, 2), atol=1e-7)
    np.testing.assert_array_equal(data.labels, [3, 1, 3, 0])
    assert data.labels.dtype == np.int64
    np.savez(tmp_path / "one.npz", faces=u8)
    assert load_array(tmp_path / "one.npz").images.shape == (5, 1, 6, 7)
    # image_size and channels apply to arrays when given
    assert load_dataset(tmp_path / "rgb.npz", channels=1, image_size=3).images.shape == (4, 1, 3, 3)


@pytest.mark.parametrize(
    ("name", "arrays", "message"),
    [
        (
            "wrong.npy",
            np.zeros((4, 5), np.float32),
            r"images have shape \(4, 5\); expected \(N, H, W\)",
        ),
        ("two.npy", np.zeros((4, 5, 5, 2), np.float32), r"shape \(4, 5, 5, 2\)"),
        ("ints.npy", np.zeros((4, 8, 8), np.int64), "dtype int64; expected uint8 or floats in"),
        ("bool.npy", np.zeros((4, 8, 8), bool), "dtype bool"),
        ("big.npy", np.full((4, 8, 8), 2.0), r"range over \[2, 2\]; expected uint8 or floats in"),
        ("nan.npy", np.r_[np.full((1, 8, 8), np.nan), np.zeros((1, 8, 8))], "64 NaN or inf"),
        ("obj.npy", np.array([None, 1], dtype=object), "cannot read .*allow_pickle"),
        (
            "labels.npz",
            {"images": np.zeros((4, 8, 8)), "labels": np.zeros(3, int)},
            r"shape \(3,\)",
        ),
        (
            "flabels.npz",
            {"images": np.zeros((4, 8, 8)), "y": np.zeros(4)},
            "labels have dtype float64",
        ),
        ("keys.npz", {"a": np.zeros((4, 8, 8)), "b": np.zeros(4)}, r"holds \['a', 'b'\]"),
    ],
)
def test_array_errors_name_the_file(tmp_path, name, arrays, message):
    path = tmp_path / name
    if isinstance(arrays, dict):
        np.savez(path, **arrays)
    else:
        np.save(path, arrays, allow_pickle=True)
    with pytest.raises(ValueError, match=message) as error:
        load_dataset(path)
    assert str(path) in str(error.value)


# -- registry and load_dataset -----------------------------------------------------------------


def test_mnist_and_digits():
    assert DEFAULT_DATASET == "mnist"
    for data, shape in ((load_mnist(), (5000, 1, 28, 28)), (load_digits(), (1797, 1, 8, 8))):
        info = DATASETS[data.name]
        assert data.images.shape == shape == (info.n_images, *info.image_shape)
        assert data.images.dtype == np.float32 and data.labels.dtype == np.int64
        assert data.images.min() == 0 and data.images.max() == 1
        np.testing.assert_array_equal(np.unique(data.labels), np.arange(10))
    digits = load_dataset("digits", image_size=4, channels=3)
    assert digits.images.shape == (1797, 3, 4, 4) and digits.name == "digits"


def test_load_dataset_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError, match=r"^data='cifar' is neither a known data set \(digits, mnist, "
    ):
        load_dataset("cifar")
    with pytest.raises(FileNotFoundError, match=r"^data='x/y.npz': no such file or folder$"):
        load_dataset("x/y.npz")
    with pytest.raises(FileNotFoundError, match=r"data='nope\.npy': no such file"):
        load_dataset("nope.npy")
    (tmp_path / "table.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"data='table.csv' is a .csv file; allowed: a .npy or"):
        load_dataset("table.csv")
    with pytest.raises(ValueError, match="image_size='0x4' is not valid; use H or HxW"):
        load_dataset("digits", image_size="0x4")


def test_parse_image_size():
    assert parse_image_size(None) is None
    assert parse_image_size("64") == parse_image_size(64) == (64, 64)
    assert (
        parse_image_size("64x48")
        == parse_image_size((64, 48))
        == parse_image_size("64X48")
        == (64, 48)
    )
    for bad in ("", "x", "64x", "1x2x3", "-3", "a", 0, (1, 2, 3), 2.5, True):
        with pytest.raises(ValueError, match=re.escape(f"image_size={bad!r} is not valid")):
            parse_image_size(bad)
