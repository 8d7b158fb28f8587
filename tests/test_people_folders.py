"""Folders of people: classes in natural order, whole subfolders held out by default where the
folder looks like people, the data named by its folder and not its path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aelab.cli import main
from aelab.data import load_dataset, write_image_folder
from aelab.data.listing import natural_key
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec


def _people(root, n_people: int, per_person: int):
    """``root/s1 ... root/sN``, ``per_person`` 8x8 images each."""
    write_image_folder(root, n_people * per_person, image_size=8, n_classes=n_people)
    for k in range(n_people):
        (root / f"class_{k}").rename(root / f"s{k + 1}")
    return root


def test_names_sort_as_people_read_them():
    names = ["s10", "s2", "s1", "s11", "s01", "a", "s1b"]
    assert sorted(names, key=natural_key) == ["a", "s01", "s1", "s1b", "s2", "s10", "s11"]


def test_classes_are_in_natural_order_and_the_last_people_are_the_last(tmp_path):
    root = _people(tmp_path / "faces", 12, 4)
    data = load_dataset(root)
    assert data.class_names == [f"s{k}" for k in range(1, 13)]  # not s1, s10, s11, s12, s2
    assert load_dataset(root, class_order="name").class_names[:3] == ["s1", "s10", "s11"]
    split = prepare_data(DataSpec(str(root), holdout_people=2))
    assert [split.heldout.class_names[k] for k in np.unique(split.heldout.labels)] == [
        "s11", "s12"
    ]  # fmt: skip


def test_a_folder_of_people_holds_out_whole_subfolders_and_says_so(tmp_path):
    split = prepare_data(DataSpec(str(_people(tmp_path / "faces", 20, 4))))
    assert split.how == {"holdout_people": 2}
    held = {split.heldout.class_names[k] for k in np.unique(split.heldout.labels)}
    trained = {split.train.class_names[k] for k in np.unique(split.train.labels)}
    assert held == {"s19", "s20"} and not held & trained and len(split.heldout) == 8
    (note,) = split.train.notes
    assert "one of 20 subfolders, 4 or more each" in note and "held out the last 2 whole" in note
    assert "pass holdout=0.1 to hold out random images" in note


@pytest.mark.parametrize(
    ("people", "each", "how", "said"),
    [
        (4, 5, {"holdout": 0.1}, "held out 10% of each one's images at random"),  # few folders
        (10, 30, {"holdout": 0.1}, "pass holdout_people=K"),  # classes of many images: digits
        (12, 2, {"holdout": 0.1}, None),  # too few images a subfolder to say anything
    ],
)
def test_other_folders_hold_out_random_images(tmp_path, people, each, how, said):
    split = prepare_data(DataSpec(str(_people(tmp_path / "f", people, each))))
    assert split.how == how
    assert (split.train.notes == []) if said is None else (said in split.train.notes[0])


def test_a_given_split_and_a_record_of_aelab_0_2_1_keep_their_split(tmp_path):
    root = _people(tmp_path / "faces", 20, 4)
    assert prepare_data(DataSpec(str(root), holdout=0.25)).how == {"holdout": 0.25}
    old = DataSpec.from_dict({"source": str(root)})  # written before class_order existed
    assert (old.class_order, old.group_folders) == ("name", False)
    split = prepare_data(old)
    assert split.how == {"holdout": 0.1} and split.train.class_names[:2] == ["s1", "s10"]
    assert split.train.notes == []
    new = DataSpec(str(root)).to_dict()
    assert (new["class_order"], new["group_folders"]) == ("natural", True)
    assert DataSpec.from_dict(new) == DataSpec(str(root))


def test_normals_need_held_out_people_which_a_folder_of_people_gives(tmp_path):
    split = prepare_data(DataSpec(str(_people(tmp_path / "faces", 20, 4)), normals=0.25))
    assert len(split.normals) == 18  # a quarter of each of the 18 training people's 4 images
    with pytest.raises(ValueError, match="it needs holdout_people=K"):
        prepare_data(DataSpec(str(_people(tmp_path / "few", 4, 5)), normals=0.25))


def test_the_data_is_named_by_its_folder_not_its_path(tmp_path, capsys):
    from aelab.apps.evaluation import evaluate

    root = _people(tmp_path / "deep" / "inside" / "faces", 20, 4)
    assert DataSpec(str(root)).name == "faces" and DataSpec("olivetti").name == "olivetti"
    out = tmp_path / "run"
    assert main(["train", "shallow", "--data", str(root), "--epochs", "1", "--quiet",
                 "--out", str(out)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "held out the last 2 whole (s19, s20); pass --holdout 0.1" in err
    result = evaluate(out)
    assert result["data"]["name"] == "faces" and str(tmp_path) not in json.dumps(result["data"])
    assert result["data"]["split"]["holdout_people"] == 2
