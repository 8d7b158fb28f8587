"""aelab as a package, not a checkout: the wheel built from the sources, installed into a fresh
virtual environment, trains, reports and prints its version from a folder that is not the
checkout (templates, static files and the data it needs all inside the wheel, the Olivetti faces
once, read offline from an empty data home)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import aelab

pytestmark = pytest.mark.slow  # trains, kills, builds or starts a browser

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cwd, env=None):
    # never the caller's PYTHONPATH: it would put sources before the installed wheel
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "PYTHONPATH"}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_the_wheel_works_outside_the_checkout(tmp_path):
    src = tmp_path / "src-copy"  # build from a copy: the checkout gains no build/ folder
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)], src)
    (wheel,) = dist.glob("aelab-*.whl")
    assert wheel.name.startswith(f"aelab-{aelab.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.endswith(".mat")] == ["aelab/data/olivettifaces.mat"]
    assert "aelab/data/olivettifaces.txt" in names
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    # torch and the other dependencies come from wherever this interpreter has them (its venv, or
    # the system's site-packages), added after the new venv's own, so aelab comes from the wheel
    # (folders named in a .pth file join sys.path; the .pth files inside them are not read, so a
    # development install of aelab there stays out)
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                tmp_path).stdout.strip()  # fmt: skip
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (Path(site) / "_aelab_test_deps.pth").write_text("\n".join(ours) + "\n")
    _run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], tmp_path
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([python, "-c", "import aelab; print(aelab.__file__)"], work).stdout.strip()
    assert Path(where).is_relative_to(env_dir), where
    aelab_cmd = str(bin_dir / "aelab")
    assert _run([aelab_cmd, "--version"], work).stdout.strip() == f"aelab {aelab.__version__}"
    _run([aelab_cmd, "train", "shallow", "--epochs", "1", "--out", "one", "--quiet"], work)
    assert (work / "one" / "model.safetensors").is_file()
    _run([aelab_cmd, "run", "--data", "digits", "--models", "shallow", "--epochs", "1",
          "--out", "ws", "--quiet"], work)  # fmt: skip
    assert "<table" in (work / "ws" / "report.html").read_text()
    # the faces from inside the wheel: an empty data home, nothing downloaded or written there
    empty = tmp_path / "empty-home"
    empty.mkdir()
    offline = {**os.environ, "AELAB_DATA_HOME": str(empty)}

    def offline_column() -> str:
        rows = _run([aelab_cmd, "datasets"], work, env=offline).stdout.splitlines()
        return next(r for r in rows if r.startswith("olivetti")).split()[5]

    assert offline_column() == "yes"
    _run([aelab_cmd, "train", "shallow", "--data", "olivetti", "--epochs", "1", "--out", "faces",
          "--quiet"], work, env=offline)  # fmt: skip
    assert (work / "faces" / "model.safetensors").is_file() and not list(empty.iterdir())
    (Path(where).parent / "data" / "olivettifaces.mat").unlink()  # a trimmed install
    assert offline_column() == "no"  # the data home's copy or the download, then
    installed = Path(where).parent
    assert (installed / "templates" / "report.html.j2").is_file()
    assert {p.name for p in (installed / "apps" / "explorer" / "static").iterdir()} >= {
        "index.html"
    }
