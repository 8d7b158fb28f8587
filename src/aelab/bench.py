"""``aelab bench`` / ``python -m benchmarks``: how fast aelab trains, measured against this
machine's own limit and against the workshop notebook's stack (a Keras port), in one run, written
as JSON.

Sections (``--sections``, all by default):

``models``
    The notebook's five models on Olivetti (people 0-35 and their mirrors: 720 images 64x64, as
    the Keras port trains): images per second, seconds per epoch (median after the first),
    FLOPs per image (forward and backward of the layers actually run, counted by
    :class:`torch.utils.flop_counter.FlopCounterMode`) and MFU: achieved FLOP/s divided by the
    matrix-multiply peak of the precision used, measured in the same run with a large ``torch.mm``.
``keras``
    The Keras port (``--keras-script`` run by ``--keras-python``) at the same reduced epochs, and
    the ratios Keras/aelab per epoch and aelab/Keras final training loss.
``layers``
    Each convolution of the notebook's conv model (batch 80) timed alone: forward, backward to
    its input, backward to its weights, in oneDNN (cuDNN on a GPU) and PyTorch's own kernels,
    channels-last and NCHW; the sum per backend and with the best backend for each layer.
``end-to-end``
    Wall time of ``aelab run --preset quick`` (default data set) and of
    ``aelab run --preset seed --data olivetti --mirror`` (the notebook's full schedule).
``scaling``
    Seconds per epoch and peak resident memory as a synthetic 64x64 data set grows, held in
    memory and streamed from a folder of PNG files, each size in a fresh process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SECTIONS = ("models", "keras", "layers", "end-to-end", "scaling")
BENCH_MODELS = ("shallow", "deep", "conv", "denoising", "vae")
PRECISIONS = ("fp32", "bf16")
# The Keras port's schedule scaled by --epochs-scale: max(2, round(epochs * scale)).
_HOLDOUT_PEOPLE = 4


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the machine -------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict[str, Any]:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": device,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def typical_epoch(seconds: Sequence[float]) -> float:
    """Seconds per epoch: the median of all epochs but the first (start-up), or the only one."""
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def matmul_peak(precision: str, device: str = "cpu", seconds: float = 1.0) -> dict[str, Any]:
    """The best FLOP/s of a square ``torch.mm`` in ``precision``: the size grows until one
    product takes 0.2 s (or reaches 4096, 8192 on a GPU), then that size is repeated for
    ``seconds`` and the fastest repeat counts."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    largest = 8192 if device.startswith("cuda") else 4096
    n, best = 256, 0.0
    while True:
        a = torch.rand(n, n, device=device, dtype=dtype)
        b = torch.rand(n, n, device=device, dtype=dtype)
        torch.mm(a, b)  # warm-up
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        once = time.perf_counter() - start
        if once > 0.2 or n >= largest:
            break
        n *= 2
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        elapsed = time.perf_counter() - start
        best = max(best, 2 * n**3 / elapsed)
        if time.perf_counter() > deadline:
            break
    return {"precision": precision, "n": n, "flops_per_s": best}


# -- the five models ---------------------------------------------------------------------------


def olivetti_split(data_home: str | None) -> tuple[Any, Any]:
    """People 0-35 with their mirrors for training, 36-39 with mirrors held out: the split the
    Keras port's ``--holdout-people 4`` makes, so the two train on the same images."""
    import numpy as np

    from .data import load_dataset, mirror

    faces = load_dataset("olivetti", data_home=data_home, download=False)
    held = faces.labels >= 40 - _HOLDOUT_PEOPLE
    train = mirror(faces.subset(np.flatnonzero(~held)))
    heldout = mirror(faces.subset(np.flatnonzero(held)))
    return train, heldout


def scaled_epochs(name: str, scale: float) -> int:
    from .workshop import SEED

    return max(2, round(SEED[name]["epochs"] * scale))


