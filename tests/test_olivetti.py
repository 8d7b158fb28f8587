"""The workshop's faces: the original file shipped inside aelab (read first, checked), reading
it (never unpickling, writing nothing), the data home and the download for an install without
it, the split by people and true mirrors."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import io
import os
import re
import shutil
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError, URLError

import joblib
import numpy as np
import pytest
from scipy.io import loadmat, savemat

import aelab.data.olivetti as olivetti_module
from aelab.data import (
    DATASETS,
    OLIVETTI_MAT,
    ImageSet,
    default_split,
    get_data_home,
    load_dataset,
    load_olivetti,
    mirror,
    split,
)
from aelab.data.olivetti import (
    DOWNLOAD_TIMEOUT_S,
    OLIVETTI_SHA256,
    OLIVETTI_URL,
    PACKAGED_SHA256,
    packaged_mat,
)

SKLEARN_CACHE = "olivetti_py3.pkz"  # the pickle scikit-learn's fetcher caches the faces in
# the SHA-256 of the copy aelab ships, written down here apart from the code that checks it
SHIPPED_SHA256 = "b1988d02c72fe5b8ee82b5ef3bb7982eafc74f1e1ff0ae0ade35061ad0af534d"

# -- watching the file system ------------------------------------------------------------------
# An audit hook (PEP 578) sees every open, rename, remove, mkdir... the process makes, whatever
# library makes it. It records those under a watched folder and, for a read-only watch, refuses
# the writing ones with EROFS: the tests run as root, where permission bits stop no write.

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_ARGS = {  # event: how many leading arguments may be paths
    "open": 1,
    "os.rename": 2,
    "os.remove": 1,
    "os.mkdir": 1,
    "os.rmdir": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.truncate": 1,
    "os.utime": 1,
    "os.link": 2,
    "os.symlink": 2,
}


@dataclass(eq=False)
class _Watch:
    root: str
    read_only: bool
    events: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)


_WATCHES: list[_Watch] = []


def _audit(event: str, args: tuple) -> None:
    if not _WATCHES or event not in _PATH_ARGS:
        return
    paths = tuple(
        os.path.abspath(os.fsdecode(a))
        for a in args[: _PATH_ARGS[event]]
        if isinstance(a, (str, bytes, os.PathLike))
    )
    writing = event != "open" or bool(args[2] & _WRITE_FLAGS)
    for watch in _WATCHES:
        if any(p == watch.root or p.startswith(watch.root + os.sep) for p in paths):
            watch.events.append((event, paths, writing))
            if writing and watch.read_only:
                raise OSError(errno.EROFS, "Read-only file system (test)", paths[0])


sys.addaudithook(_audit)


@contextlib.contextmanager
def watching(folder: Path, *, read_only: bool = False):
    """Record (event, paths, writing) for what touches ``folder``; refuse writes if read_only."""
    watch = _Watch(os.path.abspath(folder), read_only)
    _WATCHES.append(watch)
    try:
        yield watch.events
    finally:
        _WATCHES.remove(watch)


def test_the_watch_sees_and_refuses_writes(tmp_path):
    """The watch itself: it records opens (reading or writing) and renames, and a read-only
    watch makes writing impossible even as root."""
    (tmp_path / "a").write_bytes(b"a")
    with watching(tmp_path) as events:
        (tmp_path / "a").read_bytes()
        (tmp_path / "b").write_bytes(b"b")
        os.replace(tmp_path / "b", tmp_path / "c")
    a, b, c = (str(tmp_path / n) for n in "abc")
    assert [(e, p, w) for e, p, w in events] == [
        ("open", (a,), False),
        ("open", (b,), True),
        ("os.rename", (b, c), True),
    ]
    with watching(tmp_path, read_only=True) as events:
        with pytest.raises(OSError, match="Read-only file system"):
            (tmp_path / "d").write_bytes(b"d")
        with pytest.raises(OSError, match="Read-only file system"):
            (tmp_path / "a").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]


# -- a planted pickle --------------------------------------------------------------------------


class _Plant:
    """Unpickling this writes ``marker``: what a planted pickle could do (or worse)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def plant_pickle(path: Path, marker: Path) -> None:
    """Write at ``path`` a joblib pickle as scikit-learn's cache is, whose loading writes
    ``marker``; checked on a copy, so that a test relying on it can fail."""
    joblib.dump(_Plant(marker), path, compress=6)
    probe = marker.with_name(marker.name + ".probe.pkz")
    shutil.copy(path, probe)
    joblib.load(probe)
    assert marker.read_text() == "unpickled", "the planted pickle does nothing"
    marker.unlink()
    probe.unlink()


