"""Seconds per epoch and peak memory as a synthetic data set grows: in memory, streamed, and
streamed through the pixel cache (its first epoch fills it, later ones read it): ``cached`` with
the loader workers streaming has, ``cached-inline`` read in the training process."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .end_to_end import timed_process
from .machine import log, typical_epoch

MODES = ("memory", "stream", "cached", "cached-inline")
# /proc/self/status fields, kB: peak and current RSS, and its anonymous part (the heap, torch's
# tensors) apart from file-backed pages (the memory-mapped pixel cache, which the kernel can drop)
_STATUS = {"VmHWM": "peak_rss", "VmRSS": "rss", "RssAnon": "rss_anon", "RssFile": "rss_file"}


def memory_status() -> dict[str, float]:
    """This process's memory from ``/proc/self/status``, in MiB (empty where there is none)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in _STATUS:
                    out[f"{_STATUS[key]}_mib"] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


class _Sampled(Dataset):
    """A streamed dataset that notes the memory of each process reading it (a loader worker or
    the training process), every 20th batch, into ``where/PID.json``: the largest of each."""

    def __init__(self, data, where: str) -> None:
        self.data, self.where, self.batches, self.most = data, where, 0, {}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index]

    def __getitems__(self, indices):
        items = self.data.__getitems__(indices)
        self.batches += 1
        if self.batches % 20 == 1:
            now = memory_status()
            self.most = {k: max(v, self.most.get(k, 0.0)) for k, v in now.items()}
            Path(self.where, f"{os.getpid()}.json").write_text(json.dumps(self.most))
        return items


def _readers(where: Path) -> dict[str, float]:
    """The largest of each memory figure over the processes that read the data."""
    rows = [json.loads(p.read_text()) for p in where.glob("*.json")]
    return {f"reader_{k}": max(r.get(k, 0.0) for r in rows) for k in (rows[0] if rows else {})}


def image_folder(workdir: Path, n: int) -> Path:
    """A folder of ``n`` synthetic 64x64 PNG images under ``workdir``, reused when complete."""
    from ..data import write_image_folder

    folder = workdir / f"images-{n}"
    done = folder / ".complete"
    if not done.is_file():
        start = time.perf_counter()
        write_image_folder(folder, n, image_size=64)
        done.touch()
        log(f"scaling: wrote {n} PNG files in {time.perf_counter() - start:.0f} s")
    return folder


def scaling_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One scaling point, in its own process: train ``spec['model']`` for ``spec['epochs']``
    epochs on the images of ``spec['folder']``, read into memory, streamed from the disk, or
    streamed through a pixel cache in ``spec['cache']`` (``cached``: the first epoch fills it)."""
    import torch

    from aelab.training.recipes import resolve
    from aelab.training.trainer import Trainer

    from ..data import ImageFolderDataset, load_image_folder

    if spec["mode"] == "memory":
        x = torch.from_numpy(load_image_folder(spec["folder"]).images)
    else:
        data = ImageFolderDataset(spec["folder"], cache=spec.get("cache"))  # None: no cache
        if spec.get("cache") and data.cache_path is None:
            raise RuntimeError(f"no pixel cache: {'; '.join(data.notes)}")
        Path(spec["readers"]).mkdir(parents=True, exist_ok=True)
        x = _Sampled(data, spec["readers"])
    settings = {k: spec[k] for k in ("epochs", "device", "workers")}
    resolved = resolve(spec["model"], tuple(x[0].shape), train=settings)
    trainer = Trainer(resolved.recipe.family_class(resolved.model), resolved.train)
    history = trainer.fit(x, progress=False)
    seconds = [h["seconds"] for h in history]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    row = {
        "seconds_per_epoch": typical_epoch(seconds),
        "epoch_seconds": seconds,
        "peak_rss_mib": own,
        "peak_worker_rss_mib": children,
        "final_loss": history[-1]["loss"],
        **{f"end_{k}": v for k, v in memory_status().items()},  # the training process
    }
    if spec["mode"] != "memory":
        row |= _readers(Path(spec["readers"]))
    if spec.get("cache"):  # the first epoch decodes and fills; later ones read
        row["fill_epoch_seconds"] = seconds[0]
        row["cached_items"] = data.cached_items
    return row


def scaling(
    sizes: Sequence[int], *, model: str, workers: int, device: str, workdir: Path, epochs: int = 2
) -> dict[str, Any]:
    rows = []
    modes = [m for m in MODES if workers or m != "cached-inline"]  # without workers: the same
    for mode in modes:
        for n in sizes:
            spec = {"n": n, "mode": mode, "model": model, "epochs": epochs, "device": device}
            spec["workers"] = workers if mode in ("stream", "cached") else 0
            spec["folder"] = str(image_folder(workdir, n))
            spec["readers"] = str(workdir / f"readers-{mode}-{n}")
            if mode.startswith("cached"):  # a fresh cache each time: the first epoch fills it
                spec["cache"] = str(workdir / f"pixel-cache-{n}")
            for fresh in (spec["readers"], spec.get("cache")):
                if fresh is not None:
                    shutil.rmtree(fresh, ignore_errors=True)
            cmd = [sys.executable, "-m", "aelab.bench", "--scaling-worker", json.dumps(spec)]
            log(f"scaling: {mode}, {n} images, {model}")
            proc = timed_process(cmd)
            if proc["exit_code"] != 0:
                raise RuntimeError(f"scaling worker failed: {proc['stderr_tail'][-500:]}")
            row = {"mode": mode, "n": n, "workers": spec["workers"]}
            row |= json.loads(proc["stdout"].strip().splitlines()[-1])
            row["process_peak_rss_mib"] = proc["peak_rss_mib"]
            row["ms_per_1k_images"] = 1000 * row["seconds_per_epoch"] / n * 1000
            rows.append(row)
            log(f"  {row['seconds_per_epoch']:.2f} s/epoch, peak RSS {row['peak_rss_mib']:.0f} MiB")
            if "cache" in spec:
                log(
                    f"  first epoch (filling the cache) {row['fill_epoch_seconds']:.2f} s; "
                    f"readers' peak anonymous RSS {row.get('reader_rss_anon_mib', 0):.0f} MiB "
                    f"of {row.get('reader_peak_rss_mib', 0):.0f} MiB"
                )
    summary: dict[str, Any] = {}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        if len(mine) > 1:
            # 1.0: the cost per image is the same at the largest and the smallest size (linear)
            summary[mode] = {
                "cost_per_image_largest_over_smallest": mine[-1]["ms_per_1k_images"]
                / mine[0]["ms_per_1k_images"],
                "peak_rss_largest_over_smallest": mine[-1]["peak_rss_mib"]
                / mine[0]["peak_rss_mib"],
            }
    summary["cached_vs_memory"] = _versus_memory(rows)
    return {"model": model, "epochs": epochs, "workers": workers, "rows": rows, "summary": summary}


def _versus_memory(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per cached mode and size: the epoch's speed as a share of the in-memory one's (1.0: as
    fast), and the filling epoch's cost against a streamed epoch's."""
    by = {(r["mode"], r["n"]): r for r in rows}
    out = {}
    for (mode, n), row in by.items():
        if mode.startswith("cached") and ("memory", n) in by:
            out[f"{mode} {n}"] = {
                "speed_vs_memory": by["memory", n]["seconds_per_epoch"] / row["seconds_per_epoch"],
                "fill_epoch_vs_stream": row["fill_epoch_seconds"]
                / by.get(("stream", n), row)["seconds_per_epoch"],
            }
    return out