def step_flops(model, x, corrupt=None) -> int:
    """FLOPs of one training step (forward and backward) on batch ``x``."""
    from torch.utils.flop_counter import FlopCounterMode

    x_in = corrupt(x) if corrupt is not None else x
    with FlopCounterMode(display=False) as counter:
        model(x_in, x).loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_model(
    name: str,
    x_train,
    *,
    epochs: int,
    precision: str,
    device: str,
    peak: float,
    seed: int = 0,
) -> dict[str, Any]:
    """Train preset ``name`` on ``x_train`` for ``epochs`` with its notebook schedule."""
    import torch

    from .models import build_model
    from .train import TrainConfig, Trainer
    from .workshop import SEED

    schedule = dict(SEED[name])
    schedule["epochs"] = epochs
    config = TrainConfig(**schedule, seed=seed, device=device, precision=precision)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(name, tuple(x_train.shape[1:]))
    trainer = Trainer(model, config)
    # as for the notebook's full schedule, however few epochs are measured here
    trainer.tune_conv_kernels(x_train)
    probe = x_train[: config.batch_size].to(trainer.device, memory_format=trainer.memory_format)
    with trainer.autocast():
        flops_per_image = step_flops(trainer.model, probe, trainer.corrupt) / len(probe)
    history = trainer.fit(x_train, progress=False)
    seconds = [h["seconds"] for h in history]
    per_epoch = typical_epoch(seconds)
    n = len(x_train)
    achieved = flops_per_image * n / per_epoch
    return {
        "params": model.num_parameters(),
        "epochs": epochs,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "precision": precision,
        "n_train": n,
        "seconds_per_epoch": per_epoch,
        "first_epoch_seconds": seconds[0],
        "images_per_s": n / per_epoch,
        "flops_per_image": flops_per_image,
        "flops_per_s": achieved,
        "mfu": achieved / peak,
        "conv_kernels": {k: list(v) for k, v in (trainer.conv_kernels or {}).items()},
        "tuning_seconds": trainer.tuning_seconds,
        "first_loss": history[0]["loss"],
        "final_loss": history[-1]["loss"],
    }


# -- the Keras port ----------------------------------------------------------------------------


