"""The pixel cache of streamed folders: real PNG files, a real memory-mapped file, real damage
(flipped bytes, truncation, garbage, a SIGKILL in the middle of a write), two real processes
filling one cache, DataLoader workers forked and spawned, a cache folder that cannot be written,
and the command line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import aelab.data.cache
import aelab.data.folders
from aelab.cli import main
from aelab.data import ImageFolderDataset, load_image_folder, mirror, write_image_folder
from aelab.data.cache import PixelCache, default_cache_dir
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec
from aelab.runs.training import resume_run, train_run
from aelab.training.config import TrainConfig

N = 24


@pytest.fixture(autouse=True)
def _own_cache_home(tmp_path, monkeypatch):
    """Never the user's ~/.cache: the default folder is inside the test's own."""
    monkeypatch.setenv("AELAB_CACHE_HOME", str(tmp_path / "cache-home"))


@pytest.fixture
def folder(tmp_path):
    """24 grey 16x16 PNG images in 3 class folders."""
    return write_image_folder(tmp_path / "images", N, image_size=16, n_classes=3)


@pytest.fixture
def decodes(monkeypatch):
    """The paths the decoder is asked for (the decoder itself is the real one)."""
    seen, real = [], aelab.data.folders._read_image

    def counting(path, *args, **kwargs):
        seen.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(aelab.data.folders, "_read_image", counting)
    return seen


def _all(data) -> np.ndarray:
    """Every item, one at a time (``__getitem__``)."""
    return torch.stack([data[i] for i in range(len(data))]).numpy()


def _batched(data, batch_size=7) -> np.ndarray:
    """Every item, a batch at a time, as a DataLoader asks for them (``__getitems__``)."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    return torch.cat(list(loader)).numpy()


def _meta(data) -> dict:
    return json.loads((data.cache_path.parent / "meta.json").read_text())


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_cached_items_are_the_decoded_ones_bit_for_bit(folder, tmp_path, decodes):
    expected = load_image_folder(folder)
    decodes.clear()
    data = ImageFolderDataset(folder, cache=tmp_path / "c", mirror=True)
    assert data.notes == [] and data.cache_path.name == "pixels.bin"
    assert _meta(data)["dtype"] == "uint8" and _meta(data)["count"] == N
    assert _meta(data)["source"] == str(folder.resolve())
    first = _all(data)  # fills: each file decoded once, its mirror read back
    assert len(decodes) == 1 + N - 1  # the first image at construction, then the others
    assert data.cached_items == 2 * N
    assert _same(first, mirror(expected).images)
    decodes.clear()
    again = ImageFolderDataset(folder, cache=tmp_path / "c", mirror=True)
    assert _same(_all(again), first) and _same(_batched(again), first)
    shuffled = np.random.default_rng(0).permutation(2 * N)
    assert _same(torch.stack(again.__getitems__(shuffled.tolist())).numpy(), first[shuffled])
    assert len(decodes) == 1  # only the first image, read at construction for its size
    part = again.subset(np.arange(3, 40, 5))
    assert _same(_batched(part, 3), first[3:40:5]) and part.cached_items == len(part)
    both = np.concatenate([first[3:40:5], first[3:40:5][..., ::-1]])
    assert _same(_all(part.mirrored()), both)
    assert len(decodes) == 1


def test_resized_items_are_cached_as_float32_bit_for_bit(folder, tmp_path, decodes):
    expected = load_image_folder(folder, image_size="8x6").images
    data = ImageFolderDataset(folder, image_size="8x6", cache=tmp_path / "c")
    assert _meta(data)["dtype"] == "float32"
    assert _same(_batched(data), expected) and data.cached_items == N
    decodes.clear()
    assert _same(_batched(data), expected) and _same(_all(data), expected)
    assert decodes == []


