"""Each convolution of the notebook's conv model timed alone, in every backend there is."""

from __future__ import annotations

import statistics
import time
from typing import Any

from .machine import sync


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
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def conv_layers(
    name: str = "conv", *, batch: int = 80, device: str = "cpu", repeats: int = 10
) -> dict[str, Any]:
    """Each convolution of recipe ``name`` (on 64x64 images, batch ``batch``) timed alone:
    forward, backward to its input and backward to its weight and bias, in every backend of
    :func:`_conv_backends`. Shows where a conv model's step goes and what the best kernels
    available here could reach."""
    import warnings

    import torch

    from aelab.training import kernels
    from aelab.utils.device import keep_freed_memory

    from ..models import build_model

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
