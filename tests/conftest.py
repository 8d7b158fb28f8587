"""Shared fixtures: the original Olivetti file (the copy shipped inside aelab), a data home holding
it, the pixel cache in a folder of the session, a small workshop, a server on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from aelab.data.olivetti import packaged_mat

# the repository's one copy of olivettifaces.mat is the package's own (src/aelab/data/)
SHIPPED_MAT = Path(str(packaged_mat()))


# fixtures that train a workshop: a test that needs one is in the slow tier, wherever it is
TRAINING_FIXTURES = {"workshop", "seeded"}


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects by the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _own_pixel_cache(tmp_path_factory):
    """Streamed folders cache their pixels (aelab.data.cache): in a folder of the test session,
    never in the user's ~/.cache; subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AELAB_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads():
    """Training adapts its thread count to the cores free (aelab.utils.threads), and the count
    changes the last bits of some sums; the tests compare runs bit for bit, so they train with
    the count they start with, as ``AELAB_THREADS=N`` lets a user do (subprocesses inherit it).
    tests/test_threads.py unsets it to test the adaptation."""
    import torch

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AELAB_THREADS", os.environ.get("AELAB_THREADS", str(torch.get_num_threads())))
        yield


def _olivetti_mat_path() -> Path:
    # The original file scikit-learn's fetcher downloads, shipped inside aelab (see
    # src/aelab/data/olivettifaces.txt); AELAB_OLIVETTI_MAT points at another copy.
    env = os.environ.get("AELAB_OLIVETTI_MAT")
    return Path(env) if env else SHIPPED_MAT


@pytest.fixture(scope="session")
def olivetti_mat() -> Path:
    path = _olivetti_mat_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the Olivetti tests need the original olivettifaces.mat "
            "(aelab ships it in src/aelab/data/; AELAB_OLIVETTI_MAT may point at another copy)"
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
    unseen people and 10% of the others' images kept unseen (the anomaly section's usual images;
    3 epochs a model): what test_workshop.py and test_report.py look at."""
    from aelab.cli import main

    out = tmp_path_factory.mktemp("workshop") / "run"
    code = main(["run", "--data", "digits", "--holdout-people", "2", "--normals", "0.1",
                 "--mirror", "--schedule", "quick", "--epochs", "3", "--out", str(out),
                 "--quiet"])  # fmt: skip
    assert code == 0
    return out


@contextlib.contextmanager
def _running_server(app, host: str = "127.0.0.1", **settings):
    """``app`` served on a free port of ``host`` in a thread, by uvicorn set up as
    ``aelab explore`` sets it up (``settings``: ``client_timeout``): yields (host, port)."""
    from aelab.apps.explorer.serve import bind, uvicorn_server

    sock = bind(host, 0)
    server = uvicorn_server(app, **settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="session")
def serve_app():
    """A context manager that serves an ASGI app on a free port (see ``_running_server``)."""
    return _running_server


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where tests leave files for people to look at: $AELAB_TEST_ARTIFACTS, else a temporary
    folder."""
    where = os.environ.get("AELAB_TEST_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