# -- a fake network ----------------------------------------------------------------------------


class _Response(io.BytesIO):
    """Serves ``data``; after ``fail_after`` reads, raises ``error`` (a transfer cut short)."""

    def __init__(self, data: bytes, error: BaseException | None = None, fail_after: int = 1):
        super().__init__(data)
        self.error, self.fail_after, self.reads = error, fail_after, 0

    def read(self, size=-1):
        if self.error is not None and self.reads >= self.fail_after:
            raise self.error
        self.reads += 1
        return super().read(size)


@pytest.fixture
def network(olivetti_mat, monkeypatch):
    """``urllib.request.urlopen`` replaced: it records ``(url, timeout)`` and serves the shipped
    file's bytes, or raises ``network.error`` (at opening or, with ``network.during_read``, in
    the middle of the transfer)."""

    class Network:
        def __init__(self):
            self.calls: list[tuple[str, float | None]] = []
            self.data = olivetti_mat.read_bytes()
            self.error: BaseException | None = None
            self.during_read = False

        def urlopen(self, url, data=None, timeout=None, **kwargs):
            self.calls.append((url, timeout))
            if self.error is not None and not self.during_read:
                raise self.error
            return _Response(self.data, self.error if self.during_read else None)

    net = Network()
    monkeypatch.setattr(urllib.request, "urlopen", net.urlopen)
    return net


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: mtime, size and checksum."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size, sha256(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- Olivetti ----------------------------------------------------------------------------------


@pytest.fixture
def without_packaged_copy(tmp_path, monkeypatch):
    """aelab as a trimmed install leaves it, without its own olivettifaces.mat: the data home
    and the download are what is read."""
    monkeypatch.setattr(olivetti_module, "packaged_mat", lambda: tmp_path / "not-installed.mat")


@pytest.fixture(scope="module")
def olivetti_copy(olivetti_home, tmp_path_factory):
    """A private data home holding only olivettifaces.mat."""
    home = tmp_path_factory.mktemp("olivetti_home")
    shutil.copy(olivetti_home / OLIVETTI_MAT, home / OLIVETTI_MAT)
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
    """aelab ships olivettifaces.mat inside the package, so that olivetti loads offline
    everywhere: its checksum is the one written down here, its attribution beside it, and it is
    the repository's only copy (the tests read the package's)."""
    from conftest import SHIPPED_MAT

    mat = Path(str(packaged_mat()))
    assert mat == SHIPPED_MAT and mat.parent == Path(olivetti_module.__file__).parent
    assert sha256(mat) == SHIPPED_SHA256 == PACKAGED_SHA256
    about = (mat.parent / "olivettifaces.txt").read_text()
    assert "AT&T Laboratories Cambridge" in about and SHIPPED_SHA256 in about
    faces = loadmat(mat)["faces"]
    assert faces.shape == (4096, 400) and faces.dtype == np.uint8
    assert not list(Path(__file__).parent.rglob("*.mat"))


