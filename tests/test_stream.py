"""Streaming a folder from disk: the lazy Dataset equals the in-memory loader, and training on it
equals training on the loaded tensors."""

from __future__ import annotations

import json
import re
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.io import imsave
from torch.utils.data import DataLoader

import aelab.data.folders
import aelab.data.listing
from aelab.data import (
    ImageFolderDataset,
    load_image_folder,
    mirror,
    split,
    write_image_folder,
)
from aelab.data.folders import worker_error_message
from aelab.models import build_model
from aelab.runs.run import DataSpec
from aelab.runs.training import train_run
from aelab.training.config import TrainConfig
from aelab.training.trainer import PROBE_IMAGES, Trainer

# -- the Dataset -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three classes of 12x16 images, PNG (skimage) and JPEG (PIL), grey, RGB and RGBA, plus
    files that are not images."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("photos")
    for k, cls in enumerate(("ann", "bob", "cy")):
        (root / cls).mkdir()
        for i in range(4):
            shape = [(12, 16), (12, 16, 3), (12, 16, 4), (12, 16, 3)][(i + k) % 4]
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            if i % 2:
                Image.fromarray(img[..., :3] if img.ndim == 3 else img).save(
                    root / cls / f"{i}.jpg", quality=90
                )
            else:
                imsave(root / cls / f"{i}.png", img, check_contrast=False)
    (root / "README").write_text("people")
    (root / "bob" / ".DS_Store").write_bytes(b"\x00")
    return root


@pytest.mark.parametrize("image_size", [None, "6x9"])
@pytest.mark.parametrize("channels", [None, 3])
def test_items_equal_the_in_memory_loader(photos, image_size, channels):
    loaded = load_image_folder(photos, image_size=image_size, channels=channels)
    data = ImageFolderDataset(photos, image_size=image_size, channels=channels)
    assert len(data) == len(loaded) == 12
    assert data.image_shape == loaded.image_shape
    assert data.class_names == loaded.class_names == ["ann", "bob", "cy"]
    np.testing.assert_array_equal(data.labels, loaded.labels)
    assert data.notes == loaded.notes == ["skipped 2 non-image files (README, bob/.DS_Store)"]
    item = data[0]
    assert isinstance(item, torch.Tensor) and item.dtype == torch.float32
    assert item.shape == loaded.image_shape and item.is_contiguous()
    np.testing.assert_array_equal(torch.stack(list(data)).numpy(), loaded.images)
    np.testing.assert_array_equal(data.load().images, loaded.images)


def test_mirror_equals_the_in_memory_mirror(photos):
    expected = mirror(load_image_folder(photos))
    for data in (ImageFolderDataset(photos, mirror=True), mirror(ImageFolderDataset(photos))):
        assert len(data) == 24
        np.testing.assert_array_equal(data[13].numpy(), data[1].numpy()[..., ::-1])
        np.testing.assert_array_equal(data.load().images, expected.images)
        np.testing.assert_array_equal(data.labels, expected.labels)
    twice = mirror(ImageFolderDataset(photos, mirror=True))  # a mirror of a mirror: the original
    np.testing.assert_array_equal(twice[36].numpy(), twice[0].numpy())


@pytest.mark.parametrize(
    "kwargs", [{"holdout_people": 1}, {"holdout": 0.25, "seed": 0}, {"holdout": 0.25, "seed": 3}]
)
def test_split_then_mirror_equals_the_in_memory_split(photos, kwargs):
    parts = [mirror(p) for p in split(load_image_folder(photos), **kwargs)]
    streamed = [mirror(p) for p in split(ImageFolderDataset(photos), **kwargs)]
    for part, stream in zip(parts, streamed):
        assert isinstance(stream, ImageFolderDataset) and len(stream) == len(part)
        np.testing.assert_array_equal(stream.load().images, part.images)
        np.testing.assert_array_equal(stream.labels, part.labels)
    if "holdout_people" in kwargs:
        assert set(streamed[1].labels.tolist()) == {2}


