"""Hostile folders, fuzzed: random bytes under image names, truncated and empty images, nested
folders and symbolic link loops. Every folder loads as valid images or raises one line, quickly,
in memory and streamed."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from aelab.data import ImageFolderDataset, load_image_folder

# Derandomized and without an example database: the same examples on every run and nothing
# written into the repository. Each example (a folder, read four ways) is bound to 2 s.
FUZZ = settings(max_examples=60, deadline=2000, derandomize=True, database=None)


def _encoded(array: np.ndarray, format: str, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=format)
    return buffer.getvalue()


_rng = np.random.default_rng(0)
VALID = [  # real images of two sizes: without image_size, a folder may mix them
    _encoded(_rng.integers(0, 256, (8, 8), np.uint8), "PNG"),
    _encoded(_rng.integers(0, 256, (8, 8, 4), np.uint8), "PNG"),
    _encoded(_rng.integers(0, 65536, (8, 8), np.uint16), "PNG"),
    _encoded(_rng.integers(0, 256, (8, 8), np.uint8), "PPM"),
    _encoded(_rng.integers(0, 256, (6, 9, 3), np.uint8), "JPEG"),
]

CONTENT = st.one_of(
    st.binary(max_size=512),  # random bytes
    st.just(b""),  # zero-byte files
    st.sampled_from(VALID),
    st.tuples(st.sampled_from(VALID), st.floats(0, 1, exclude_max=True)).map(
        lambda t: t[0][: int(t[1] * len(t[0]))]  # truncated real images
    ),
    st.tuples(st.integers(1, 60_000), st.integers(1, 60_000), st.binary(max_size=64)).map(
        lambda t: b"P5\n%d %d\n255\n" % t[:2] + t[2]  # any size in the header, little data
    ),
)
ENTRY = st.tuples(
    st.sampled_from(["", "x", "y", "x/deep", "x/deep/er", ".hidden"]),  # folder
    st.sampled_from(["a", "b", "c"]),  # name
    st.sampled_from([".png", ".pgm", ".jpg", ".PPM", "", ".txt"]),  # extension
    CONTENT,
)


def _build(root: Path, entries, loop: str | None) -> None:
    for folder, name, extension, content in entries:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{name}{extension}").write_bytes(content)
    if loop is not None:
        (root / loop).mkdir(parents=True, exist_ok=True)
        os.symlink(root, root / loop / "loop", target_is_directory=True)


def _one_line(error: BaseException) -> None:
    assert isinstance(error, (ValueError, FileNotFoundError)), repr(error)
    assert str(error) and "\n" not in str(error), str(error)


def _check_images(x: np.ndarray, channels, size) -> None:
    assert x.dtype == np.float32 and np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert x.shape[-3] == (channels or 1)
    assert size is None or x.shape[-2:] == ((size, size) if isinstance(size, int) else size)


@FUZZ
@given(
    entries=st.lists(ENTRY, max_size=8),
    loop=st.sampled_from([None, "", "x", "x/deep"]),
    image_size=st.sampled_from([None, 8, (5, 7)]),
    channels=st.sampled_from([None, 3]),
    follow_links=st.booleans(),
)
def test_any_folder_loads_or_is_refused_in_one_line(
    entries, loop, image_size, channels, follow_links
):
    options = {"image_size": image_size, "channels": channels, "follow_links": follow_links}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        _build(root, entries, loop)
        for skip_bad in (False, True):
            try:
                data = load_image_folder(root, skip_bad=skip_bad, **options)
            except (ValueError, FileNotFoundError) as e:
                _one_line(e)
            else:
                _check_images(data.images, channels, image_size)
                assert data.labels is None or len(data.labels) == len(data.images)
                assert all("\n" not in note for note in data.notes)
        try:
            streamed = ImageFolderDataset(root, **options)
        except (ValueError, FileNotFoundError) as e:
            _one_line(e)
            return
        for i in range(len(streamed)):
            try:
                item = streamed[i]
            except ValueError as e:
                _one_line(e)
            else:
                assert tuple(item.shape) == streamed.image_shape
                _check_images(item.numpy(), channels, image_size)


def _remove_deep(top: Path) -> None:
    """Remove a chain of nested folders bottom up (shutil.rmtree recurses, pytest's too)."""
    chain = [top]
    while (chain[-1] / "d").is_dir() and not (chain[-1] / "d").is_symlink():
        chain.append(chain[-1] / "d")
    for folder in reversed(chain):
        for entry in os.scandir(folder):
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
        folder.rmdir()


def test_empty_files_loops_and_deep_folders(tmp_path):
    root = tmp_path / "data"
    deep = root / "cls" / "d"
    deep.mkdir(parents=True)
    try:
        for _ in range(1100):  # deeper than Python's recursion limit (made without recursion)
            deep = deep / "d"
            deep.mkdir()
        (deep / "a.png").write_bytes(VALID[0])
        (root / "cls" / "empty.png").write_bytes(b"")
        (root / "cls" / "empty").write_bytes(b"")
        (root / "cls" / "d" / "loop").symlink_to(root, target_is_directory=True)
        with pytest.raises(ValueError, match=r"^cannot read image .*empty.png: .*skip_bad=True"):
            load_image_folder(root)
        data = load_image_folder(root, skip_bad=True, follow_links=True)
        assert len(data) == 1 and data.class_names == ["cls"]
        assert data.notes == [
            "skipped 1 non-image files (cls/empty)",
            "skipped 1 symbolic links that loop, lead nowhere or repeat a folder already read "
            "(cls/d/loop)",
            "skipped 1 unreadable images (cls/empty.png)",
        ]
    finally:
        _remove_deep(root / "cls" / "d")


def test_a_header_claiming_billions_of_pixels_is_refused_at_once(tmp_path):
    (tmp_path / "bomb.pgm").write_bytes(b"P5\n60000 60000\n255\n" + bytes(100))
    with pytest.raises(ValueError) as error:
        load_image_folder(tmp_path, image_size=8)
    assert str(error.value) == (
        f"cannot read image {tmp_path / 'bomb.pgm'}: more than 178,956,970 pixels, above "
        "max_image_pixels=40000000; pass a larger max_image_pixels (or None for no limit) to "
        "read it; pass skip_bad=True to skip unreadable images"
    )
    with pytest.raises(ValueError, match=r"bomb.pgm: .*truncated"):  # no limit: decoded, short
        load_image_folder(tmp_path, image_size=8, max_image_pixels=None)