def test_olivetti_from_the_mat_matches_an_independent_reading(
    olivetti, olivetti_copy, expected_faces
):
    assert olivetti.images.shape == (400, 1, 64, 64)
    assert olivetti.images.dtype == np.float32 and olivetti.images.flags.c_contiguous
    assert olivetti.labels.dtype == np.int64
    np.testing.assert_array_equal(olivetti.labels, np.arange(400) // 10)
    np.testing.assert_allclose(olivetti.images[:, 0], expected_faces, atol=1e-6)
    assert abs(olivetti.images.mean() - 0.547043) < 1e-5
    assert olivetti.name == "olivetti" and olivetti.image_shape == (1, 64, 64)
    assert olivetti.notes == []
    # reading wrote nothing beside the .mat (no scikit-learn cache)
    assert sorted(p.name for p in olivetti_copy.iterdir()) == [OLIVETTI_MAT]
    # again, from the data home's copy: the same result, and the only file touched there is its
    # .mat, read
    with watching(olivetti_copy) as events:
        again = load_olivetti(olivetti_copy, download=False, packaged=False)
    np.testing.assert_array_equal(again.images, olivetti.images)
    np.testing.assert_array_equal(again.labels, olivetti.labels)
    assert again.notes == []
    assert events == [("open", (str(olivetti_copy / OLIVETTI_MAT),), False)]


def test_the_packaged_copy_comes_first_and_needs_no_data_home(olivetti, tmp_path, network):
    """The package's own copy is read before any data home: a data home that does not exist, or
    one holding another olivettifaces.mat, is not touched, nothing is downloaded, and olivetti
    says it loads offline; packaged=False reads the data home's file."""
    missing = tmp_path / "missing"
    with watching(tmp_path) as events:
        assert DATASETS["olivetti"].available(missing)
        for download in (False, True):
            data = load_dataset("olivetti", data_home=missing, download=download)
            np.testing.assert_array_equal(data.images, olivetti.images)
            assert data.notes == []
    assert events == [] and not missing.exists() and network.calls == []
    other = tmp_path / "other"
    other.mkdir()
    rng = np.random.default_rng(1)
    savemat(other / OLIVETTI_MAT, {"faces": rng.integers(0, 256, (4096, 400), dtype=np.uint8)})
    np.testing.assert_array_equal(load_olivetti(other).images, olivetti.images)
    theirs = load_olivetti(other, packaged=False)
    assert not np.array_equal(theirs.images, olivetti.images) and network.calls == []


def test_a_damaged_packaged_copy_is_not_read(olivetti, olivetti_mat, tmp_path, monkeypatch):
    """A packaged copy whose SHA-256 is not the one aelab records is not read: the data home's
    copy is, with a note naming the damage; without one, the error names it too."""
    monkeypatch.setattr(olivetti_module, "PACKAGED_SHA256", "0" * 64)
    home = tmp_path / "home"
    home.mkdir()
    assert not DATASETS["olivetti"].available(home)
    damaged = rf"aelab's own olivettifaces.mat \(.*\) has SHA-256 {SHIPPED_SHA256}, expected 0+"
    with pytest.raises(FileNotFoundError, match=rf"olivetti is not in data home .*; {damaged}"):
        load_olivetti(home, download=False)
    shutil.copy(olivetti_mat, home / OLIVETTI_MAT)
    assert DATASETS["olivetti"].available(home)
    data = load_olivetti(home, download=False)
    np.testing.assert_array_equal(data.images, olivetti.images)
    assert len(data.notes) == 1
    assert re.fullmatch(damaged + r".*; reading the data home's copy instead", data.notes[0])


@pytest.mark.parametrize("source", ["shipped", "synthetic"])
def test_olivetti_is_exactly_what_scikit_learns_fetcher_gives(
    olivetti, olivetti_mat, tmp_path, monkeypatch, source
):
    """Bit for bit the fetcher's images and labels, its download served from the same file in a
    home of its own: the shipped one, and one whose pixels span 17 to 200 (the shipped faces
    start at 0, so only this one shows the scaling by the array's own minimum). And
    OLIVETTI_URL / OLIVETTI_SHA256 are scikit-learn's record."""
    import sklearn.datasets._olivetti_faces as sk

    assert (sk.FACES.filename, sk.FACES.url, sk.FACES.checksum) == (
        OLIVETTI_MAT,
        OLIVETTI_URL,
        OLIVETTI_SHA256,
    )
    if source == "shipped":
        mat, ours = olivetti_mat, olivetti
    else:
        mat = tmp_path / "ours" / OLIVETTI_MAT
        mat.parent.mkdir()
        rng = np.random.default_rng(0)
        savemat(mat, {"faces": rng.integers(17, 201, size=(4096, 400), dtype=np.uint8)})
        ours = load_olivetti(mat.parent, download=False, packaged=False)
        assert ours.images.min() == 0 and ours.images.max() == 1

    def fetch_remote(remote, dirname=None, **kwargs):
        path = Path(dirname) / remote.filename  # the fetcher deletes it after reading
        shutil.copy(mat, path)
        return path

    monkeypatch.setattr(sk, "_fetch_remote", fetch_remote)
    bunch = sk.fetch_olivetti_faces(data_home=str(tmp_path / "sk"), shuffle=False)
    assert bunch.images.dtype == ours.images.dtype
    np.testing.assert_array_equal(ours.images[:, 0], bunch.images)
    np.testing.assert_array_equal(ours.labels, bunch.target)


def test_olivetti_availability_and_missing_data(
    olivetti_mat, tmp_path, network, without_packaged_copy
):
    home = tmp_path / "home"
    assert not DATASETS["olivetti"].available(home)
    assert not home.exists()  # asking creates nothing
    assert DATASETS["mnist"].available(home) and DATASETS["digits"].available(home)
    pattern = f"olivetti is not in data home {re.escape(str(home))}.*put olivettifaces.mat there"
    with pytest.raises(FileNotFoundError, match=pattern):
        load_olivetti(home, download=False)
    assert not home.exists() and network.calls == []  # a miss creates nothing, downloads nothing
    home.mkdir()
    shutil.copy(olivetti_mat, home / OLIVETTI_MAT)
    assert DATASETS["olivetti"].available(home)
    assert len(load_olivetti(home, download=False)) == 400
    assert len(load_olivetti(home)) == 400 and network.calls == []  # there: no download
    # scikit-learn's cache is not the data set: never read, even holding the right faces
    (home / OLIVETTI_MAT).unlink()
    joblib.dump(loadmat(olivetti_mat)["faces"].T.copy(), home / SKLEARN_CACHE, compress=6)
    assert not DATASETS["olivetti"].available(home)
    with pytest.raises(FileNotFoundError, match=pattern):
        load_olivetti(home, download=False)
    # a data home that is a file
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"data_home=.*file.* is a file"):
        load_olivetti(tmp_path / "file", download=False)


