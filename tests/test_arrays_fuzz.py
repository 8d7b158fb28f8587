"""Array files, fuzzed: every input loads as valid images or raises one line naming the file,
quickly, and nothing is ever unpickled."""

from __future__ import annotations

import io
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aelab.data import load_array

# Derandomized and without an example database: the same examples on every run and nothing
# written into the repository. Each example is bound to 2 s.
FUZZ = settings(max_examples=60, deadline=2000, derandomize=True, database=None)

DTYPES = [
    "bool", "i1", "u1", "<i2", ">u2", "<i4", "<i8", "<u8",
    "<f2", "<f4", ">f4", "<f8", ">f8", "<c8", "<c16",
]  # fmt: skip
VALID_DTYPES = ["u1", "<f2", "<f4", ">f8"]


def _arrays(max_dims: int = 5):
    # half of them have image-like shapes and dtypes, zero-sized sides included
    any_array = st.tuples(
        st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=max_dims, max_side=5)
    )
    image_like = st.tuples(
        st.sampled_from(VALID_DTYPES),
        hnp.array_shapes(min_dims=min(3, max_dims), max_dims=min(4, max_dims), min_side=0,
                         max_side=4),
    )  # fmt: skip
    return (any_array | image_like).flatmap(
        lambda t: hnp.arrays(np.dtype(t[0]), t[1], elements=_elements(np.dtype(t[0])))
    )


def _elements(dtype: np.dtype):
    if dtype.kind == "f":  # mostly in [0, 1], sometimes not, NaN and inf included
        width = 8 * dtype.itemsize
        return st.floats(0, 1, width=width) | st.floats(width=width)
    return None


def _check(path: Path, load) -> None:
    """``load()`` gives valid images or a one-line ValueError naming ``path``."""
    try:
        data = load()
    except ValueError as e:
        message = str(e)
        assert "\n" not in message and str(path) in message, message
        return
    x = data.images
    assert x.dtype == np.float32 and x.ndim == 4 and x.flags.c_contiguous
    assert x.shape[0] >= 1 and x.shape[1] in (1, 3) and min(x.shape) >= 1
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert data.labels is None or (data.labels.dtype == np.int64 and len(data.labels) == len(x))


def _expected(x: np.ndarray) -> np.ndarray:
    images = x.astype(np.float32) / (np.float32(255) if x.dtype == np.uint8 else 1)
    images = images[..., None] if images.ndim == 3 else images
    return images.transpose(0, 3, 1, 2)


KEYS = st.sampled_from(["images", "x", "X", "faces"])


@FUZZ
@given(x=_arrays(), labels=st.none() | _arrays(max_dims=2), key=KEYS, npz=st.booleans())
@example(x=np.zeros((3, 0, 4), np.uint8), labels=None, key="images", npz=False)
@example(x=np.zeros((2, 4, 0, 3)), labels=None, key="images", npz=True)
@example(x=np.ones((2, 3, 3), ">f8"), labels=np.array([1, 2], "<u8"), key="x", npz=True)
@example(x=np.full((1, 2, 2), np.nan, "<f2"), labels=None, key="images", npz=False)
def test_any_array_loads_or_is_refused_in_one_line(x, labels, key, npz):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("a.npz" if npz else "a.npy")
        if npz:
            np.savez(path, **{key: x}, **({} if labels is None else {"labels": labels}))
        else:
            np.save(path, x)
        try:
            data = load_array(path)
        except ValueError as e:
            assert "\n" not in str(e) and str(path) in str(e), str(e)
            return
        _check(path, lambda: data)
        valid = x.dtype == np.uint8 or (x.dtype.kind == "f" and np.isfinite(x).all())
        assert valid and data.images.shape[0] == len(x)
        np.testing.assert_array_equal(data.images, _expected(x))
        if npz and labels is not None and key != "faces":
            np.testing.assert_array_equal(data.labels, labels)


