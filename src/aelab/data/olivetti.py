"""The workshop notebook's faces: Olivetti (AT&T Laboratories Cambridge), 400 images 64x64 of 40
people, through scikit-learn's fetcher, prepared offline from the original ``olivettifaces.mat``."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np

from .home import get_data_home
from .images import ImageSet

OLIVETTI_MAT = "olivettifaces.mat"
N_IMAGES, IMAGE_SHAPE = 400, (1, 64, 64)


def _olivetti_cache(home: Path) -> Path:
    try:  # the exact file name scikit-learn's fetcher uses
        from sklearn.datasets._base import _pkl_filepath

        return Path(_pkl_filepath(str(home), "olivetti.pkz"))
    except ImportError:  # pragma: no cover - a future scikit-learn without the helper
        return home / "olivetti_py3.pkz"


def olivetti_available(home: Path) -> bool:
    """Whether the faces load from ``home`` without a network (creates nothing)."""
    return _olivetti_cache(home).is_file() or (home / OLIVETTI_MAT).is_file()


def _read_olivetti_mat(mat: Path) -> np.ndarray:
    """``faces.T`` as scikit-learn's fetcher takes it from the .mat: (n_images, H * W) uint8."""
    from scipy.io import loadmat

    try:
        faces = loadmat(mat)["faces"].T.copy()
    except Exception as e:
        raise ValueError(f"cannot read {mat}: {e}; expected the original olivettifaces.mat") from e
    expected = (N_IMAGES, int(np.prod(IMAGE_SHAPE)))
    if faces.shape != expected:
        raise ValueError(f"{mat} holds faces of shape {faces.T.shape}; expected {expected[::-1]}")
    return faces


def load_olivetti(data_home: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
    """The Olivetti faces: 400 images 64x64 of 40 people, label ``i // 10`` for image ``i``.

    Loaded through :func:`sklearn.datasets.fetch_olivetti_faces` (``shuffle=False``), which
    downloads once into the data home. Offline, put the original ``olivettifaces.mat`` in the data
    home: scikit-learn's cache is prepared from it exactly as the fetcher does (same pixels,
    orientation and labels).

    Parameters
    ----------
    data_home : str or path-like, optional
        See :func:`get_data_home`.
    download : bool, default=True
        Whether to download when neither the cache nor ``olivettifaces.mat`` is there.

    Returns
    -------
    ImageSet
    """
    import joblib
    from sklearn.datasets import fetch_olivetti_faces

    home = get_data_home(data_home)
    cache, mat = _olivetti_cache(home), home / OLIVETTI_MAT
    notes: list[str] = []
    if not cache.is_file() and mat.is_file():
        faces = _read_olivetti_mat(mat)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        try:  # what the fetcher does after its download; written atomically
            joblib.dump(faces, tmp, compress=6)
            os.replace(tmp, cache)
            notes.append(f"prepared scikit-learn's Olivetti cache {cache} from {mat}")
        except OSError as e:  # a read-only data home: the fetcher's own steps, in memory
            tmp.unlink(missing_ok=True)
            images = np.float32(faces)
            images -= images.min()
            images /= images.max()
            _, h, w = IMAGE_SHAPE
            images = images.reshape(-1, h, w).transpose(0, 2, 1)[:, None]
            labels = np.arange(len(images), dtype=np.int64) // 10  # 10 images per person
            notes.append(f"could not write the Olivetti cache ({e}); read {mat} directly")
            return ImageSet(np.ascontiguousarray(images), labels, "olivetti", notes=notes)
    where = f"put {OLIVETTI_MAT} there (https://cs.nyu.edu/~roweis/data/{OLIVETTI_MAT})"
    if not cache.is_file() and not download:
        raise FileNotFoundError(f"olivetti is not in data home {home} and download=False; {where}")
    printed = io.StringIO()
    try:
        # the fetcher prints and warns on retries; the library does neither
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Retry downloading")
            bunch = fetch_olivetti_faces(
                data_home=str(home), shuffle=False, download_if_missing=download
            )
    except OSError as e:
        reason = " ".join(str(e).split())
        raise FileNotFoundError(
            f"olivetti: could not download into data home {home} ({reason}); {where}"
        ) from e
    notes += [line for line in printed.getvalue().splitlines() if line.strip()]
    images = np.ascontiguousarray(bunch.images[:, None], dtype=np.float32)
    return ImageSet(images, bunch.target.astype(np.int64), "olivetti", notes=notes)