def test_a_16_bit_image_is_decoded_every_time_and_read_right(folder, tmp_path, decodes):
    deep = np.random.default_rng(1).integers(0, 65536, (16, 16), dtype=np.uint16)
    Image.fromarray(deep).save(folder / "class_1" / "000004.png")  # 16-bit PNG, not the first
    expected = load_image_folder(folder).images
    assert not _same(np.round(expected * 255) / 255, expected)  # not an 8-bit image: the test
    data = ImageFolderDataset(folder, cache=tmp_path / "c")
    assert _same(_batched(data), expected)
    assert data.cached_items == N - 1  # all but the 16-bit one
    decodes.clear()
    assert _same(_batched(data), expected) and _same(_all(data), expected)
    assert [p.name for p in decodes] == ["000004.png", "000004.png"]


def test_the_second_pass_is_served_without_the_decoder(folder, tmp_path, monkeypatch):
    expected = load_image_folder(folder, image_size=8).images
    _batched(ImageFolderDataset(folder, image_size=8, cache=tmp_path / "c"))

    def gone(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(aelab.data.folders, "_read_image", gone)
    data = ImageFolderDataset(folder, image_size=8, cache=tmp_path / "c")
    assert _same(_batched(data), expected) and _same(_all(data), expected)
    off = ImageFolderDataset(folder, image_size=8)  # without the cache: the decoder is needed
    with pytest.raises(ValueError, match="decoded although cached"):
        off[0]


def test_a_changed_added_or_removed_file_gives_a_new_key_and_its_pixels(folder, tmp_path):
    cache = tmp_path / "c"
    before = ImageFolderDataset(folder, cache=cache)
    _batched(before)
    target = folder / "class_2" / "000005.png"
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(target)  # other pixels
    after = ImageFolderDataset(folder, cache=cache)
    assert after.cache_path != before.cache_path
    assert _same(_batched(after), load_image_folder(folder).images)
    index = int(np.flatnonzero(after.labels == 2)[1])  # class_2's second file: 000005.png
    assert not _same(after[index].numpy(), before[index].numpy())  # before: the old pixels
    os.utime(target)  # touched only: a new key too
    assert ImageFolderDataset(folder, cache=cache).cache_path != after.cache_path
    shutil.copy(folder / "class_0" / "000000.png", folder / "class_0" / "extra.png")  # added
    added = ImageFolderDataset(folder, cache=cache)
    assert len(added) == N + 1 and added.cache_path not in (before.cache_path, after.cache_path)
    (folder / "class_0" / "000000.png").unlink()
    removed = ImageFolderDataset(folder, cache=cache)
    assert removed.cache_path != added.cache_path
    assert _same(_batched(removed), load_image_folder(folder).images)
    assert sorted(p.name for p in before.cache_path.parent.iterdir()) == ["meta.json", "pixels.bin"]


def _slot_bytes(data, slot: int) -> tuple[int, int]:
    """Where slot ``slot``'s pixels are in ``pixels.bin``: (offset, length)."""
    c = data._cache
    return c.pixel_offset + slot * c.item_bytes, c.item_bytes


def test_flipped_bytes_are_detected_decoded_again_and_rewritten(folder, tmp_path, decodes):
    expected = load_image_folder(folder).images
    data = ImageFolderDataset(folder, cache=tmp_path / "c")
    _batched(data)
    path, raw = data.cache_path, bytearray(data.cache_path.read_bytes())
    offset, length = _slot_bytes(data, 7)
    damaged = bytearray(raw)
    damaged[offset + 3] ^= 0x10  # one bit of slot 7's pixels
    damaged[offset + length - 1] ^= 0xFF
    offset9, _ = _slot_bytes(data, 9)
    damaged[offset9 + 40] ^= 0x01
    damaged[4096 + 8 * 12] ^= 0x04  # slot 12's CRC, not its pixels
    path.write_bytes(damaged)
    decodes.clear()
    fresh = ImageFolderDataset(folder, cache=tmp_path / "c")
    assert fresh.cache_path == path and fresh.notes == []
    assert _same(_batched(fresh), expected)
    names = [name for name, _, _ in fresh.listing()]
    assert [str(p.relative_to(folder)) for p in decodes[1:]] == [names[k] for k in (7, 9, 12)]
    assert path.read_bytes() == bytes(raw)  # rewritten: pixels and CRCs as before the damage
    decodes.clear()
    assert _same(_all(fresh), expected) and decodes == []


@pytest.mark.parametrize(
    "damage", ["empty", "truncated", "garbage", "header", "other shape", "longer"]
)
def test_a_damaged_cache_file_is_replaced(folder, tmp_path, damage, decodes):
    expected = load_image_folder(folder).images
    data = ImageFolderDataset(folder, cache=tmp_path / "c")
    _batched(data)
    path = data.cache_path
    raw = path.read_bytes()
    rng = np.random.default_rng(0)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) - 100])
    elif damage == "garbage":
        path.write_bytes(rng.integers(0, 256, len(raw), dtype=np.uint8).tobytes())
    elif damage == "header":  # another format version
        path.write_bytes(raw[:8] + (99).to_bytes(4, "little") + raw[12:])
    elif damage == "other shape":  # a header for 17x16 images
        path.write_bytes(raw[:32] + (17).to_bytes(4, "little") + raw[36:])
    else:
        path.write_bytes(raw + b"\0" * 4096)
    decodes.clear()
    fresh = ImageFolderDataset(folder, cache=tmp_path / "c")
    assert len(fresh.notes) == 1 and "replaced" in fresh.notes[0], fresh.notes
    assert fresh.cached_items == 1  # a new file: only the first image, read at construction
    assert _same(_batched(fresh), expected) and len(decodes) == N
    assert path.stat().st_size == len(raw) and path.read_bytes() == raw
    assert sorted(p.name for p in path.parent.iterdir()) == ["meta.json", "pixels.bin"]


