"""Streaming a folder from disk: the lazy Dataset equals the in-memory loader."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.io import imsave

import aelab.data
from aelab.data import (
    ImageFolderDataset,
    load_image_folder,
    mirror,
    split,
    write_image_folder,
)

# -- the Dataset -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three classes of 12x16 images, PNG (skimage) and JPEG (PIL), grey, RGB and RGBA, plus
    files that are not images."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("photos")
    for k, cls in enumerate(("ann", "bob", "cy")):
        (root / cls).mkdir()
        for i in range(4):
            shape = [(12, 16), (12, 16, 3), (12, 16, 4), (12, 16, 3)][(i + k) % 4]
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            if i % 2:
                Image.fromarray(img[..., :3] if img.ndim == 3 else img).save(
                    root / cls / f"{i}.jpg", quality=90
                )
            else:
                imsave(root / cls / f"{i}.png", img, check_contrast=False)
    (root / "README").write_text("people")
    (root / "bob" / ".DS_Store").write_bytes(b"\x00")
    return root


@pytest.mark.parametrize("image_size", [None, "6x9"])
@pytest.mark.parametrize("channels", [None, 3])
def test_items_equal_the_in_memory_loader(photos, image_size, channels):
    loaded = load_image_folder(photos, image_size=image_size, channels=channels)
    data = ImageFolderDataset(photos, image_size=image_size, channels=channels)
    assert len(data) == len(loaded) == 12
    assert data.image_shape == loaded.image_shape
    assert data.class_names == loaded.class_names == ["ann", "bob", "cy"]
    np.testing.assert_array_equal(data.labels, loaded.labels)
    assert data.notes == loaded.notes == ["skipped 2 non-image files (README, bob/.DS_Store)"]
    item = data[0]
    assert isinstance(item, torch.Tensor) and item.dtype == torch.float32
    assert item.shape == loaded.image_shape and item.is_contiguous()
    np.testing.assert_array_equal(torch.stack(list(data)).numpy(), loaded.images)
    np.testing.assert_array_equal(data.load().images, loaded.images)


def test_mirror_equals_the_in_memory_mirror(photos):
    expected = mirror(load_image_folder(photos))
    for data in (ImageFolderDataset(photos, mirror=True), mirror(ImageFolderDataset(photos))):
        assert len(data) == 24
        np.testing.assert_array_equal(data[13].numpy(), data[1].numpy()[..., ::-1])
        np.testing.assert_array_equal(data.load().images, expected.images)
        np.testing.assert_array_equal(data.labels, expected.labels)
    twice = mirror(ImageFolderDataset(photos, mirror=True))  # a mirror of a mirror: the original
    np.testing.assert_array_equal(twice[36].numpy(), twice[0].numpy())


@pytest.mark.parametrize(
    "kwargs", [{"holdout_people": 1}, {"holdout": 0.25, "seed": 0}, {"holdout": 0.25, "seed": 3}]
)
def test_split_then_mirror_equals_the_in_memory_split(photos, kwargs):
    parts = [mirror(p) for p in split(load_image_folder(photos), **kwargs)]
    streamed = [mirror(p) for p in split(ImageFolderDataset(photos), **kwargs)]
    for part, stream in zip(parts, streamed):
        assert isinstance(stream, ImageFolderDataset) and len(stream) == len(part)
        np.testing.assert_array_equal(stream.load().images, part.images)
        np.testing.assert_array_equal(stream.labels, part.labels)
    if "holdout_people" in kwargs:
        assert set(streamed[1].labels.tolist()) == {2}


def test_unlabelled_folder_and_subset(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(10):
        imsave(
            tmp_path / f"{i:02d}.png", rng.integers(0, 256, (5, 7), np.uint8), check_contrast=False
        )
    loaded, data = load_image_folder(tmp_path), ImageFolderDataset(tmp_path)
    assert data.labels is None and data.class_names is None
    for a, b in zip(split(loaded, holdout=0.3, seed=2), split(data, holdout=0.3, seed=2)):
        np.testing.assert_array_equal(b.load().images, a.images)
    pick = np.array([7, 2, 2])
    np.testing.assert_array_equal(data.subset(pick).load().images, loaded.images[pick])
    mask = np.arange(10) % 3 == 0
    np.testing.assert_array_equal(data.subset(mask).load().images, loaded.images[mask])
    empty = data.subset(np.arange(0))
    assert len(empty) == 0 and empty.load().images.shape == (0, 1, 5, 7)


def test_listing_reads_no_pixels(photos, monkeypatch):
    reads = []
    real = aelab.data._read_image

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(aelab.data, "_read_image", counting)
    data = ImageFolderDataset(photos, image_size=8, mirror=True)
    train, _ = split(data, holdout_people=1)
    mirror(train).subset(np.arange(3))
    assert reads == []
    ImageFolderDataset(photos)  # without image_size, the first image fixes the size
    assert reads == [photos / "ann" / "0.png"]
    assert data[5].shape == (1, 8, 8) and reads[-1] == photos / "bob" / "1.jpg"


def test_a_differing_size_is_an_error_when_read(tmp_path):
    imsave(tmp_path / "a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    imsave(tmp_path / "b.png", np.zeros((9, 7), np.uint8), check_contrast=False)
    with pytest.raises(ValueError) as in_memory:
        load_image_folder(tmp_path)
    data = ImageFolderDataset(tmp_path)  # only the first image is read here
    assert data.image_shape == (1, 8, 8) and data[0].shape == (1, 8, 8)
    with pytest.raises(ValueError, match=r"a.png is 8x8, .*b.png is 9x7; pass image_size") as e:
        data[1]
    assert str(e.value) == str(in_memory.value)
    assert ImageFolderDataset(tmp_path, image_size=8)[1].shape == (1, 8, 8)


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
def test_folder_errors(tmp_path):
    (tmp_path / "ok.png").write_bytes(b"")
    imsave(tmp_path / "a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    data = ImageFolderDataset(tmp_path)
    bad = re.escape(str(tmp_path / "ok.png"))
    with pytest.raises(ValueError, match=rf"cannot read image {bad}.*--skip-bad without --stream"):
        data[1]
    with pytest.raises(FileNotFoundError, match=r"path='.*nope' is not a folder"):
        ImageFolderDataset(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"channels=2 is not valid"):
        ImageFolderDataset(tmp_path, channels=2)
    (tmp_path / "cls").mkdir()
    imsave(tmp_path / "cls" / "c.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    with pytest.raises(ValueError, match=r"mixes images .* with class subfolders"):
        ImageFolderDataset(tmp_path)


def test_write_image_folder(tmp_path):
    root = write_image_folder(tmp_path / "synthetic", 7, image_size="6x5", n_classes=3)
    data = ImageFolderDataset(root)
    assert len(data) == 7 and data.class_names == ["class_0", "class_1", "class_2"]
    np.testing.assert_array_equal(np.bincount(data.labels), [3, 2, 2])
    assert data.image_shape == (1, 6, 5) and (root / "class_1" / "000004.png").is_file()
    assert data.load().images.std() > 0.05
    with pytest.raises(ValueError, match=r"n=-1 is not valid; expected an integer >= 0"):
        write_image_folder(tmp_path / "x", -1)
