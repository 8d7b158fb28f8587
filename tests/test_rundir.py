"""Writing run directories: nothing of anyone else's is deleted, an earlier run survives until its
replacement succeeds, one writer at a time, unique default names, no writing through links."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from aelab.cli import main
from aelab.models import BaseAutoencoder
from aelab.runs.rundir import RunDir, RunInUse, check_name, check_out_dir, unique_path

DEEP = ["train", "deep", "--data", "digits", "--quiet", "--batch-size", "512"]


def _diverging(monkeypatch):
    """Every training loss NaN: a run that diverges by construction, on any CPU (an absurd
    learning rate overflows on some CPUs' kernels and saturates on others)."""

    def nan_code(self, x):
        z = self.encode(x)
        return z, z.sum() * float("nan")

    monkeypatch.setattr(BaseAutoencoder, "training_code", nan_code)


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _err(capsys):
    return capsys.readouterr().err.strip().splitlines()


def test_out_dir_rules(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds files; pass overwrite=True"):
        check_out_dir(earlier, resume=False, overwrite=False)
    with pytest.raises(ValueError, match=r"is not an aelab run \(no aelab-run.json\); refusing"):
        check_out_dir(earlier, resume=False, overwrite=True)
    with pytest.raises(ValueError, match=r"holds no run to resume"):
        check_out_dir(earlier, resume=True, overwrite=False)
    assert _tree(earlier) == ["notes.txt"]  # not even a lock file was left in someone's folder
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"is a file; expected a folder"):
        check_out_dir(a_file, resume=False, overwrite=False)


def test_overwrite_never_deletes_a_folder_with_files_aelab_did_not_write(tmp_path, capsys):
    """Once any folder holding a config.json was deleted, a project's sources with it."""
    project = tmp_path / "myproject"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"format": 1}')
    (project / "src" / "main.py").write_text("print('mine')")
    (project / "NOTES.md").write_text("mine")
    before = _tree(project)
    assert main([*DEEP, "--epochs", "1", "--out", str(project), "--overwrite"]) == 2
    assert "is not an aelab run (no aelab-run.json); refusing" in _err(capsys)[-1]
    assert _tree(project) == before
    # an aelab run with a file of the user's added: refused too, naming the file
    run = tmp_path / "run"
    assert main([*DEEP, "--epochs", "1", "--out", str(run)]) == 0
    (run / "NOTES.md").write_text("mine")
    (run / "checkpoint-000001" / "extra.txt").write_text("mine")
    assert main([*DEEP, "--epochs", "1", "--out", str(run), "--overwrite"]) == 2
    line = _err(capsys)[-1]
    assert "holds files aelab did not write (NOTES.md, checkpoint-000001/extra.txt)" in line
    assert (run / "NOTES.md").read_text() == "mine"


