"""Folders of image files loaded into memory: classes, resizing, channels, bad files."""

from __future__ import annotations

import re

import numpy as np
import pytest
from skimage.color import rgb2gray
from skimage.io import imsave

from aelab.data import (
    load_dataset,
    load_image_folder,
)

# -- folders -----------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    """cat/ and dog/ with three 8x10 grey PNGs each, plus a .DS_Store and a README."""
    rng = np.random.default_rng(0)
    root = tmp_path / "pets"
    written = {}
    for cls in ("dog", "cat"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            img = rng.integers(0, 256, (8, 10), dtype=np.uint8)
            imsave(root / cls / f"{i}.png", img, check_contrast=False)
            written[(cls, i)] = img
    (root / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "README").write_text("my pets")
    return root, written


def test_folder_labels_classes_notes_and_pixels(folder):
    root, written = folder
    data = load_dataset(root)
    assert data.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1, 1])
    assert data.images.shape == (6, 1, 8, 10) and data.images.dtype == np.float32
    assert data.notes == ["skipped 2 non-image files (.DS_Store, README)"]
    expected = [written[(c, i)] for c in ("cat", "dog") for i in range(3)]
    np.testing.assert_allclose(data.images[:, 0], np.stack(expected) / 255.0, atol=1e-7)
    assert data.name == str(root)


def test_folder_resize_and_channels(folder):
    root, _ = folder
    small = load_image_folder(root, image_size="4x5")
    assert small.images.shape == (6, 1, 4, 5)
    assert 0 <= small.images.min() and small.images.max() <= 1
    colour = load_dataset(root, channels=3, image_size=(16, 20))
    assert colour.images.shape == (6, 3, 16, 20)
    np.testing.assert_array_equal(colour.images[:, 0], colour.images[:, 2])
    with pytest.raises(ValueError, match=r"channels=2 is not valid; allowed: 1 .* or 3"):
        load_image_folder(root, channels=2)


def test_folder_colour_images_become_grey_unless_channels_3(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
    for i, img in enumerate(rgb):
        imsave(tmp_path / f"{i}.PNG", img, check_contrast=False)
    grey = load_image_folder(tmp_path)
    assert grey.labels is None and grey.class_names is None and grey.notes == []
    np.testing.assert_allclose(grey.images[:, 0], rgb2gray(rgb / 255.0), atol=1e-6)
    colour = load_image_folder(tmp_path, channels=3)
    np.testing.assert_allclose(colour.images, rgb.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
def test_folder_bad_image_is_named_or_skipped(folder):
    root, _ = folder
    bad = root / "dog" / "broken.png"
    bad.write_bytes(np.random.default_rng(0).bytes(200))
    with pytest.raises(
        ValueError, match=rf"cannot read image {re.escape(str(bad))}.*skip_bad=True"
    ):
        load_image_folder(root)
    data = load_image_folder(root, skip_bad=True)
    assert len(data) == 6 and data.notes[-1] == "skipped 1 unreadable images (dog/broken.png)"


def test_folder_errors(tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    imsave(mixed / "a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    imsave(mixed / "b.png", np.zeros((9, 7), np.uint8), check_contrast=False)
    with pytest.raises(
        ValueError, match=r"a.png is 8x8, .*b.png is 9x7; pass image_size to resize"
    ):
        load_dataset(mixed)
    assert load_dataset(mixed, image_size=8).images.shape == (2, 1, 8, 8)
    (mixed / "cls").mkdir()
    imsave(mixed / "cls" / "c.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    with pytest.raises(ValueError, match=r"mixed mixes images .* with class subfolders"):
        load_dataset(mixed)
    empty = tmp_path / "empty"
    (empty / "hidden").mkdir(parents=True)
    (empty / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=f"{re.escape(str(empty))} holds no images"):
        load_dataset(empty)
