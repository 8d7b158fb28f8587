"""Shared fixtures: the original Olivetti file, kept beside the repository."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _olivetti_mat_path() -> Path:
    # The original file scikit-learn's fetcher downloads; CI keeps it in ../shared/data beside the
    # repository. AELAB_OLIVETTI_MAT points elsewhere.
    env = os.environ.get("AELAB_OLIVETTI_MAT")
    return Path(env) if env else REPO.parent / "shared" / "data" / "olivettifaces.mat"


@pytest.fixture(scope="session")
def olivetti_mat() -> Path:
    path = _olivetti_mat_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the Olivetti tests need the original olivettifaces.mat "
            "(set AELAB_OLIVETTI_MAT to its path)"
        )
    return path


@pytest.fixture(scope="session")
def olivetti_home(olivetti_mat, tmp_path_factory) -> Path:
    """A data home that holds only the original .mat file, as after a manual download."""
    home = tmp_path_factory.mktemp("data_home")
    shutil.copy(olivetti_mat, home / "olivettifaces.mat")
    return home
