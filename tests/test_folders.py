"""Folders of image files loaded into memory: classes, resizing, channels, bad files."""

from __future__ import annotations

import os
import re
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2gray
from skimage.io import imsave

import aelab.data.images
from aelab.data import (
    ImageFolderDataset,
    load_dataset,
    load_image_folder,
)
from aelab.data.folders import MAX_IMAGE_PIXELS

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


# -- symbolic links ----------------------------------------------------------------------------


def _png(path, value=0, shape=(8, 8)):
    imsave(path, np.full(shape, value, np.uint8), check_contrast=False)


@pytest.fixture
def linked(tmp_path):
    """pets/cat/ with 2 images; links to an image and a class folder outside pets/, and a
    dangling link."""
    root, outside = tmp_path / "pets", tmp_path / "outside"
    for folder in (root / "cat", outside / "fox"):
        folder.mkdir(parents=True)
    _png(root / "cat" / "a.png", 10)
    _png(root / "cat" / "b.png", 20)
    _png(outside / "secret.png", 200)
    _png(outside / "fox" / "c.png", 30)
    (root / "cat" / "secret.png").symlink_to(outside / "secret.png")
    (root / "fox").symlink_to(outside / "fox", target_is_directory=True)
    (root / "cat" / "gone.png").symlink_to(tmp_path / "missing.png")
    return root


def test_symbolic_links_are_skipped_and_counted_unless_follow_links(linked):
    data = load_image_folder(linked)
    assert data.class_names == ["cat"] and len(data) == 2  # nothing outside pets/ was read
    np.testing.assert_allclose(data.images[:, 0, 0, 0], [10 / 255, 20 / 255], atol=1e-7)
    assert data.notes == [
        "skipped 3 symbolic links (fox, cat/gone.png, cat/secret.png); pass follow_links=True "
        "to read them"
    ]
    assert load_dataset(linked).notes == data.notes
    followed = load_dataset(linked, follow_links=True)
    assert followed.class_names == ["cat", "fox"] and len(followed) == 4
    np.testing.assert_allclose(followed.images[:, 0, 0, 0] * 255, [10, 20, 200, 30], atol=1e-4)
    assert followed.notes == [
        "skipped 1 symbolic links that loop, lead nowhere or repeat a folder already read "
        "(cat/gone.png)"
    ]


def test_following_a_symbolic_link_loop_ends(tmp_path):
    root = tmp_path / "photos"
    (root / "cls" / "deeper").mkdir(parents=True)
    _png(root / "cls" / "a.png")
    _png(root / "cls" / "deeper" / "b.png")
    (root / "cls" / "deeper" / "up").symlink_to(root / "cls", target_is_directory=True)
    (root / "cls" / "self").symlink_to(root / "cls" / "self")  # ELOOP when followed
    (root / "again").symlink_to(root, target_is_directory=True)
    data = load_image_folder(root, follow_links=True)
    assert len(data) == 2 and data.class_names == ["cls"]
    assert data.notes == [
        "skipped 3 symbolic links that loop, lead nowhere or repeat a folder already read "
        "(again, cls/self, cls/deeper/up)"
    ]
    assert load_image_folder(root).notes == [
        "skipped 3 symbolic links (again, cls/self, cls/deeper/up); pass follow_links=True to "
        "read them"
    ]


def test_links_only_is_an_error_that_says_how_to_read_them(tmp_path, linked):
    only = tmp_path / "only"
    only.mkdir()
    (only / "fox").symlink_to(linked.parent / "outside" / "fox", target_is_directory=True)
    with pytest.raises(ValueError, match=r"only holds no images .*; skipped 1 symbolic links "
                       r"\(fox\); pass follow_links=True to read them$"):  # fmt: skip
        load_image_folder(only)
    assert len(load_image_folder(only, follow_links=True)) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_special_files_are_never_opened(tmp_path):
    (tmp_path / "cls").mkdir()
    _png(tmp_path / "cls" / "a.png")
    os.mkfifo(tmp_path / "cls" / "pipe.png")  # opening it would block forever
    os.mkfifo(tmp_path / "cls" / "pipe")
    data = load_image_folder(tmp_path)
    assert len(data) == 1 and data.notes == ["skipped 2 non-image files (cls/pipe, cls/pipe.png)"]


def test_new_parameters_are_validated(folder):
    root, _ = folder
    for bad in (0, -5, 2.5, True, "big"):
        with pytest.raises(ValueError, match=re.escape(f"max_image_pixels={bad!r} is not valid; "
                           "expected a positive integer or None (no limit)")):  # fmt: skip
            load_image_folder(root, max_image_pixels=bad)
    with pytest.raises(ValueError, match=r"^follow_links='yes' is not valid; expected True or"):
        load_dataset(root, follow_links="yes")


# -- formats -----------------------------------------------------------------------------------


