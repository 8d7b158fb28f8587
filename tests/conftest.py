"""Shared fixtures: the original Olivetti file, shipped with the tests in ``tests/data/``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SHIPPED_MAT = DATA / "olivettifaces.mat"


def _olivetti_mat_path() -> Path:
    # The original file scikit-learn's fetcher downloads, shipped in tests/data/ (see its
    # README.md); AELAB_OLIVETTI_MAT points at another copy.
    env = os.environ.get("AELAB_OLIVETTI_MAT")
    return Path(env) if env else SHIPPED_MAT


@pytest.fixture(scope="session")
def olivetti_mat() -> Path:
    path = _olivetti_mat_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the Olivetti tests need the original olivettifaces.mat "
            "(tests/data/ ships it; AELAB_OLIVETTI_MAT may point at another copy)"
        )
    return path


@pytest.fixture(scope="session")
def olivetti_home(olivetti_mat, tmp_path_factory) -> Path:
    """A data home that holds only the original .mat file, as after a manual download."""
    home = tmp_path_factory.mktemp("data_home")
    shutil.copy(olivetti_mat, home / "olivettifaces.mat")
    return home


@pytest.fixture(scope="session")
def workshop(tmp_path_factory) -> Path:
    """``aelab run``, quick schedule, on scikit-learn's digits, digits 8 and 9 held out like
    unseen people (3 epochs a model): what test_workshop.py and test_report.py look at."""
    from aelab.cli import main

    out = tmp_path_factory.mktemp("workshop") / "run"
    code = main(["run", "--data", "digits", "--holdout-people", "2", "--mirror", "--schedule",
                 "quick", "--epochs", "3", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    return out
