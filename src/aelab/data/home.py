"""Where downloaded data sets are cached: the data home."""

from __future__ import annotations

import os
from pathlib import Path


def _data_home_path(data_home: str | os.PathLike | None) -> Path:
    if data_home is None:
        data_home = os.environ.get("AELAB_DATA_HOME") or None
    if data_home is None:  # scikit-learn's rule, without creating the folder
        data_home = os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))
    return Path(data_home).expanduser()


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The folder where data sets are cached, created if missing.

    Parameters
    ----------
    data_home : str or path-like, optional
        Wins over the ``AELAB_DATA_HOME`` environment variable, which wins over scikit-learn's
        data home (``$SCIKIT_LEARN_DATA`` or ``~/scikit_learn_data``).

    Returns
    -------
    Path
    """
    path = _data_home_path(data_home)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"data_home='{path}' is a file; expected a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path