def test_overwrite_keeps_the_earlier_run_until_the_new_one_succeeds(tmp_path, capsys, monkeypatch):
    out = tmp_path / "good_run"
    assert main([*DEEP, "--epochs", "2", "--out", str(out)]) == 0
    tree = _tree(out)
    good = {p: (out / p).read_bytes() for p in tree if (out / p).is_file()}
    # the new run diverges: the good run must still be there
    with monkeypatch.context() as m:
        _diverging(m)
        code = main([*DEEP, "--epochs", "2", "--out", str(out), "--overwrite"])
    assert code == 1 and "the earlier run in" in _err(capsys)[-1]
    assert {p: (out / p).read_bytes() for p in good} == good and _tree(out) == tree
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    # a successful replacement puts the new run in place, whole
    assert main([*DEEP, "--epochs", "1", "--out", str(out), "--overwrite"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_replacement_interrupted_between_its_renames_is_repaired(tmp_path):
    """Where the system cannot swap two folders at once: the old run parked beside comes back."""
    out = tmp_path / "run"
    assert main([*DEEP, "--epochs", "1", "--out", str(out)]) == 0
    parked = tmp_path / ".run.aelab-old-1234abcd"
    os.rename(out, parked)  # as if killed after the first of the two renames
    staging = tmp_path / ".run.aelab-new-1234abcd"
    staging.mkdir()
    assert main([*DEEP, "--epochs", "1", "--out", str(out), "--overwrite"]) == 0
    assert out.is_dir() and not parked.exists() and not staging.exists()


def test_a_failed_run_leaves_nothing_and_a_killed_one_can_be_resumed(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _diverging(m)
        assert main([*DEEP, "--epochs", "2", "--out", str(out)]) == 1
    assert "diverged at epoch" in _err(capsys)[-1] and not out.exists()
    # a folder holding only what a run killed before its first checkpoint writes
    assert main([*DEEP, "--epochs", "1", "--out", str(out)]) == 0
    for name in ("model.safetensors", "history.json", "checkpoint-000001"):
        p = out / name
        (p.unlink() if p.is_file() else __import__("shutil").rmtree(p))
    manifest = json.loads((out / "aelab-run.json").read_text())
    manifest.update(checkpoint=None, complete=False, epoch=0)
    manifest["files"] = {"config.json": manifest["files"]["config.json"]}
    (out / "aelab-run.json").write_text(json.dumps(manifest))
    assert main([*DEEP, "--epochs", "1", "--out", str(out)]) == 2
    assert "unfinished run (interrupted with no checkpoint yet); pass --resume" in _err(capsys)[-1]
    assert main(["train", "deep", "--out", str(out), "--resume", "--quiet"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 1


@pytest.mark.slow
def test_one_writer_at_a_time(tmp_path):
    out = tmp_path / "run"
    first = RunDir.create(out, kind="train")
    try:
        with pytest.raises(RunInUse, match=r"is in use by another aelab process"):
            RunDir.create(out, kind="train")
        # another process too: the lock is flock(2), held by this one
        code = textwrap.dedent(f"""
            from aelab.cli import main
            raise SystemExit(main(["train", "deep", "--data", "digits", "--epochs", "1",
                                   "--out", {str(out)!r}, "--quiet"]))
        """)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert "is in use by another aelab process" in proc.stderr.strip().splitlines()[-1]
    finally:
        first.abort()
    assert not out.exists()  # the first claimant made it and wrote nothing: removed


@pytest.mark.slow
def test_two_trainings_into_one_folder_at_once(tmp_path):
    """Once both exited 0, leaving one run's config beside the other's weights."""
    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        from aelab.cli import main
        raise SystemExit(main(["train", "deep", "--data", "digits", "--epochs", "30",
                               "--batch-size", "64", "--out", {str(out)!r}, "--quiet"]))
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    loser = next(err for c, err in results if c == 2)
    assert "is in use by another aelab process" in loser or "already holds files" in loser
    from aelab.runs.run import load_run

    assert len(load_run(out).history) == 30  # one whole run, verified file by file


@pytest.mark.slow
def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    code = textwrap.dedent("""
        from aelab.cli import main
        raise SystemExit(main(["train", "deep", "--data", "digits", "--epochs", "1",
                               "--batch-size", "512", "--quiet"]))
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3 and all((r / "model.safetensors").is_file() for r in runs)
    names = {r.name.rsplit("-", 1)[0] if r.name.count("-") > 2 else r.name for r in runs}
    assert len({r.name for r in runs}) == 3 and names
    claimed = [unique_path(tmp_path / "x", "a"), unique_path(tmp_path / "x", "a")]
    assert [p.name for p in claimed] == ["a", "a-2"]


def test_out_as_a_symbolic_link_is_one_line(tmp_path, capsys):
    real = tmp_path / "real"
    assert main([*DEEP, "--epochs", "1", "--out", str(real)]) == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    capsys.readouterr()
    assert main([*DEEP, "--epochs", "1", "--out", str(link), "--overwrite"]) == 2
    lines = _err(capsys)
    assert len(lines) == 1 and "is a symbolic link" in lines[0] and "Traceback" not in lines[0]


def test_names_stay_inside_the_folder():
    assert check_name("conv-vae") == "conv-vae"
    for bad in ("../../elsewhere/deep", "/etc", "a/b", "..", "", ".hidden"):
        with pytest.raises(ValueError, match=r"is not valid; expected a plain name"):
            check_name(bad)


def test_files_are_written_with_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        assert main([*DEEP, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    finally:
        os.umask(old)
    config = tmp_path / "run" / "config.json"
    weights = tmp_path / "run" / "model.safetensors"
    assert oct(config.stat().st_mode & 0o777) == oct(0o644)
    assert oct(weights.stat().st_mode & 0o777) == oct(0o644)