def test_formats_by_content_with_their_real_range(tmp_path):
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    deep = rng.integers(0, 65536, (6, 5), dtype=np.uint16)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    bits = rng.integers(0, 2, (6, 5)).astype(bool)
    Image.fromarray(grey).save(tmp_path / "face.pgm")  # netpbm, as ORL / Yale faces
    Image.fromarray(deep).save(tmp_path / "deep.pgm")  # 16-bit netpbm: Pillow's mode I
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit PNG
    Image.fromarray(deep).save(tmp_path / "deep.tif")  # 16-bit TIFF
    Image.fromarray(rgb).save(tmp_path / "colour.ppm")
    Image.fromarray(bits).save(tmp_path / "bits.pbm")
    Image.fromarray(grey).save(tmp_path / "no_extension", format="PNG")  # found by content
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=100)
    (tmp_path / "README").write_text("faces")
    (tmp_path / "data.bin").write_bytes(rng.bytes(300))
    data = load_image_folder(tmp_path, channels=3)
    assert data.notes == ["skipped 2 non-image files (README, data.bin)"]
    names = sorted(n for n in os.listdir(tmp_path) if n not in ("README", "data.bin"))
    images = dict(zip(names, data.images))
    assert data.images.dtype == np.float32 and 0 <= data.images.min() <= data.images.max() <= 1
    np.testing.assert_allclose(images["face.pgm"][0], grey / 255, atol=1e-7)
    np.testing.assert_allclose(images["no_extension"][0], grey / 255, atol=1e-7)
    for name in ("deep.pgm", "deep.png", "deep.tif"):  # by 65535, not 255 nor 2**31 - 1
        np.testing.assert_allclose(images[name][0], deep / 65535, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(images["colour.ppm"], rgb.transpose(2, 0, 1) / 255, atol=1e-7)
    np.testing.assert_array_equal(images["bits.pbm"][0], bits.astype(np.float32))
    # CMYK is converted to RGB (not taken for RGBA): close to the colours written
    assert np.abs(images["print.jpg"] - rgb.transpose(2, 0, 1) / 255).mean() < 0.05


def test_palette_and_alpha_are_composited_on_white(tmp_path):
    grey = np.array([[0, 100], [200, 255]], np.uint8)
    palette = Image.fromarray(grey).convert("P")
    palette.save(tmp_path / "a_palette.png")
    palette.save(tmp_path / "b_transparent.png", transparency=int(np.asarray(palette)[0, 0]))
    la = np.stack([grey, np.array([[255, 0], [255, 128]], np.uint8)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "c_grey_alpha.png")
    data = load_image_folder(tmp_path)
    np.testing.assert_allclose(data.images[0, 0], grey / 255, atol=1e-6)
    # the transparent pixel (0, 0) is white; the others keep their grey
    np.testing.assert_allclose(data.images[1, 0], [[1, 100 / 255], [200 / 255, 1]], atol=1e-6)
    alpha = la[..., 1] / 255
    expected = grey / 255 * alpha + (1 - alpha)
    np.testing.assert_allclose(data.images[2, 0], expected, atol=1e-6)


@pytest.mark.parametrize("image_size", [None, (5, 7)])
def test_common_formats_give_the_pixels_skimage_gives(tmp_path, image_size):
    """Images that need no reduction: exactly what reading with skimage gave before."""
    from skimage.io import imread
    from skimage.util import img_as_float

    from aelab.data.images import _fit_image

    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    imsave(tmp_path / "a.png", rgb, check_contrast=False)
    imsave(tmp_path / "b.png", rgba, check_contrast=False)
    imsave(tmp_path / "c.png", grey16, check_contrast=False)
    Image.fromarray(rgb).save(tmp_path / "d.jpg", quality=85)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "e.jpg")
    Image.fromarray(rgb).save(tmp_path / "f.bmp")
    Image.fromarray(rgb).save(tmp_path / "g.gif")
    Image.fromarray(rgb).save(tmp_path / "h.webp", lossless=True)
    Image.fromarray(rgb[..., 1]).save(tmp_path / "i.tif")
    for channels in (1, 3):
        data = load_image_folder(tmp_path, image_size=image_size, channels=channels)
        for name, got in zip(sorted(os.listdir(tmp_path)), data.images):
            img = np.asarray(imread(tmp_path / name))
            img = img_as_float(img[0] if img.ndim == 4 else img)
            np.testing.assert_array_equal(got, _fit_image(img, image_size, channels), name)


# -- huge images -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A 12000x12000 PNG of 140 KB: 144 million pixels, under Pillow's own error limit."""
    root = tmp_path_factory.mktemp("bomb")
    (root / "cls").mkdir()
    _png(root / "cls" / "small.png")
    Image.new("L", (12000, 12000), 255).save(root / "cls" / "huge.png", compress_level=9)
    assert (root / "cls" / "huge.png").stat().st_size < 200_000
    return root


def test_an_image_above_max_image_pixels_is_refused_before_decoding(bomb):
    huge = bomb / "cls" / "huge.png"
    start = time.perf_counter()
    with pytest.raises(ValueError) as error:
        load_image_folder(bomb, image_size=(16, 16))
    assert time.perf_counter() - start < 1.0  # the header only: no 144 MB decoded
    assert str(error.value) == (
        f"cannot read image {huge}: 12000x12000 is 144,000,000 pixels, above "
        "max_image_pixels=40000000; pass a larger max_image_pixels (or None for no limit) to "
        "read it; pass skip_bad=True to skip unreadable images"
    )
    assert MAX_IMAGE_PIXELS == 40_000_000
    data = load_dataset(bomb, image_size=16, skip_bad=True)
    assert len(data) == 1 and data.notes == ["skipped 1 unreadable images (cls/huge.png)"]
    with pytest.raises(ValueError, match=r"huge.png: .* above max_image_pixels=1000000;"):
        load_image_folder(bomb, image_size=16, max_image_pixels=1_000_000)


def test_a_huge_image_under_the_limit_is_reduced_while_decoding(bomb):
    start = time.perf_counter()
    data = load_image_folder(bomb, image_size=(16, 16), max_image_pixels=None)
    assert time.perf_counter() - start < 10  # decoding 144 MB; never resized at full size
    assert data.images.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(data.images[0], 1, atol=1e-6)  # huge.png, all white


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """6000x6000 smooth grey images, PNG and JPEG (36 million pixels each, under the limit)."""
    root = tmp_path_factory.mktemp("big")
    small = Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 40), np.uint8))
    large = small.resize((6000, 6000), Image.Resampling.BICUBIC)
    large.save(root / "a.png", compress_level=1)
    large.save(root / "b.jpg", quality=90)
    return root