def test_unlabelled_folder_and_subset(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(10):
        imsave(
            tmp_path / f"{i:02d}.png", rng.integers(0, 256, (5, 7), np.uint8), check_contrast=False
        )
    loaded, data = load_image_folder(tmp_path), ImageFolderDataset(tmp_path)
    assert data.labels is None and data.class_names is None
    for a, b in zip(split(loaded, holdout=0.3, seed=2), split(data, holdout=0.3, seed=2)):
        np.testing.assert_array_equal(b.load().images, a.images)
    pick = np.array([7, 2, 2])
    np.testing.assert_array_equal(data.subset(pick).load().images, loaded.images[pick])
    mask = np.arange(10) % 3 == 0
    np.testing.assert_array_equal(data.subset(mask).load().images, loaded.images[mask])
    empty = data.subset(np.arange(0))
    assert len(empty) == 0 and empty.load().images.shape == (0, 1, 5, 7)


def test_listing_reads_no_pixels(photos, monkeypatch):
    reads = []
    real = aelab.data.folders._read_image

    def counting(path, *args):
        reads.append(path)
        return real(path, *args)

    monkeypatch.setattr(aelab.data.folders, "_read_image", counting)
    data = ImageFolderDataset(photos, image_size=8, mirror=True)
    train, _ = split(data, holdout_people=1)
    mirror(train).subset(np.arange(3))
    assert reads == []
    ImageFolderDataset(photos)  # without image_size, the first image fixes the size
    assert reads == [photos / "ann" / "0.png"]
    assert data[5].shape == (1, 8, 8) and reads[-1] == photos / "bob" / "1.jpg"


def test_a_differing_size_is_an_error_when_read(tmp_path):
    imsave(tmp_path / "a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    imsave(tmp_path / "b.png", np.zeros((9, 7), np.uint8), check_contrast=False)
    with pytest.raises(ValueError) as in_memory:
        load_image_folder(tmp_path)
    data = ImageFolderDataset(tmp_path)  # only the first image is read here
    assert data.image_shape == (1, 8, 8) and data[0].shape == (1, 8, 8)
    with pytest.raises(ValueError, match=r"a.png is 8x8, .*b.png is 9x7; pass image_size") as e:
        data[1]
    assert str(e.value) == str(in_memory.value)
    assert ImageFolderDataset(tmp_path, image_size=8)[1].shape == (1, 8, 8)


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
def test_folder_errors(tmp_path):
    (tmp_path / "ok.png").write_bytes(b"")
    imsave(tmp_path / "a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    data = ImageFolderDataset(tmp_path)
    bad = re.escape(str(tmp_path / "ok.png"))
    hint = r"into memory \(stream=False\) with skip_bad=True"
    with pytest.raises(ValueError, match=rf"cannot read image {bad}.*{hint}"):
        data[1]
    with pytest.raises(FileNotFoundError, match=r"path='.*nope' is not a folder"):
        ImageFolderDataset(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"channels=2 is not valid"):
        ImageFolderDataset(tmp_path, channels=2)
    (tmp_path / "cls").mkdir()
    imsave(tmp_path / "cls" / "c.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    with pytest.raises(ValueError, match=r"mixes images .* with class subfolders"):
        ImageFolderDataset(tmp_path)


def test_write_image_folder(tmp_path):
    root = write_image_folder(tmp_path / "synthetic", 7, image_size="6x5", n_classes=3)
    data = ImageFolderDataset(root)
    assert len(data) == 7 and data.class_names == ["class_0", "class_1", "class_2"]
    np.testing.assert_array_equal(np.bincount(data.labels), [3, 2, 2])
    assert data.image_shape == (1, 6, 5) and (root / "class_1" / "000004.png").is_file()
    assert data.load().images.std() > 0.05
    with pytest.raises(ValueError, match=r"n=-1 is not valid; expected an integer >= 0"):
        write_image_folder(tmp_path / "x", -1)


# -- training on a streamed folder -------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """60 small images in 3 classes and the same images loaded into memory."""
    root = write_image_folder(tmp_path_factory.mktemp("synthetic"), 60, image_size=8, n_classes=3)
    return root, load_image_folder(root)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train(x_train, x_heldout, *, name="deep", epochs=2, **config):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        kwargs = {"latent_dim": 4, "hidden": (16,)} if name == "deep" else {"latent_dim": 4}
        model = build_model(name, (1, 8, 8), **kwargs)
    cfg = TrainConfig(epochs=epochs, batch_size=16, device="cpu", **config)
    trainer = Trainer(model, cfg)
    trainer.fit(x_train, x_heldout, progress=False)
    return trainer


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("deep", {"shuffle": False}),
        ("deep", {"shuffle": True, "noise": "gaussian:0.1"}),
        ("conv", {"shuffle": True, "noise": "mask:0.2"}),
    ],
)
def test_streamed_training_equals_in_memory_training(digits_folder, name, config):
    root, loaded = digits_folder
    train, held = split(loaded, holdout=0.2)
    stream_train, stream_held = split(ImageFolderDataset(root), holdout=0.2)
    a = _train(torch.from_numpy(train.images), torch.from_numpy(held.images), name=name, **config)
    b = _train(stream_train, stream_held, name=name, **config)
    # bit for bit on the CPU: the same batches, shuffle and noise draws in the same order
    wa, wb = _weights(a.model), _weights(b.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.history[-1]["loss"] == b.history[-1]["loss"]
    assert a.history[-1]["heldout_loss"] == b.history[-1]["heldout_loss"]


def test_worker_processes_train_like_the_training_process(digits_folder):
    root, _ = digits_folder
    train, held = split(ImageFolderDataset(root, mirror=True), holdout=0.2)
    in_process = _train(train, held, epochs=2)
    workers = _train(train, held, epochs=2, workers=2)
    assert len(workers.history) == 2
    assert all(np.isfinite([r["loss"], r["heldout_loss"]]).all() for r in workers.history)
    wa, wb = _weights(in_process.model), _weights(workers.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same items, same order
    from aelab.training.batches import Streamed

    loader = Streamed(workers, train).loader
    assert loader.num_workers == 2 and loader.persistent_workers and not loader.pin_memory


def test_streamed_run_resumes_exactly(digits_folder, tmp_path):
    root, _ = digits_folder
    spec = DataSpec(source=str(root), holdout=0.2, mirror=True, stream=True)
    cfg = dict(batch_size=16, seed=1, device="cpu")
    full = train_run("deep", spec, TrainConfig(epochs=3, **cfg), tmp_path / "full", progress=False)
    part = tmp_path / "part"
    train_run("deep", spec, TrainConfig(epochs=1, **cfg), part, progress=False)
    config = json.loads((part / "config.json").read_text())
    assert config["data"]["stream"] is True and config["train"]["workers"] == 0
    split_record = {k: v for k, v in config["split"].items() if k != "fingerprint"}
    assert split_record == {"n_train": 96, "n_heldout": 24, "image_shape": [1, 8, 8]}
    resumed = train_run("deep", DataSpec(), TrainConfig(epochs=3, **cfg), part, resume=True,
                        progress=False)  # fmt: skip
    wa, wb = _weights(full.model), _weights(resumed.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    assert isinstance(resumed.data().train, ImageFolderDataset)


def test_fit_refuses_what_is_neither_a_tensor_nor_a_dataset():
    model = build_model("deep", (1, 8, 8), latent_dim=2, hidden=(4,))
    trainer = Trainer(model, TrainConfig(epochs=1, device="cpu"))
    with pytest.raises(TypeError, match=r"x_train is a list; expected a tensor \(N, C, H, W\)"):
        trainer.fit([torch.zeros(1, 8, 8)], progress=False)


def test_workers_is_validated():
    with pytest.raises(ValueError, match=r"workers=-1 is not valid; expected an integer >= 0"):
        TrainConfig(workers=-1)


# -- memory ------------------------------------------------------------------------------------


def test_streaming_holds_paths_not_pixels(tmp_path, monkeypatch):
    n, side = 300, 64
    root = write_image_folder(tmp_path / "many", n, image_size=side, n_classes=3)
    all_pixels = n * side * side * 4  # bytes of the whole set as float32
    data = ImageFolderDataset(root, image_size=side)

    def trainer():
        model = build_model("deep", (1, side, side), latent_dim=4, hidden=(8,))
        return Trainer(model, TrainConfig(epochs=1, batch_size=16, device="cpu"))

    trainer().fit(data.subset(np.arange(2)), progress=False)  # lazy imports happen here
    reads = []
    real = aelab.data.folders._read_image
    monkeypatch.setattr(
        aelab.data.folders, "_read_image", lambda p, *a: (reads.append(p), real(p, *a))[1]
    )
    streaming = trainer()
    tracemalloc.start()  # numpy's buffers (decoded images) are traced; torch's are not
    try:
        streaming.fit(data, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # every image read once, when needed, and the first few once more: the NaN guard's probe
    assert len(reads) == n + min(n, PROBE_IMAGES) and len(set(reads)) == n
    held = [v for v in vars(data).values() if isinstance(v, (np.ndarray, torch.Tensor))]
    assert sum(v.nbytes for v in held) < all_pixels / 100  # paths, labels, flags
    assert peak < all_pixels / 4  # about one batch of decoded images at a time


# -- hostile folders, streamed -----------------------------------------------------------------


def test_streaming_skips_links_and_reads_formats_as_the_loader_does(tmp_path):
    root, outside = tmp_path / "faces", tmp_path / "outside"
    for folder in (root / "s1", outside):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (7, 6), np.uint8)).save(root / "s1" / f"{i}.pgm")
    Image.fromarray(rng.integers(0, 256, (7, 6), np.uint8)).save(root / "s1" / "raw", "PNG")
    Image.fromarray(rng.integers(0, 256, (7, 6), np.uint8)).save(outside / "x.pgm")
    (root / "s1" / "x.pgm").symlink_to(outside / "x.pgm")
    (root / "s1" / "notes.txt").write_text("subject 1")
    for follow_links in (False, True):
        loaded = load_image_folder(root, follow_links=follow_links)
        data = ImageFolderDataset(root, follow_links=follow_links)
        assert len(data) == len(loaded) == 4 + follow_links
        assert data.notes == loaded.notes
        np.testing.assert_array_equal(data.load().images, loaded.images)
    assert data.notes == ["skipped 1 non-image files (s1/notes.txt)"]
    assert ImageFolderDataset(root).notes == [
        "skipped 1 non-image files (s1/notes.txt)",
        "skipped 1 symbolic links (s1/x.pgm); pass follow_links=True to read them",
    ]


def test_listing_opens_only_files_without_an_image_extension(photos, monkeypatch):
    sniffed = []
    real = aelab.data.listing._is_image_content

    def counting(path):
        sniffed.append(path.name)
        return real(path)

    monkeypatch.setattr(aelab.data.listing, "_is_image_content", counting)
    ImageFolderDataset(photos, image_size=8)
    assert sniffed == ["README"]  # not the 12 images, nor the hidden .DS_Store


def test_an_image_above_max_image_pixels_is_an_error_when_read(tmp_path):
    imsave(tmp_path / "a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    Image.new("L", (3000, 2000)).save(tmp_path / "b.png")
    data = ImageFolderDataset(tmp_path, image_size=8, max_image_pixels=7_000_000)
    assert data[1].shape == (1, 8, 8)
    small = ImageFolderDataset(tmp_path, image_size=8, max_image_pixels=1_000_000)
    with pytest.raises(ValueError) as error:
        small[1]
    assert str(error.value) == (
        f"cannot read image {tmp_path / 'b.png'}: 2000x3000 is 6,000,000 pixels, above "
        "max_image_pixels=1000000; pass a larger max_image_pixels (or None for no limit) to "
        "read it; remove it, or load the folder into memory (stream=False) with skip_bad=True "
        "to skip unreadable images"
    )


def test_a_worker_error_comes_back_as_its_one_line(tmp_path):
    write_image_folder(tmp_path, 4, image_size=8)
    bad = tmp_path / "000002.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    data = ImageFolderDataset(tmp_path, image_size=8)
    with pytest.raises(ValueError) as in_process:
        data[2]
    expected = str(in_process.value)
    assert "\n" not in expected and str(bad) in expected and "skip_bad=True" in expected
    batches = iter(DataLoader(data, batch_size=2, num_workers=2))
    try:
        with pytest.raises(ValueError) as in_worker:
            list(batches)
    finally:
        # The error ties the loader into a reference cycle; collected later, its workers take
        # 5 s each to stop (their queues are closed first). Stopped now, they take no time.
        batches._shutdown_workers()
    assert len(str(in_worker.value).splitlines()) > 3  # torch's wrapped traceback
    assert worker_error_message(in_worker.value) == expected
    assert worker_error_message(ValueError("plain")) == "plain"


def test_listing_names_sizes_and_mirrors(tmp_path):
    root = write_image_folder(tmp_path, 3, image_size=4)
    data = ImageFolderDataset(root, mirror=True)
    sizes = [(root / f"{i:06d}.png").stat().st_size for i in range(3)]
    assert list(data.listing()) == [
        *((f"{i:06d}.png", sizes[i], False) for i in range(3)),
        *((f"{i:06d}.png", sizes[i], True) for i in range(3)),
    ]
