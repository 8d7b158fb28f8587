"""Groups files (``aelab run --groups``): the reader, each of its one-line errors, hostile files,
the groups of a split's parts (mirrors and folders included), a direction computed by hand,
and the command line refusing a bad file before anything is trained."""

from __future__ import annotations

import os

import numpy as np
import pytest

from aelab.analysis import keeps
from aelab.analysis.inside_measure import attribute_groups
from aelab.cli import main
from aelab.data.groups import MAX_BYTES, read_groups, read_split_groups
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec

GOOD = "image,group\n0,a\n1,a\n2,b\n3,b\n"


def write(tmp_path, text: str | bytes, name: str = "groups.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_a_good_file_gives_each_image_its_group(tmp_path):
    path = write(tmp_path, '\ufeffImage , Group\n0, a \n1,a\n\n3,b\n4,"b, with a comma"\n5,b\n')
    g = read_groups(path, 6)
    assert g.names == ["a", "b", "b, with a comma"]
    assert g.of_image.tolist() == [0, 0, -1, 1, 2, 1]
    assert g.sizes() == {"a": 2, "b": 2, "b, with a comma": 1}
    assert g.source == "groups.csv"
    assert g.data == path.read_bytes()  # the bytes checked: what a workshop keeps


def test_the_bytes_kept_are_the_bytes_checked(tmp_path, monkeypatch):
    """The workshop copies what was read and checked, not the file read again after: a file
    changed between the check and the copy is not kept unchecked."""
    import aelab.apps.workshop as workshop
    from aelab.data import groups as groups_module

    path = write(tmp_path, GOOD)
    real = groups_module.read_groups

    def then_changed(*args, **kwargs):
        checked = real(*args, **kwargs)
        path.write_text("image,group\n0,changed after the check\n")
        return checked

    monkeypatch.setattr(groups_module, "read_groups", then_changed)
    out = tmp_path / "ws"
    workshop.run_workshop(DataSpec(source="digits", seed=0), out, models=["shallow"],
                          train={"epochs": 1}, groups=str(path), report=False, progress=False,
                          log=lambda *a: None)  # fmt: skip
    assert (out / "groups.csv").read_text() == GOOD


def test_folder_images_are_named_by_their_path_or_index(tmp_path):
    files = ["s1/1.pgm", "s1/2.pgm", "s2/1.pgm", "s2/2.pgm"]
    path = write(tmp_path, "image,group\ns1/1.pgm,x\n1,x\ns2/1.pgm,y\ns2/2.pgm,y\n")
    assert read_groups(path, 4, files).of_image.tolist() == [0, 0, 1, 1]


BAD = [  # (file's text, what the one line must say)
    ("", r"line 1: header=''; allowed: the header 'image,group'"),
    ("index,label\n0,a\n", r"line 1: header='index,label'; allowed"),
    (
        "image,group\n0,a\n1,a\n9,b\n3,b\n",
        r"line 4: image='9' is out of range for 4 images; "
        r"allowed: a 0-based index 0 to 3",
    ),
    ("image,group\n0,a\n1,a\nface.png,b\n", r"line 4: image='face.png' is not an index"),
    ("image,group\n0,a\n-1,a\n", r"line 3: image='-1' is not an index"),
    ("image,group\n0,a\n1,a\n0,b\n", r"line 4: image='0' was given a group on line 2 already"),
    ("image,group\n0,a\n1,  \n", r"line 3: group='  ' is empty; allowed: any non-empty text"),
    ("image,group\n0,a,extra\n", r"line 2: 3 value\(s\) \('0,a,extra'\); allowed: two"),
    (
        "image,group\n0,a\n1,a\n2,b\n",
        r"1 group\(s\) of 2 images or more \(images a group: 'a': 2, "
        r"'b': 1\); allowed: at least 2 such groups",
    ),
    ("image,group\n", r"0 group\(s\) of 2 images or more \(images a group: none\)"),
    ("image,group\n0," + "x" * 300 + "\n", r"line 2: group='x{40}'\.\.\. has 300 characters"),
    ('image,group\n0,a\n1,"a\n', r"line 3: not valid CSV"),
    (
        b"image,group\n0,a\n1,caf\xe9\n",
        r"line 3: byte 0xe9 is not UTF-8 text; allowed: a CSV "
        r"file in UTF-8",
    ),
]


@pytest.mark.parametrize("text, message", BAD, ids=range(len(BAD)))
def test_every_mistake_is_one_line_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as e:
        read_groups(path, 4)
    assert str(e.value).startswith(f"groups='{path}'")
    assert "\n" not in str(e.value)


def test_a_folder_image_that_is_not_there_names_an_example(tmp_path):
    path = write(tmp_path, "image,group\ns9/1.pgm,x\n")
    with pytest.raises(
        ValueError,
        match=r"line 2: image='s9/1.pgm' is not an image of the folder; "
        r"allowed: .* or an image's path relative to the folder \(e.g. 'a/1.png'\)",
    ):
        read_groups(path, 1, ["a/1.png"])  # fmt: skip


def test_hostile_files_are_refused_before_they_are_read(tmp_path):
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no disk spent
    with pytest.raises(ValueError, match=rf"holds {MAX_BYTES + 1:,} bytes; allowed: at most"):
        read_groups(big, 4)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    with pytest.raises(ValueError, match="is not a regular file; allowed: a CSV file"):
        read_groups(fifo, 4)
    with pytest.raises(ValueError, match=r"groups='.*missing.csv': No such file"):
        read_groups(tmp_path / "missing.csv", 4)
    nul = write(tmp_path, "image,group\n0,a\x00b\n")  # csv reads a NUL: the name is refused
    with pytest.raises(ValueError, match=r"line 2: group='a\\x00b' holds a control character"):
        read_groups(nul, 4)


def test_a_direction_computed_by_hand():
    codes = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [9.0, 9.0]])
    groups = np.array([0, 0, 1, 1, -1])  # the last image has no group: not in the mean
    # mean of all grouped [1, 1]; of a [1, 0]; of b [1, 2]
    d = keeps.group_directions(codes, groups, [0, 1])
    np.testing.assert_allclose(d, [[0.0, -1.0], [0.0, 1.0]])
    sweep = keeps.sweep(codes[0], d[1], reach=2.0, steps=5)
    np.testing.assert_allclose(sweep, [[0, -2], [0, -1], [0, 0], [0, 1], [0, 2]])