def test_olivetti_never_opens_a_planted_pickle(
    olivetti, olivetti_mat, tmp_path, network, monkeypatch, without_packaged_copy
):
    """A data home named by a run's config.json may hold a malicious olivetti_py3.pkz: it is
    never opened, whether olivettifaces.mat is there or not (then downloaded)."""
    home, marker = tmp_path / "home", tmp_path / "marker"
    home.mkdir()
    shutil.copy(olivetti_mat, home / OLIVETTI_MAT)
    plant_pickle(home / SKLEARN_CACHE, marker)
    pkz = str(home / SKLEARN_CACHE)
    with watching(home) as events:
        data = load_olivetti(home)
        np.testing.assert_array_equal(data.images, olivetti.images)
        assert DATASETS["olivetti"].available(home)
        # the .mat missing: not available, and download=False stops before anything is read
        (home / OLIVETTI_MAT).unlink()
        assert not DATASETS["olivetti"].available(home)
        with pytest.raises(FileNotFoundError, match="olivetti is not in data home"):
            load_olivetti(home, download=False)
        # download=True downloads the .mat and reads it, not the pickle
        monkeypatch.setattr(olivetti_module, "OLIVETTI_SHA256", sha256(olivetti_mat))
        data = load_olivetti(home)
        np.testing.assert_array_equal(data.images, olivetti.images)
    assert len(network.calls) == 1
    assert not marker.exists()
    assert not [e for e in events if pkz in e[1]]
    assert (home / SKLEARN_CACHE).is_file()  # left as it was


def test_olivetti_mat_that_is_not_the_original_is_an_error(tmp_path):
    """A pickle named olivettifaces.mat is not unpickled (loadmat reads arrays only), and a
    MATLAB file without the right ``faces`` is an error naming it."""
    mat, marker = tmp_path / OLIVETTI_MAT, tmp_path / "marker"
    plant_pickle(mat, marker)
    with pytest.raises(ValueError, match=rf"cannot read {re.escape(str(mat))}: .*original"):
        load_olivetti(tmp_path, download=False, packaged=False)
    assert not marker.exists()
    savemat(mat, {"faces": np.zeros((10, 10), np.uint8)})
    shape = r"holds faces of shape \(10, 10\); expected \(4096, 400\)"
    with pytest.raises(ValueError, match=shape):
        load_olivetti(tmp_path, download=False, packaged=False)
    savemat(mat, {"pictures": np.zeros((4096, 400), np.uint8)})
    with pytest.raises(ValueError, match=r"cannot read .*'faces'"):
        load_olivetti(tmp_path, download=False, packaged=False)


def test_olivetti_read_only_home_loads_the_mat_and_writes_nothing(
    olivetti, olivetti_mat, tmp_path, network, without_packaged_copy
):
    """A read-only data home (mode 0o500, and writes refused outright: root ignores the mode)
    loads from the .mat, touching nothing; without the .mat, the download fails cleanly."""
    home = tmp_path / "ro"
    home.mkdir()
    shutil.copy(olivetti_mat, home / OLIVETTI_MAT)
    before = snapshot(home)
    home.chmod(0o500)
    try:
        with watching(home, read_only=True) as events:
            for download in (False, True):
                data = load_olivetti(home, download=download)
                np.testing.assert_array_equal(data.images, olivetti.images)
                np.testing.assert_array_equal(data.labels, olivetti.labels)
                assert data.notes == []
        assert events == [("open", (str(home / OLIVETTI_MAT),), False)] * 2
        assert snapshot(home) == before and network.calls == []
        # without the .mat, download=True cannot write its temporary file: an error naming the
        # home and saying where to put the file, not a traceback; nothing is left
        home.chmod(0o700)
        (home / OLIVETTI_MAT).unlink()
        home.chmod(0o500)
        pattern = (
            rf"could not download {re.escape(OLIVETTI_URL)} into data home "
            rf"{re.escape(str(home))} \(.*Read-only file system.*\); put olivettifaces.mat there"
        )
        with watching(home, read_only=True), pytest.raises(FileNotFoundError, match=pattern):
            load_olivetti(home)
        assert list(home.iterdir()) == []
    finally:
        home.chmod(0o700)


