"""Data sets, folders, arrays, splits, mirrors and noise, checked against independent code."""

from __future__ import annotations

import re
import shutil
from urllib.error import URLError

import joblib
import numpy as np
import pytest
from scipy.io import loadmat
from skimage.color import rgb2gray
from skimage.io import imsave

from aelab.data import (
    DATASETS,
    DEFAULT_DATASET,
    ImageSet,
    default_split,
    get_data_home,
    load_array,
    load_dataset,
    load_digits,
    load_image_folder,
    load_mnist,
    load_olivetti,
    mirror,
    parse_image_size,
    split,
)

# -- Olivetti ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def olivetti_copy(olivetti_home, tmp_path_factory):
    """A private data home holding only olivettifaces.mat (loading writes the cache into it)."""
    home = tmp_path_factory.mktemp("olivetti_home")
    shutil.copy(olivetti_home / "olivettifaces.mat", home / "olivettifaces.mat")
    return home


@pytest.fixture(scope="module")
def olivetti(olivetti_copy):
    return load_olivetti(olivetti_copy, download=False)


@pytest.fixture(scope="module")
def expected_faces(olivetti_mat):
    """Independently: column i of ``faces`` is image i, 64x64 column-major, scaled by min/max."""
    faces = loadmat(olivetti_mat)["faces"].astype(np.float64)
    faces = (faces - faces.min()) / (faces.max() - faces.min())
    return np.stack([faces[:, i].reshape(64, 64, order="F") for i in range(faces.shape[1])])


def test_the_shipped_olivetti_file_is_the_original():
    """tests/data/ ships olivettifaces.mat so that a fresh clone passes offline; its checksum is
    the one SHA256SUMS records, and the loader reads the faces scikit-learn's fetcher gives."""
    import hashlib

    from conftest import DATA, SHIPPED_MAT

    expected = dict(
        reversed(line.split()) for line in (DATA / "SHA256SUMS").read_text().splitlines()
    )
    assert hashlib.sha256(SHIPPED_MAT.read_bytes()).hexdigest() == expected[SHIPPED_MAT.name]
    assert "AT&T Laboratories Cambridge" in (DATA / "README.md").read_text()
    faces = loadmat(SHIPPED_MAT)["faces"]
    assert faces.shape == (4096, 400) and faces.dtype == np.uint8