PREFIXES = st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"PK\x03\x04"])


@FUZZ
@given(content=st.binary(max_size=2048), prefix=PREFIXES, suffix=st.sampled_from([".npy", ".npz"]))
def test_random_bytes_are_refused_in_one_line(content, prefix, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"junk{suffix}"
        path.write_bytes(prefix + content)
        with pytest.raises(ValueError) as error:
            load_array(path)
        assert "\n" not in str(error.value) and str(path) in str(error.value)


@FUZZ
@given(x=_arrays(max_dims=4), cut=st.floats(0, 1, exclude_max=True), npz=st.booleans())
def test_truncated_files_are_refused_in_one_line(x, cut, npz):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("t.npz" if npz else "t.npy")
        if npz:
            np.savez(path, images=x, labels=np.arange(len(x) if x.ndim else 1))
        else:
            np.save(path, x)
        whole = path.read_bytes()
        path.write_bytes(whole[: int(cut * len(whole))])
        _check(path, lambda: load_array(path))  # a truncated empty array may still load


SHAPES = st.lists(st.integers(0, 10**7), min_size=3, max_size=4)


@FUZZ
@given(shape=SHAPES, npz=st.booleans(), dtype=st.sampled_from(["|u1", "<f8"]), data=st.binary())
def test_a_header_that_declares_more_than_the_file_holds_is_refused_unread(shape, npz, dtype, data):
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("h.npz" if npz else "h.npy")
        if npz:
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("images.npy", buffer.getvalue() + data)
        else:
            path.write_bytes(buffer.getvalue() + data)
        _check(path, lambda: load_array(path))  # up to 10**28 bytes declared: never allocated


# -- pickles -----------------------------------------------------------------------------------

UNPICKLED: list[str] = []


def _record(what: str) -> str:
    UNPICKLED.append(what)
    return what


class Trap:
    """Unpickling one calls :func:`_record`: the sign that a file was unpickled."""

    def __reduce__(self):
        return _record, ("unpickled",)


@pytest.mark.parametrize("how", ["npy", "npz images", "npz labels", "raw pickle"])
def test_pickled_objects_are_refused_without_unpickling(tmp_path, how):
    trap = np.array([Trap(), Trap()], dtype=object)
    images = np.zeros((2, 4, 4), np.uint8)
    path = tmp_path / ("a.npy" if how in ("npy", "raw pickle") else "a.npz")
    if how == "npy":
        np.save(path, trap, allow_pickle=True)
    elif how == "npz images":
        np.savez(path, images=trap)
    elif how == "npz labels":
        np.savez(path, images=images, labels=trap)
    else:
        path.write_bytes(pickle.dumps(trap))
    with pytest.raises(ValueError) as error:
        load_array(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert "never unpickled (allow_pickle=False)" in str(error.value) or how == "raw pickle"
    assert UNPICKLED == []
    pickle.loads(pickle.dumps(Trap()))  # the trap works
    assert UNPICKLED == ["unpickled"]
    UNPICKLED.clear()


def test_header_errors_name_the_file(tmp_path):
    huge = tmp_path / "huge.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**4, 10**4)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    huge.write_bytes(buffer.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError) as error:
        load_array(huge)
    assert str(error.value) == (
        f"cannot read {huge}: its header declares (1000000, 10000, 10000) float64 "
        "(745,058.1 GiB) and it holds 64 B of data; the file is truncated or damaged"
    )
    zero = tmp_path / "zero.npy"
    np.save(zero, np.zeros((3, 0, 4), np.uint8))
    with pytest.raises(ValueError, match=r"zero.npy: images have shape \(3, 0, 4\); expected .* "
                       r"with N, H and W at least 1$"):  # fmt: skip
        load_array(zero)
    text = tmp_path / "text.npy"
    text.write_text("not an array")
    with pytest.raises(ValueError, match=r"^cannot read .*text.npy: not a .npy array \("):
        load_array(text)
