"""The workshop's faces: the shipped original file, reading it offline, the data home, the
split by people and true mirrors."""

from __future__ import annotations

import re
import shutil
from urllib.error import URLError

import joblib
import numpy as np
import pytest
from scipy.io import loadmat

from aelab.data import (
    DATASETS,
    ImageSet,
    default_split,
    get_data_home,
    load_dataset,
    load_olivetti,
    mirror,
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
