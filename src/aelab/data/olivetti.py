"""The workshop notebook's faces: Olivetti (AT&T Laboratories Cambridge), 400 images 64x64 of 40
people, read from the original MATLAB file ``olivettifaces.mat``.

A copy of the file ships inside this package (``olivettifaces.mat`` beside this module, its
attribution in ``olivettifaces.txt``), so the faces load offline everywhere; its SHA-256 is
checked each time it is read (:data:`PACKAGED_SHA256`). When that copy is missing or damaged,
or the caller asks for the data home (``packaged=False``), the file is read from the data home,
and a missing one is downloaded once from the address scikit-learn uses and kept only if its
SHA-256 is the one scikit-learn records for it.

The file is read with :func:`scipy.io.loadmat`, which reads arrays and nothing else: nothing is
ever unpickled, and scikit-learn's fetcher (which caches the faces as a joblib pickle,
``olivetti_py3.pkz``) is never called, so a pickle planted in a data home named by a run's
``config.json`` is never opened. The pixels, orientation and labels are exactly those
:func:`sklearn.datasets.fetch_olivetti_faces` gives. Reading writes nothing (a read-only data home
is fine).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np

from .home import _data_home_path, get_data_home
from .images import ImageSet

OLIVETTI_MAT = "olivettifaces.mat"
N_IMAGES, IMAGE_SHAPE = 400, (1, 64, 64)
# scikit-learn's record of the file (sklearn.datasets._olivetti_faces.FACES)
OLIVETTI_URL = "https://ndownloader.figshare.com/files/5976027"
OLIVETTI_SHA256 = "b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794"
_ORIGINAL_URL = f"https://cs.nyu.edu/~roweis/data/{OLIVETTI_MAT}"  # where it first came from
# the copy shipped in this package: re-saved by whoever redistributed it, so not scikit-learn's
# checksum, but the same pixel array (olivettifaces.txt beside it)
PACKAGED_SHA256 = "b1988d02c72fe5b8ee82b5ef3bb7982eafc74f1e1ff0ae0ade35061ad0af534d"
DOWNLOAD_TIMEOUT_S = 60.0  # for connecting and for each read
_CHUNK = 1 << 16


def packaged_mat() -> resources.abc.Traversable:
    """Where the package's own ``olivettifaces.mat`` is (it may be missing from a trimmed
    install); :func:`resources.as_file` gives a path for other programs."""
    return resources.files(__package__) / OLIVETTI_MAT


def _packaged_bytes() -> tuple[bytes | None, str | None]:
    """The packaged file's bytes when it is there and its SHA-256 is :data:`PACKAGED_SHA256`;
    otherwise None and why (None when it is simply absent)."""
    mat = packaged_mat()
    try:
        data = mat.read_bytes()
    except OSError:
        return None, None
    digest = hashlib.sha256(data).hexdigest()
    if digest != PACKAGED_SHA256:
        return None, (
            f"aelab's own {OLIVETTI_MAT} ({mat}) has SHA-256 {digest}, expected "
            f"{PACKAGED_SHA256}: the installation is damaged (reinstall aelab)"
        )
    return data, None


def olivetti_available(home: Path) -> bool:
    """Whether the faces load without a network: the package's own copy is there and intact, or
    ``home`` holds ``olivettifaces.mat`` (creates nothing)."""
    return _packaged_bytes()[0] is not None or (Path(home) / OLIVETTI_MAT).is_file()


def _read_olivetti_mat(mat: Path | IO[bytes], name: object = None) -> np.ndarray:
    """``faces.T`` as scikit-learn's fetcher takes it from the .mat: (n_images, H * W) uint8.
    ``name`` names a file object in errors."""
    from scipy.io import loadmat  # reads MATLAB arrays; never unpickles

    mat_name = mat if name is None else name
    try:
        faces = loadmat(mat, variable_names=["faces"])["faces"].T.copy()
    except Exception as e:
        raise ValueError(
            f"cannot read {mat_name}: {e}; expected the original olivettifaces.mat"
        ) from e
    expected = (N_IMAGES, int(np.prod(IMAGE_SHAPE)))
    if faces.shape != expected:
        raise ValueError(
            f"{mat_name} holds faces of shape {faces.T.shape}; expected {expected[::-1]}"
        )
    return faces


def _download_mat(home: Path, where: str) -> Path:
    """Download ``olivettifaces.mat`` into ``home``: into a temporary file there, kept (renamed
    atomically) only when its SHA-256 is scikit-learn's; nothing is left behind otherwise."""
    target = home / OLIVETTI_MAT
    tmp: Path | None = None
    try:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{OLIVETTI_MAT}.", suffix=".part", dir=home)
            tmp = Path(name)
            digest = hashlib.sha256()
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(OLIVETTI_URL, timeout=DOWNLOAD_TIMEOUT_S) as response,
            ):
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, EROFS, ...
            reason = " ".join(str(e).split()) or type(e).__name__
            raise FileNotFoundError(
                f"olivetti: could not download {OLIVETTI_URL} into data home {home} ({reason}); "
                f"{where}"
            ) from e
        if digest.hexdigest() != OLIVETTI_SHA256:
            raise ValueError(
                f"olivetti: the file downloaded from {OLIVETTI_URL} has SHA-256 "
                f"{digest.hexdigest()}, expected {OLIVETTI_SHA256}; it was not kept; {where}"
            )
        try:
            os.replace(tmp, target)
        except OSError as e:
            raise FileNotFoundError(
                f"olivetti: could not save {target} in data home {home} ({e}); {where}"
            ) from e
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return target


