"""Checks before a run directory is written: earlier runs and other folders are kept."""

from __future__ import annotations

import pytest

from aelab.rundir import check_out_dir


def test_out_dir_rules(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds files; pass overwrite=True"):
        check_out_dir(earlier, resume=False, overwrite=False)
    with pytest.raises(ValueError, match=r"is not an aelab run \(no config.json\); refusing"):
        check_out_dir(earlier, resume=False, overwrite=True)
    with pytest.raises(ValueError, match=r"holds no run to resume"):
        check_out_dir(earlier, resume=True, overwrite=False)
    assert (earlier / "notes.txt").read_text() == "mine"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"is a file; expected a folder"):
        check_out_dir(a_file, resume=False, overwrite=False)