KILLED_MID_WRITE = """
import os, signal, sys
import aelab.data.cache as cache
from aelab.data import ImageFolderDataset

real_put, real_crc, writing = cache.PixelCache.put, cache.zlib.crc32, []

def put(self, slot, x):
    writing[:] = [slot]
    return real_put(self, slot, x)

class Zlib:  # the CRC is computed between the pixels' write and the state's
    @staticmethod
    def crc32(data, *args):
        if writing == [10]:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_crc(data, *args)

cache.PixelCache.put, cache.zlib = put, Zlib
data = ImageFolderDataset(sys.argv[1], cache=sys.argv[2])
for i in range(len(data)):
    data[i]
"""


@pytest.mark.slow
def test_a_process_killed_in_the_middle_of_a_write_leaves_nothing_wrong(folder, tmp_path):
    expected = load_image_folder(folder).images
    cache = tmp_path / "c"
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(folder), str(cache)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    data = ImageFolderDataset(folder, cache=cache)  # a fresh process's view
    raw = data.cache_path.read_bytes()
    offset, length = _slot_bytes(data, 10)
    assert any(raw[offset : offset + length])  # slot 10's pixels were written...
    assert raw[4096 + 80 : 4096 + 88] == bytes(8)  # ...its state was not: it is empty
    assert data.notes == [] and data.cached_items == 10  # slots 0-9
    assert _same(_all(data), expected) and data.cached_items == N


SLOW_FILL = """
import hashlib, os, sys, time
import numpy as np
import torch
import aelab.data.folders as folders
from aelab.data import ImageFolderDataset

real = folders._read_image
folders._read_image = lambda *a, **k: (time.sleep(0.01), real(*a, **k))[1]
open(sys.argv[3] + "-ready", "w").close()
while not os.path.exists(sys.argv[3]):  # start together
    time.sleep(0.002)
data = ImageFolderDataset(sys.argv[1], cache=sys.argv[2], mirror=True)
order = np.random.default_rng(1).permutation(len(data))
data.__getitems__(order[: len(data) // 2].tolist())
items = torch.stack([data[i] for i in range(len(data))]).numpy()
print(data.cached_items, hashlib.sha256(items.tobytes()).hexdigest(), flush=True)
"""