def load_olivetti(
    data_home: str | os.PathLike | None = None, download: bool = True, packaged: bool = True
) -> ImageSet:
    """The Olivetti faces: 400 images 64x64 of 40 people, label ``i // 10`` for image ``i``.

    Reads the original MATLAB file ``olivettifaces.mat`` with :func:`scipy.io.loadmat`, and
    nothing else: nothing is unpickled, and scikit-learn's cache ``olivetti_py3.pkz`` is ignored
    (never opened). First the copy shipped inside aelab (:func:`packaged_mat`, checked against
    :data:`PACKAGED_SHA256`), so nothing else is needed; when it is missing or damaged (a note
    says so), or ``packaged`` is false, ``<data_home>/olivettifaces.mat``. The images are exactly
    those of :func:`sklearn.datasets.fetch_olivetti_faces` (``shuffle=False``): float32, min-max
    scaled to [0, 1], same orientation and labels. Reading writes nothing, so the data home may
    be read-only.

    When the data home's file is needed but missing and ``download`` is true, it is downloaded
    from the address scikit-learn uses (:data:`OLIVETTI_URL`) into a temporary file in the data
    home, and kept, renamed atomically to ``olivettifaces.mat``, only if its SHA-256 is
    scikit-learn's record (:data:`OLIVETTI_SHA256`).

    Parameters
    ----------
    data_home : str or path-like, optional
        See :func:`get_data_home`. Read only when the packaged copy is not used; created only to
        download into.
    download : bool, default=True
        Whether to download ``olivettifaces.mat`` when it is needed and not in the data home.
    packaged : bool, default=True
        Whether to read the copy shipped inside aelab first.

    Returns
    -------
    ImageSet
        ``notes`` says when the packaged copy was damaged, and when the file was downloaded.

    Raises
    ------
    FileNotFoundError
        The data home's file is needed, missing, and ``download`` is false, or the download
        failed (network, or a data home that cannot be written).
    ValueError
        The downloaded file's SHA-256 is not scikit-learn's (nothing is kept), or the file is not
        the original ``olivettifaces.mat``.
    """
    notes: list[str] = []
    data, damaged = _packaged_bytes() if packaged else (None, None)
    if damaged:
        notes.append(f"{damaged}; reading the data home's copy instead")
    if data is not None:
        faces = _read_olivetti_mat(io.BytesIO(data), packaged_mat())
    else:
        faces = _read_olivetti_mat(_data_home_mat(data_home, download, notes, damaged))
    # scikit-learn's fetcher's own steps after reading the file
    images = np.float32(faces)
    images -= images.min()
    images /= images.max()
    _, h, w = IMAGE_SHAPE
    images = images.reshape(-1, h, w).transpose(0, 2, 1)[:, None]
    labels = np.arange(len(images), dtype=np.int64) // 10  # 10 images per person
    return ImageSet(np.ascontiguousarray(images), labels, "olivetti", notes=notes)


def _data_home_mat(
    data_home: str | os.PathLike | None, download: bool, notes: list[str], damaged: str | None
) -> Path:
    """The data home's ``olivettifaces.mat``, downloaded into it when missing and allowed."""
    home = _data_home_path(data_home)
    if home.exists() and not home.is_dir():
        get_data_home(home)  # raises NotADirectoryError naming it
    mat = home / OLIVETTI_MAT
    where = f"put {OLIVETTI_MAT} there ({OLIVETTI_URL} or {_ORIGINAL_URL})"
    if damaged:
        where += f"; {damaged}"
    if not mat.is_file():
        if not download:
            raise FileNotFoundError(
                f"olivetti is not in data home {home} and download=False; {where}"
            )
        mat = _download_mat(get_data_home(home), where)
        notes.append(f"downloaded {OLIVETTI_MAT} from {OLIVETTI_URL} into {home}")
    return mat