def run_keras(
    python: str, script: str, *, scale: float, mat: str | None, models: Sequence[str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "keras.json"
        cmd = [python, script, "--epochs-scale", str(scale), "--holdout-people", "4"]
        cmd += ["--models", ",".join(models), "--json", str(out)]
        if mat is not None:
            cmd += ["--mat", mat]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            tail = " ".join(proc.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"the Keras port failed (exit {proc.returncode}): {tail}")
        result = json.loads(out.read_text())
    result["wall_seconds"] = time.perf_counter() - start
    return result


def merge_keras(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One Keras result from runs of one model each: their models together, wall times summed."""
    merged = {**runs[0], "models": {}, "wall_seconds": 0.0}
    for run_ in runs:
        merged["models"].update(run_["models"])
        merged["wall_seconds"] += run_["wall_seconds"]
    return merged


def compare(aelab: dict[str, Any], keras: dict[str, Any]) -> dict[str, Any]:
    """Per model: how many times faster per epoch aelab is, and its final loss over Keras's."""
    rows = {}
    for name, ours in aelab.items():
        theirs = keras["models"].get(name)
        if theirs is None:
            continue
        rows[name] = {
            "epochs": ours["epochs"],
            "keras_epochs": theirs["epochs"],
            "aelab_seconds_per_epoch": ours["seconds_per_epoch"],
            "keras_seconds_per_epoch": theirs["seconds_per_epoch"],
            "speedup": theirs["seconds_per_epoch"] / ours["seconds_per_epoch"],
            "aelab_final_loss": ours["final_loss"],
            "keras_final_loss": theirs["final_loss"],
            "loss_ratio": ours["final_loss"] / theirs["final_loss"],
        }
    return rows


# -- end to end --------------------------------------------------------------------------------


def timed_process(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``: its wall time, exit code, output and peak resident memory (the process's own,
    or its largest child's when that is larger, e.g. a data loader worker)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return {
        "command": " ".join(cmd),
        "wall_seconds": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "exit_code": proc.returncode,
        "stdout": stdout,
        "stderr_tail": stderr[-2000:],
    }


END_TO_END = {
    "quick": ["--preset", "quick"],
    "seed": ["--preset", "seed", "--data", "olivetti", "--mirror"],
}


def end_to_end(
    data_home: str | None, device: str, workdir: Path, presets: Sequence[str] = tuple(END_TO_END)
) -> dict[str, Any]:
    """``aelab run`` as a user runs it: the quick preset on the default data set, and the
    notebook's full schedule (``seed``) on Olivetti with mirrors."""
    results = {}
    for key in presets:
        args = END_TO_END[key]
        cmd = [sys.executable, "-m", "aelab", "run", *args, "--out", str(workdir / key)]
        cmd += ["--device", device, "--quiet"]
        if data_home is not None:
            cmd += ["--data-home", data_home]
        _log(f"end-to-end: {' '.join(cmd[1:])}")
        result = timed_process(cmd)
        if result["exit_code"] != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed: {result['stderr_tail'][-500:]}")
        result["command"] = _portable(cmd, workdir, data_home)
        metrics = json.loads((workdir / key / "metrics.json").read_text())
        result["models"] = {
            name: {k: m.get(k) for k in ("epochs", "train_seconds", "final_loss")}
            for name, m in metrics.get("models", {}).items()
        }
        del result["stdout"], result["stderr_tail"]
        results[key] = result
        _log(f"  {result['wall_seconds']:.0f} s")
    return results


# -- scaling -----------------------------------------------------------------------------------


def image_folder(workdir: Path, n: int) -> Path:
    """A folder of ``n`` synthetic 64x64 PNG images under ``workdir``, reused when complete."""
    from .data import write_image_folder

    folder = workdir / f"images-{n}"
    done = folder / ".complete"
    if not done.is_file():
        start = time.perf_counter()
        write_image_folder(folder, n, image_size=64)
        done.touch()
        _log(f"scaling: wrote {n} PNG files in {time.perf_counter() - start:.0f} s")
    return folder


def scaling_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One scaling point, in its own process: train ``spec['model']`` for ``spec['epochs']``
    epochs on the images of ``spec['folder']``, read into memory or streamed from the disk."""
    import torch

    from .data import ImageFolderDataset, load_image_folder
    from .models import build_model
    from .train import TrainConfig, Trainer
    from .workshop import SEED

    schedule = dict(SEED[spec["model"]])
    schedule.update(epochs=spec["epochs"], device=spec["device"], workers=spec["workers"])
    config = TrainConfig(**schedule)

    if spec["mode"] == "memory":
        x = torch.from_numpy(load_image_folder(spec["folder"]).images)
    else:
        x = ImageFolderDataset(spec["folder"])
    model = build_model(spec["model"], tuple(x[0].shape))
    trainer = Trainer(model, config)
    history = trainer.fit(x, progress=False)
    seconds = [h["seconds"] for h in history]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds_per_epoch": typical_epoch(seconds),
        "epoch_seconds": seconds,
        "peak_rss_mib": own,
        "peak_worker_rss_mib": children,
        "final_loss": history[-1]["loss"],
    }


def scaling(
    sizes: Sequence[int], *, model: str, workers: int, device: str, workdir: Path, epochs: int = 2
) -> dict[str, Any]:
    rows = []
    for mode in ("memory", "stream"):
        for n in sizes:
            spec = {"n": n, "mode": mode, "model": model, "epochs": epochs, "device": device}
            spec["workers"] = workers if mode == "stream" else 0
            spec["folder"] = str(image_folder(workdir, n))
            cmd = [sys.executable, "-m", "aelab.bench", "--scaling-worker", json.dumps(spec)]
            _log(f"scaling: {mode}, {n} images, {model}")
            proc = timed_process(cmd)
            if proc["exit_code"] != 0:
                raise RuntimeError(f"scaling worker failed: {proc['stderr_tail'][-500:]}")
            row = {"mode": mode, "n": n, **json.loads(proc["stdout"].strip().splitlines()[-1])}
            row["process_peak_rss_mib"] = proc["peak_rss_mib"]
            row["ms_per_1k_images"] = 1000 * row["seconds_per_epoch"] / n * 1000
            rows.append(row)
            _log(
                f"  {row['seconds_per_epoch']:.2f} s/epoch, peak RSS {row['peak_rss_mib']:.0f} MiB"
            )
    summary = {}
    for mode in ("memory", "stream"):
        mine = [r for r in rows if r["mode"] == mode]
        if len(mine) > 1:
            # 1.0: the cost per image is the same at the largest and the smallest size (linear)
            summary[mode] = {
                "cost_per_image_largest_over_smallest": mine[-1]["ms_per_1k_images"]
                / mine[0]["ms_per_1k_images"],
                "peak_rss_largest_over_smallest": mine[-1]["peak_rss_mib"]
                / mine[0]["peak_rss_mib"],
            }
    return {"model": model, "epochs": epochs, "workers": workers, "rows": rows, "summary": summary}


# -- the conv model's layers -------------------------------------------------------------------


def _conv_backends(device: str) -> list[tuple[str, Any, Any]]:
    """``(name, flags, memory format)`` for each way ``device`` can run a convolution: the
    vendor library (oneDNN on a CPU, cuDNN on a GPU) or PyTorch's own kernels, each with
    channels-last or NCHW tensors."""
    import torch

    if device.startswith("cuda"):
        lib = torch.backends.cudnn
        engines = [
            ("cudnn", lambda: lib.flags(enabled=True)),
            ("native", lambda: lib.flags(enabled=False)),
        ]
    else:
        lib = torch.backends.mkldnn
        engines = [
            ("onednn", lambda: lib.flags(enabled=True)),
            ("native", lambda: lib.flags(enabled=False)),
        ]
    layouts = [("channels-last", torch.channels_last), ("nchw", torch.contiguous_format)]
    return [(f"{e}, {name}", flags, fmt) for e, flags in engines for name, fmt in layouts]


def _median_ms(fn, device: str, repeats: int) -> float:
    for _ in range(2):  # warm-up: kernel choice, caches
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def conv_layers(
    name: str = "conv", *, batch: int = 80, device: str = "cpu", repeats: int = 10
) -> dict[str, Any]:
    """Each convolution of preset ``name`` (on 64x64 images, batch ``batch``) timed alone:
    forward, backward to its input and backward to its weight and bias, in every backend of
    :func:`_conv_backends`. Shows where a conv model's step goes and what the best kernels
    available here could reach."""
    import warnings

    import torch

    from . import kernels
    from .device import keep_freed_memory
    from .models import build_model

    model = build_model(name, (1, 64, 64))
    seen = kernels.layer_io(model, torch.rand(batch, 1, 64, 64))
    rows = []
    with keep_freed_memory(torch.device(device)), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mkldnn.flags() warns about Intel GPUs
        for backend, flags, fmt in _conv_backends(device):
            for index, (mod, x, y) in enumerate(seen):
                x = x.to(device, memory_format=fmt)
                w = mod.weight.detach().to(device, memory_format=fmt)
                b = mod.bias.detach().to(device) if mod.bias is not None else None
                gy = torch.randn(y.shape, device=device).contiguous(memory_format=fmt)
                fns = kernels.passes(x, w, b, kernels.geometry(mod), gy)
                with flags():
                    fwd, bwd_in, bwd_w = (_median_ms(fn, device, repeats) for fn in fns)
                flops = kernels.forward_flops(mod, x, y)
                needs_input_grad = index > 0  # the image needs no gradient
                step = fwd + bwd_w + (bwd_in if needs_input_grad else 0.0)
                rows.append(
                    {
                        "layer": index,
                        "module": repr(mod),
                        "input_shape": list(x.shape),
                        "backend": backend,
                        "forward_gflop": flops / 1e9,
                        "forward_ms": fwd,
                        "backward_input_ms": bwd_in,
                        "backward_weight_ms": bwd_w,
                        "needs_input_grad": needs_input_grad,
                        "step_ms": step,
                        "step_gflop_per_s": flops * (2 + needs_input_grad) / step / 1e6,
                    }
                )
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    per_backend = {k: sum(r["step_ms"] for r in rows if r["backend"] == k) for k in backends}
    best = [
        min((r for r in rows if r["layer"] == i), key=lambda r: r["step_ms"])
        for i in range(len(seen))
    ]
    # each pass in the fastest channels-last backend: what `--conv-kernels auto` can reach
    per_pass = 0.0
    for i in range(len(seen)):
        mine = [r for r in rows if r["layer"] == i and r["backend"].endswith("channels-last")]
        keys = ["forward_ms", "backward_weight_ms"]
        keys += ["backward_input_ms"] if mine[0]["needs_input_grad"] else []
        per_pass += sum(min(r[k] for r in mine) for k in keys)
    return {
        "model": name,
        "batch": batch,
        "repeats": repeats,
        "rows": rows,
        "step_ms_per_backend": per_backend,
        "best_per_layer": [
            {"layer": r["layer"], "backend": r["backend"], "step_ms": r["step_ms"]} for r in best
        ],
        "step_ms_best_per_layer": sum(r["step_ms"] for r in best),
        "step_ms_best_per_pass_channels_last": per_pass,
    }


# -- the command -------------------------------------------------------------------------------


def _portable(cmd: Sequence[str], *folders: str | os.PathLike | None) -> str:
    """``cmd`` as text without this machine's paths: ``python`` for the interpreter, paths under
    the current folder relative to it, and ``folders`` (temporary places) as ``DIR``."""
    words = []
    for word in cmd:
        word = "python" if word == sys.executable else str(word)
        for folder in folders:
            if folder is not None and word.startswith(str(folder)):
                word = "DIR" + word[len(str(folder)) :]
        if os.path.isabs(word) and os.path.exists(word):
            rel = os.path.relpath(word)
            word = rel if not rel.startswith(".." + os.sep + "..") else os.path.basename(word)
        words.append(word)
    return " ".join(words)


def _choices(flag: str, text: str, allowed: Sequence[str]) -> list[str]:
    """A comma-separated ``--flag`` value: one or more of ``allowed``, else a one-line error."""
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    if not chosen or any(s not in allowed for s in chosen):
        raise ValueError(f"--{flag}={text!r} is not valid; allowed: {', '.join(allowed)}")
    return chosen


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--scaling-sizes={text!r} is not valid; expected e.g. 1000,10000,100000")
    return sizes


def build_parser(prog: str = "aelab bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Measure aelab's training speed against this machine's matmul peak and the "
        "notebook's Keras port; write the results as JSON.",
    )
    p.add_argument("--out", metavar="FILE", help="the JSON file (default bench-DATE-TIME.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier --out file")
    p.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)} (all)"
    )
    p.add_argument("--models", default=",".join(BENCH_MODELS), help="which of the five (all)")
    p.add_argument(
        "--epochs-scale",
        type=float,
        default=0.05,
        help="the notebook's epochs times this, at least 2, for aelab and Keras alike (0.05)",
    )
    p.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (default auto)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--data-home", metavar="DIR", help="where olivetti is (see aelab datasets)")
    p.add_argument("--olivetti-mat", metavar="FILE", help="the original olivettifaces.mat")
    p.add_argument("--keras-python", metavar="PYTHON", help="a Python with TensorFlow and Keras")
    p.add_argument("--keras-script", metavar="FILE", help="the notebook's Keras port")
    p.add_argument("--scaling-sizes", default="1000,10000,100000", help="synthetic data set sizes")
    p.add_argument("--scaling-model", default="deep", help="the model scaled (default deep)")
    p.add_argument("--workers", type=int, default=2, help="data loader workers when streaming")
    p.add_argument("--workdir", metavar="DIR", help="keep generated images and runs here")
    p.add_argument(
        "--presets", default="quick,seed", help="end-to-end runs: quick, seed or both (both)"
    )
    p.add_argument("--scaling-worker", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "aelab bench") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    args.command = _portable([prog, *argv], args.workdir)
    if args.scaling_worker:
        print(json.dumps(scaling_worker(json.loads(args.scaling_worker))))
        return 0
    try:
        return run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import torch

    from .device import resolve_device, resolve_precision

    sections = _choices("sections", args.sections, SECTIONS)
    models = _choices("models", args.models, BENCH_MODELS)
    sizes = _sizes(args.scaling_sizes)
    presets = _choices("presets", args.presets, tuple(END_TO_END))
    if not args.epochs_scale > 0:
        raise ValueError(f"--epochs-scale={args.epochs_scale} is not valid; expected > 0")
    if args.workers < 0:
        raise ValueError(f"--workers={args.workers} is not valid; expected an integer >= 0")
    device = str(resolve_device(args.device))
    precision = resolve_precision(args.precision, torch.device(device))
    if "keras" in sections and not (args.keras_python and args.keras_script):
        raise ValueError(
            "--sections includes keras: pass --keras-python and --keras-script "
            "(see benchmarks/README.md), or leave keras out of --sections"
        )
    for flag in ("keras_python", "keras_script", "olivetti_mat"):
        value = getattr(args, flag)
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"--{flag.replace('_', '-')}='{value}': no such file")
    out = Path(args.out or f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out='{out}' exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out='{out}': folder '{out.parent}' does not exist")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data_home = args.data_home
        if args.olivetti_mat is not None and data_home is None:
            data_home = str(workdir / "data_home")
            Path(data_home).mkdir(exist_ok=True)
            target = Path(data_home) / "olivettifaces.mat"
            if not target.exists():
                target.symlink_to(Path(args.olivetti_mat).resolve())
        result: dict[str, Any] = {
            "aelab_bench": 1,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": args.command,
            "machine": machine_info(device),
            "sections": sections,
        }
        result["peak"] = {p: matmul_peak(p, device) for p in PRECISIONS}
        for p, v in result["peak"].items():
            _log(f"peak {p} matmul: {v['flops_per_s'] / 1e9:.1f} GFLOP/s (n={v['n']})")
        if "models" in sections or "keras" in sections:
            x_train, _ = olivetti_split(data_home)
            x = torch.from_numpy(x_train.images)
            peak = result["peak"][precision]["flops_per_s"]
            result["models"] = {}
            keras_runs = []
            for name in models:
                epochs = scaled_epochs(name, args.epochs_scale)
                row = bench_model(
                    name, x, epochs=epochs, precision=precision, device=device, peak=peak
                )
                result["models"][name] = row
                _log(
                    f"{name}: {row['seconds_per_epoch']:.3f} s/epoch, "
                    f"{row['images_per_s']:,.0f} images/s, MFU {row['mfu']:.1%}, "
                    f"final loss {row['final_loss']:.5f} after {epochs} epochs"
                )
                if "keras" in sections:  # right after aelab's: a shared VM drifts within minutes
                    keras_runs.append(
                        run_keras(
                            args.keras_python,
                            args.keras_script,
                            scale=args.epochs_scale,
                            mat=args.olivetti_mat,
                            models=[name],
                        )
                    )
                    versus = compare({name: row}, keras_runs[-1])[name]
                    _log(
                        f"  Keras: {versus['keras_seconds_per_epoch']:.3f} s/epoch; aelab "
                        f"{versus['speedup']:.2f}x faster, final loss "
                        f"{versus['loss_ratio']:.3f}x Keras's"
                    )
            if keras_runs:
                result["keras"] = merge_keras(keras_runs)
                result["versus_keras"] = compare(result["models"], result["keras"])
        if "layers" in sections:
            from .workshop import SEED

            _log("layers: each convolution of the conv model alone, in every backend")
            layers = conv_layers("conv", batch=SEED["conv"]["batch_size"], device=device)
            result["layers"] = layers
            for backend, ms in layers["step_ms_per_backend"].items():
                _log(f"  {backend}: {ms:.0f} ms per step in convolutions")
            _log(f"  best backend per layer: {layers['step_ms_best_per_layer']:.0f} ms")
        if "end-to-end" in sections:
            result["end_to_end"] = end_to_end(data_home, device, workdir, presets)
            if "keras" in result:
                result["end_to_end"]["keras_seed_total_seconds_estimate"] = _keras_seed_total(
                    result["keras"]
                )
        if "scaling" in sections:
            result["scaling"] = scaling(
                sizes,
                model=args.scaling_model,
                workers=args.workers,
                device=device,
                workdir=workdir,
            )
        # measured again at the end: how far the machine's speed drifted during the run
        result["peak_end"] = {precision: matmul_peak(precision, device)}
        _log(
            f"peak {precision} matmul at the end: "
            f"{result['peak_end'][precision]['flops_per_s'] / 1e9:.1f} GFLOP/s"
        )
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"wrote {out}")
    return 0


def _keras_seed_total(keras: dict[str, Any]) -> float:
    """The Keras port's total fit time for the notebook's full schedule: measured when it ran
    at ``--epochs-scale 1``, otherwise its first epoch plus the median epoch times the rest."""
    from .workshop import SEED

    total = 0.0
    for name, row in keras["models"].items():
        if keras.get("epochs_scale") == 1:
            total += row["fit_seconds"]
        else:
            total += row["first_epoch_seconds"] + row["seconds_per_epoch"] * (
                SEED[name]["epochs"] - 1
            )
    return total


if __name__ == "__main__":
    sys.exit(main())