@pytest.mark.slow
def test_two_processes_filling_one_cache_at_once(folder, tmp_path, monkeypatch):
    """A child process and this one create and fill one cache at the same moment, each reading
    in its own order, with a slow decoder (10 ms an image) so that their writes interleave."""
    expected = mirror(load_image_folder(folder)).images
    cache, go = tmp_path / "c", tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_FILL, str(folder), str(cache), str(go)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    real = aelab.data.folders._read_image
    monkeypatch.setattr(
        aelab.data.folders, "_read_image", lambda *a, **k: (time.sleep(0.01), real(*a, **k))[1]
    )
    while not os.path.exists(f"{go}-ready"):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.005)
    go.touch()
    data = ImageFolderDataset(folder, cache=cache, mirror=True)
    order = np.random.default_rng(2).permutation(2 * N)
    mine = torch.stack(data.__getitems__(order.tolist())).numpy()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == "", err
    assert out.split() == [str(2 * N), hashlib.sha256(expected.tobytes()).hexdigest()]
    assert _same(mine, expected[order])
    (key,) = cache.iterdir()  # one cache, shared: no second file, no leftovers
    assert sorted(p.name for p in key.iterdir()) == ["meta.json", "pixels.bin"]
    assert (
        data.cached_items == 2 * N
        and data.cache_path.stat().st_ino == os.stat(key / "pixels.bin").st_ino
    )  # this process kept the file that is in place
    assert _same(_all(ImageFolderDataset(folder, cache=cache, mirror=True)), expected)


def _read(cache: PixelCache, slot: int) -> np.ndarray | None:
    """Slot ``slot`` of ``cache`` when it holds a good item, else None."""
    got = cache.get_many(np.array([slot]))
    return got[0][0] if got is not None and got[1][0] else None


def _cache_of(data) -> PixelCache:
    c = data._cache
    return PixelCache(c.folder, c.key, c.count, c.shape, c.dtype, c.meta)


def test_creating_and_replacing_race_each_other_without_clobbering(folder, tmp_path):
    """The moments two processes' steps can interleave, played in one process."""
    data = ImageFolderDataset(folder, cache=tmp_path / "c")
    path = data.cache_path
    path.unlink()
    (path.parent / "meta.json").unlink()
    late, early = _cache_of(data), _cache_of(data)
    assert late._open_existing() is None  # late finds no file...
    early._mapped(strict=True)  # ...early creates it and fills a slot...
    assert early.put(3, data[3].numpy())
    late._install(None)  # ...late's link fails: it keeps early's file
    assert late._open_existing() is True and _read(late, 3) is not None
    inode = path.stat().st_ino
    # a bad file: both see it; early replaces it first; late must not replace early's
    path.unlink()
    path.write_bytes(b"not a cache")
    bad_late, bad_early = _cache_of(data), _cache_of(data)
    bad = bad_late._open_existing()
    assert isinstance(bad, tuple) and isinstance(bad_early._open_existing(), tuple)
    bad_early._install(bad)
    assert bad_early._open_existing() is True and bad_early.put(5, data[5].numpy())
    good = path.stat().st_ino
    assert good != inode
    bad_late._install(bad)  # moves early's file aside, sees it is not the bad one, puts it back
    assert path.stat().st_ino == good and bad_late._open_existing() is True
    assert _same(_read(bad_late, 5), data[5].numpy())
    assert sorted(p.name for p in path.parent.iterdir()) == ["meta.json", "pixels.bin"]