def test_olivetti_download_verifies_then_renames_into_place(
    olivetti, olivetti_mat, tmp_path, network, monkeypatch, capsys, without_packaged_copy
):
    """The missing .mat is downloaded from scikit-learn's address, with a timeout, into a
    temporary file in the data home, checked, then renamed; the library prints nothing."""
    monkeypatch.setattr(olivetti_module, "OLIVETTI_SHA256", sha256(olivetti_mat))
    home = tmp_path / "new" / "home"  # created to download into
    with watching(tmp_path) as events:
        data = load_olivetti(home)
    assert network.calls == [(OLIVETTI_URL, DOWNLOAD_TIMEOUT_S)] and 0 < DOWNLOAD_TIMEOUT_S < 600
    np.testing.assert_array_equal(data.images, olivetti.images)
    np.testing.assert_array_equal(data.labels, olivetti.labels)
    assert data.notes == [f"downloaded olivettifaces.mat from {OLIVETTI_URL} into {home}"]
    assert capsys.readouterr() == ("", "")
    assert sorted(p.name for p in home.iterdir()) == [OLIVETTI_MAT]
    assert (home / OLIVETTI_MAT).read_bytes() == olivetti_mat.read_bytes()
    # written only under a temporary name in the home, then renamed: never a partial .mat
    target = str(home / OLIVETTI_MAT)
    writes = [paths[0] for event, paths, writing in events if event == "open" and writing]
    assert len(writes) == 1 and writes[0] != target and Path(writes[0]).parent == home
    renames = [paths for event, paths, _ in events if event == "os.rename"]
    assert renames == [(writes[0], target)]
    first_use = next(i for i, (_, paths, _) in enumerate(events) if target in paths)
    assert events[first_use][0] == "os.rename"
    # the next load reads it: no network
    network.error = URLError("offline")
    again = load_olivetti(home)
    np.testing.assert_array_equal(again.images, olivetti.images)
    assert again.notes == [] and len(network.calls) == 1


def test_olivetti_download_with_a_wrong_checksum_keeps_nothing(
    olivetti_mat, tmp_path, network, without_packaged_copy
):
    """The copy aelab ships was re-saved: served for scikit-learn's address it fails the check
    against scikit-learn's recorded checksum, and nothing is left in the data home."""
    home = tmp_path / "home"
    actual = sha256(olivetti_mat)
    assert actual != OLIVETTI_SHA256 and olivetti_module.OLIVETTI_SHA256 == OLIVETTI_SHA256
    pattern = rf"{re.escape(OLIVETTI_URL)} has SHA-256 {actual}, expected {OLIVETTI_SHA256}"
    with pytest.raises(ValueError, match=pattern + ".*put olivettifaces.mat there"):
        load_olivetti(home)
    assert network.calls == [(OLIVETTI_URL, DOWNLOAD_TIMEOUT_S)]
    assert list(home.iterdir()) == [] and not DATASETS["olivetti"].available(home)


@pytest.mark.parametrize(
    ("error", "during_read", "reason"),
    [
        (URLError("Name or service not known"), False, "Name or service not known"),
        (HTTPError(OLIVETTI_URL, 503, "Service Unavailable", {}, None), False, "503"),
        (TimeoutError("The read operation timed out"), True, "timed out"),
        (http.client.IncompleteRead(b"partial", 100), True, "IncompleteRead"),
    ],
    ids=["no-network", "http-error", "timeout-mid-transfer", "cut-short"],
)
def test_olivetti_download_failure_names_the_home_and_keeps_nothing(
    tmp_path, network, error, during_read, reason, without_packaged_copy
):
    home = tmp_path / "home"
    network.error, network.during_read = error, during_read
    pattern = (
        rf"olivetti: could not download {re.escape(OLIVETTI_URL)} into data home "
        rf"{re.escape(str(home))} \(.*{reason}.*\); put olivettifaces.mat there"
    )
    with pytest.raises(FileNotFoundError, match=pattern):
        load_olivetti(home)
    assert len(network.calls) == 1
    assert list(home.iterdir()) == []  # no partial file, no temporary file


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