def test_olivetti_from_the_mat_matches_an_independent_reading(
    olivetti, olivetti_copy, olivetti_mat, expected_faces
):
    assert olivetti.images.shape == (400, 1, 64, 64)
    assert olivetti.images.dtype == np.float32 and olivetti.images.flags.c_contiguous
    assert olivetti.labels.dtype == np.int64
    np.testing.assert_array_equal(olivetti.labels, np.arange(400) // 10)
    np.testing.assert_allclose(olivetti.images[:, 0], expected_faces, atol=1e-6)
    assert abs(olivetti.images.mean() - 0.547043) < 1e-5
    assert olivetti.name == "olivetti" and olivetti.image_shape == (1, 64, 64)
    assert any("prepared scikit-learn's Olivetti cache" in n for n in olivetti.notes)
    # the cache holds exactly what scikit-learn's fetcher writes after its download
    cache = olivetti_copy / "olivetti_py3.pkz"
    np.testing.assert_array_equal(joblib.load(cache), loadmat(olivetti_mat)["faces"].T)
    # a second load reads the cache, through load_dataset, with the same result
    again = load_dataset("olivetti", data_home=olivetti_copy, download=False)
    np.testing.assert_array_equal(again.images, olivetti.images)
    assert again.notes == []


def test_olivetti_availability_and_missing_data(olivetti_mat, tmp_path):
    home = tmp_path / "home"
    assert not DATASETS["olivetti"].available(home)
    assert not home.exists()  # asking creates nothing
    assert DATASETS["mnist"].available(home) and DATASETS["digits"].available(home)
    pattern = f"olivetti is not in data home {re.escape(str(home))}.*put olivettifaces.mat there"
    with pytest.raises(FileNotFoundError, match=pattern):
        load_olivetti(home, download=False)
    shutil.copy(olivetti_mat, home / "olivettifaces.mat")
    assert DATASETS["olivetti"].available(home)
    assert len(load_olivetti(home, download=False)) == 400
    (home / "olivettifaces.mat").unlink()  # the cache alone is enough
    assert DATASETS["olivetti"].available(home)
    assert len(load_olivetti(home, download=False)) == 400


def test_olivetti_read_only_home_reads_the_mat_directly(
    olivetti_copy, olivetti, tmp_path, monkeypatch
):
    home = tmp_path / "ro"
    home.mkdir()
    shutil.copy(olivetti_copy / "olivettifaces.mat", home / "olivettifaces.mat")

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(joblib, "dump", refuse)
    data = load_olivetti(home, download=False)
    np.testing.assert_array_equal(data.images, olivetti.images)
    np.testing.assert_array_equal(data.labels, olivetti.labels)
    assert "read-only file system" in data.notes[0]
    assert sorted(p.name for p in home.iterdir()) == ["olivettifaces.mat"]


def test_olivetti_download_messages_become_notes_and_failures_name_the_home(
    olivetti_copy, olivetti, tmp_path, monkeypatch
):
    import sklearn.datasets

    real = sklearn.datasets.fetch_olivetti_faces

    def chatty(**kwargs):
        print("downloading Olivetti faces from somewhere")
        return real(**kwargs)

    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", chatty)
    data = load_olivetti(olivetti_copy)
    assert data.notes == ["downloading Olivetti faces from somewhere"]

    def offline(**kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", offline)
    home = tmp_path / "empty"
    pattern = rf"could not download into data home {re.escape(str(home))} .*Name or service"
    with pytest.raises(FileNotFoundError, match=pattern + ".*put olivettifaces.mat there"):
        load_olivetti(home)


def test_data_home_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_DATA_HOME", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env" and (tmp_path / "env").is_dir()
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg" and (tmp_path / "arg").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"data_home=.*file.* is a file"):
        get_data_home(tmp_path / "file")


def test_mirror_flips_the_width_axis(olivetti):
    m = mirror(olivetti)
    assert len(m) == 800 and m.images.flags.c_contiguous
    np.testing.assert_array_equal(m.images[:400], olivetti.images)
    np.testing.assert_array_equal(m.images[400:], olivetti.images[..., ::-1])
    np.testing.assert_array_equal(m.labels, np.concatenate([olivetti.labels] * 2))
    assert all(not np.array_equal(m.images[400 + i], olivetti.images[i]) for i in range(400))
    assert not np.array_equal(m.images[400:], olivetti.images[::-1])  # not the notebook's X[::-1]
    # a mirror of a mirror is the original
    np.testing.assert_array_equal(
        mirror(m.subset(np.arange(400, 800))).images[400:], olivetti.images
    )


def test_split_holds_out_the_last_people_and_their_mirrors(olivetti):
    assert default_split("olivetti") == {"holdout_people": 4}
    train, held = split(olivetti, **default_split("olivetti"))
    assert set(held.labels.tolist()) == {36, 37, 38, 39} and len(held) == 40
    assert len(train) == 360 and not set(train.labels.tolist()) & {36, 37, 38, 39}
    np.testing.assert_array_equal(held.images, olivetti.images[360:])
    train_m, held_m = mirror(train), mirror(held)
    assert len(train_m) == 720 and len(held_m) == 80
    assert not set(train_m.labels.tolist()) & {36, 37, 38, 39}
    held_set = {img.tobytes() for img in held_m.images}
    assert not any(img.tobytes() in held_set for img in train_m.images)
    for bad in (0, 40, -1, 1.5):
        with pytest.raises(
            ValueError, match=rf"holdout_people={bad} is not valid; expected 1 to 39"
        ):
            split(olivetti, holdout_people=bad)
    unlabelled = ImageSet(olivetti.images, None, "faces")
    with pytest.raises(ValueError, match="holdout_people=4 needs labels and faces has none"):
        split(unlabelled, holdout_people=4)


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