@pytest.mark.slow
@pytest.mark.parametrize(("context", "workers"), [("fork", 2), ("spawn", 1)])
def test_dataloader_workers_fill_and_read_the_cache(folder, tmp_path, context, workers):
    """Workers map the file themselves (a spawned one gets the dataset pickled, without it)."""
    expected = mirror(load_image_folder(folder, image_size=8)).images
    data = ImageFolderDataset(folder, image_size=8, cache=tmp_path / "c", mirror=True)
    loader = DataLoader(data, batch_size=5, num_workers=workers, multiprocessing_context=context,
                        persistent_workers=True)  # fmt: skip
    assert _same(torch.cat(list(loader)).numpy(), expected)
    assert data.cached_items == 2 * N  # filled by the workers, seen here through the file
    assert _same(torch.cat(list(loader)).numpy(), expected)


def test_a_cache_folder_that_cannot_be_written_is_a_note(folder, tmp_path, decodes):
    expected = load_image_folder(folder).images
    decodes.clear()
    if os.geteuid() == 0:  # root writes anywhere: a folder under a regular file cannot be made
        (tmp_path / "file").write_text("not a folder")
        where = tmp_path / "file" / "cache"
    else:
        where = tmp_path / "locked"
        where.mkdir()
        where.chmod(0o500)
    data = ImageFolderDataset(folder, cache=where)
    assert data.cache_path is None and data.cached_items == 0
    assert len(data.notes) == 1 and data.notes[0].startswith("pixel cache off (")
    assert "images are decoded every epoch" in data.notes[0] and "\n" not in data.notes[0]
    assert _same(_batched(data), expected) and _same(_all(data), expected)
    assert len(decodes) == 1 + 2 * N


def test_no_room_for_the_cache_is_a_note(folder, tmp_path, monkeypatch):
    real = aelab.data.cache.shutil.disk_usage
    monkeypatch.setattr(
        aelab.data.cache.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000)
    )
    data = ImageFolderDataset(folder, cache=tmp_path / "c")
    assert data.cache_path is None and len(data.notes) == 1
    assert "it needs" in data.notes[0] and "9.8 KiB is free" in data.notes[0]
    assert _same(_batched(data), load_image_folder(folder).images)
    assert not any((tmp_path / "c").rglob("pixels.bin*"))


def test_a_read_only_cache_is_read_and_not_written(folder, tmp_path, monkeypatch, decodes):
    expected = load_image_folder(folder).images
    filled = ImageFolderDataset(folder, cache=tmp_path / "c")
    _batched(filled.subset(np.arange(10)))  # 10 of 24 cached
    before = filled.cache_path.read_bytes()
    real_open = os.open

    def read_only(path, flags, *args):  # what a read-only file gives (root ignores chmod)
        if str(path).endswith("pixels.bin") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(aelab.data.cache.os, "open", read_only)
    decodes.clear()
    data = ImageFolderDataset(folder, cache=tmp_path / "c")
    assert data.notes == [f"pixel cache {data.cache_path} is read-only: new images are not stored"]
    assert data.cached_items == 10 and _same(_batched(data), expected)
    assert len(decodes) == 1 + N - 10  # the 14 missing ones, once each
    assert filled.cache_path.read_bytes() == before


def test_what_is_not_aelabs_is_never_touched(folder, tmp_path):
    data = ImageFolderDataset(folder, cache=tmp_path / "c")
    key = data.cache_path.parent
    data.cache_path.unlink()
    theirs = tmp_path / "theirs.bin"
    theirs.write_bytes(b"a file of the user's")
    data.cache_path.symlink_to(theirs)  # pixels.bin a link: never followed nor replaced
    (key / "notes.txt").write_text("mine")
    old = key / "pixels.bin.tmp-12345-0123abcd"  # a temporary file a killed process left
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    young = key / "pixels.bin.tmp-12346-0123abcd"  # another process's, being written now
    young.write_bytes(b"x")
    linked = ImageFolderDataset(folder, cache=tmp_path / "c")
    assert linked.cache_path is None and "is not a file aelab wrote" in linked.notes[0]
    assert theirs.read_bytes() == b"a file of the user's" and data.cache_path.is_symlink()
    data.cache_path.unlink()
    again = ImageFolderDataset(folder, cache=tmp_path / "c")
    assert again.notes == [] and again.cache_path.is_file()
    names = sorted(p.name for p in key.iterdir())
    assert names == ["meta.json", "notes.txt", "pixels.bin", young.name]