def test_groups_follow_the_images_through_split_and_mirrors(tmp_path):
    spec = DataSpec(source="digits", holdout=0.1, mirror=True)
    split = prepare_data(spec)
    n = split.n_loaded
    assert n == 1797
    rows = "".join(f"{i},{'even' if i % 2 == 0 else 'odd'}\n" for i in range(0, n, 5))
    g = read_split_groups(write(tmp_path, "image,group\n" + rows), split)
    for part in (split.train, split.heldout):
        origin = part.origins()
        half = len(part) // 2
        np.testing.assert_array_equal(origin[:half], origin[half:])  # a mirror is its image's
        want = np.where(origin % 5 == 0, origin % 2, -1)
        np.testing.assert_array_equal(g.labels(part), want)
    found = attribute_groups(split, g)
    assert found["source"] == "groups.csv" and found["part"] == "heldout"
    assert found["groups"].tolist() == [0, 1]


def test_a_loaded_folder_names_its_images(tmp_path):
    from PIL import Image

    folder = tmp_path / "faces"
    for person in ("p1", "p2", "p3"):
        (folder / person).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(np.full((4, 4), 40 * k, np.uint8)).save(folder / person / f"{k}.png")
    split = prepare_data(DataSpec(source=str(folder), holdout_people=1))
    rows = "p1/0.png,x\np1/1.png,x\np3/0.png,y\np3/2.png,y\n"
    g = read_split_groups(write(tmp_path, "image,group\n" + rows), split)
    assert g.labels(split.heldout).tolist() == [1, -1, 1]  # p3 held out
    assert g.labels(split.train).tolist() == [0, 0, -1, -1, -1, -1]
    streamed = prepare_data(DataSpec(source=str(folder), holdout_people=1, stream=True))
    assert read_split_groups(tmp_path / "groups.csv", streamed).labels(
        streamed.heldout
    ).tolist() == [1, -1, 1]


def test_a_bad_groups_file_stops_aelab_run_before_training(tmp_path, capsys):
    bad = write(tmp_path, "image,group\n0,a\n99999,b\n")
    out = tmp_path / "run"
    code = main(["run", "--data", "digits", "--models", "shallow", "--epochs", "1",
                 "--out", str(out), "--groups", str(bad), "--quiet"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"aelab run: error: --groups {bad}, line 3: image='99999' is out of range for 1797 "
        "images; allowed: a 0-based index 0 to 1796"
    )
    assert not out.exists()  # nothing trained, nothing written