def test_big_images_are_resized_fast_and_in_little_memory(big):
    load_image_folder(big, image_size=64)  # imports and first-time set-up
    tracemalloc.start()  # numpy's buffers are traced (Pillow's own are not)
    start = time.perf_counter()
    try:
        data = load_image_folder(big, image_size=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - start
    assert data.images.shape == (2, 1, 64, 64)
    assert peak < 20e6  # at full size, one image in floats is 288 MB
    assert seconds < 3  # about 0.5 s on a laptop core (at full size: about 25 s)
    np.testing.assert_allclose(data.images[0], data.images[1], atol=0.05)  # PNG ~ JPEG


def test_reduced_images_are_close_to_resizing_the_whole_image(tmp_path):
    from skimage.transform import resize

    rng = np.random.default_rng(6)
    small = Image.fromarray(rng.integers(0, 256, (30, 40, 3), np.uint8))
    photo = np.asarray(small.resize((1600, 1200), Image.Resampling.BICUBIC))
    Image.fromarray(photo).save(tmp_path / "photo.png", compress_level=1)
    for size in [(32, 48), (100, 60)]:
        got = load_image_folder(tmp_path, image_size=size, channels=3).images[0]
        whole = resize(photo / 255.0, size, anti_aliasing=True).transpose(2, 0, 1)
        assert np.abs(got - whole).mean() < 0.005 and np.abs(got - whole).max() < 0.05, size


# -- memory ------------------------------------------------------------------------------------


def test_a_size_that_does_not_fit_in_memory_is_refused_before_allocating(folder, monkeypatch):
    root, _ = folder
    pattern = (
        r"^image_size=\(1000000, 1000000\) is too large: 6 images of 1x1000000x1000000 take "
        r"[\d,.]+ GiB as float32 and [\d,.]+ (GiB|MiB) of memory is available; pass a smaller "
        r"image_size, or stream the images from disk \(stream=True\)$"
    )
    with pytest.raises(ValueError, match=pattern):
        load_dataset(root, image_size=1_000_000)
    with pytest.raises(ValueError, match=r"^image_size=1000000 is too large: one image of 1x1000"):
        ImageFolderDataset(root, image_size=1_000_000)
    with pytest.raises(ValueError, match=r"^image_size=\(1000000, 1000000\) is too large: 1,797 "):
        load_dataset("digits", image_size=1_000_000)
    assert 0 < aelab.data.images._available_memory() < 2**60
    # the numbers, with a machine of 1 GiB free: 6 x 1 x 8000 x 8000 x 4 bytes do not fit
    monkeypatch.setattr(aelab.data.images, "_available_memory", lambda: 2**30)
    with pytest.raises(ValueError, match=r"6 images of 1x8000x8000 take 1.4 GiB as float32 and "
                       r"1.0 GiB of memory is available"):  # fmt: skip
        load_image_folder(root, image_size=8000)
    assert ImageFolderDataset(root, image_size=8000).image_shape == (1, 8000, 8000)  # one fits