def test_bad_cache_values_are_one_line(folder, tmp_path):
    for value in (3, "", "  ", b"bytes", 1.5):
        with pytest.raises(ValueError, match=r"^cache=.* is not valid; allowed: None \(off\)"):
            ImageFolderDataset(folder, cache=value)
    assert ImageFolderDataset(folder, cache=False).cache_path is None
    assert ImageFolderDataset(folder, cache=True).cache_path.is_relative_to(default_cache_dir())
    assert default_cache_dir() == tmp_path / "cache-home" / "pixels"
    with pytest.raises(ValueError, match="cache='off' is not valid without stream=True"):
        DataSpec(source=str(folder), cache="off")
    with pytest.raises(ValueError, match=r"cache=5 is not valid; allowed: 'auto'"):
        DataSpec(source=str(folder), stream=True, cache=5)


def test_the_cache_changes_no_result_and_older_configs_load(folder, tmp_path):
    spec = {"source": str(folder), "stream": True, "holdout": 0.25}
    off = prepare_data(DataSpec(**spec, cache="off"))
    auto = prepare_data(DataSpec(**spec))
    assert off.train.cache_path is None and auto.train.cache_path is not None
    assert off.fingerprint == auto.fingerprint
    old = DataSpec(**spec).to_dict()
    assert "cache" not in old  # the default is not written: older aelab reads the file
    assert DataSpec.from_dict(old).cache == "auto"
    assert DataSpec.from_dict({**old, "cache": str(tmp_path)}).cache == str(tmp_path)
    train = TrainConfig(epochs=1, batch_size=8)
    chosen = tmp_path / "chosen"
    run = train_run("deep", DataSpec(**spec, cache=str(chosen)), train, tmp_path / "run")
    assert json.loads((run.path / "config.json").read_text())["data"]["cache"] == str(chosen)
    (key,) = chosen.iterdir()
    # resuming: a folder named in the run's files is never written to; the default one is
    for p in key.iterdir():
        p.unlink()
    shutil.rmtree(default_cache_dir())
    resume_run(run.path, epochs=2, progress=False)
    assert list(key.iterdir()) == []
    assert any(default_cache_dir().rglob("pixels.bin"))


def test_the_command_line_writes_the_cache_and_refuses_it_without_stream(folder, tmp_path,
                                                                         capsys):  # fmt: skip
    cache, out = tmp_path / "c", tmp_path / "run"
    args = ["train", "deep", "--data", str(folder), "--stream", "--cache", str(cache),
            "--epochs", "1", "--out", str(out), "--quiet", "--batch-size", "8"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    (key,) = cache.iterdir()
    assert f"pixels cached in {key}" in err
    assert json.loads((key / "meta.json").read_text())["count"] == N
    assert json.loads((out / "config.json").read_text())["data"]["cache"] == str(cache)
    data = ImageFolderDataset(folder, cache=cache)
    assert data.cache_path == key / "pixels.bin" and data.cached_items == N
    for flags, flag in ((["--no-cache"], "--no-cache"), (["--cache", str(cache)], "--cache")):
        code = main(["train", "deep", "--data", str(folder), *flags, "--epochs", "1", "--out",
                     str(tmp_path / "no"), "--quiet"])  # fmt: skip
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"aelab train: error: {flag} is only meaningful with --stream")
        assert not (tmp_path / "no").exists()
    no_cache = ["train", "deep", "--data", str(folder), "--stream", "--no-cache", "--epochs", "1",
                "--out", str(tmp_path / "plain"), "--quiet", "--batch-size", "8"]  # fmt: skip
    assert main(no_cache) == 0
    assert "pixels cached" not in capsys.readouterr().err
    assert not default_cache_dir().exists()
