"""Convolution kernels chosen per layer and per pass, by timing them on the CPU.

On a CPU PyTorch runs a convolution either with oneDNN or with its own kernels ("native"), and
one global flag decides for the forward pass and both backward passes of every layer. The
fastest kernel differs by layer and by pass: on a 2-core AVX2 CPU, the notebook's conv model
computes the weight gradients of its transposed convolutions 1.35-2.9x faster in PyTorch's
kernels, and everything else fastest in oneDNN (``benchmarks/README.md``).

:func:`tune` times each pass of each large convolution in both, on the input the layer really
gets, and keeps the faster; :func:`use` runs a model with those choices. This is cuDNN's benchmark
mode for CPUs, and like it, it picks by timing: two runs may pick differently and then differ in
the last bits of their floats. A run directory records the choices, so a resumed run uses the
same ones.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

BACKENDS = ("onednn", "native")
# What TrainConfig.conv_kernels takes: "auto" tunes (below), "default" leaves PyTorch's choice.
CONV_KERNELS = ("auto", "default")
# Layers whose forward pass costs less than this at the training batch keep PyTorch's choice:
# each of their passes takes about a millisecond, where timing noise outweighs any gain.
MIN_FLOPS = 5e7
# PyTorch's own kernel is chosen only when it takes at most this fraction of oneDNN's time, so
# that timing noise does not flip a choice between kernels that are equally fast.
MARGIN = 0.9


class ConvKernels(NamedTuple):
    """The backend of each pass of one convolution: ``"onednn"`` or ``"native"``."""

    forward: str = "onednn"
    input_grad: str = "onednn"
    weight_grad: str = "onednn"


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """CPU convolutions inside the block run in ``name``: ``"onednn"`` or ``"native"``."""
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r} is not valid; allowed: {', '.join(BACKENDS)}")
    before = torch.backends.mkldnn.set_flags(_enabled=name == "onednn", _fp32_precision=None)
    try:
        yield
    finally:
        torch.backends.mkldnn.set_flags(_enabled=before[0], _fp32_precision=None)


def supported(module: nn.Module) -> bool:
    """Whether :func:`use` can run ``module``: a 2-D (transposed) convolution, zero padding."""
    return (
        isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def geometry(module: nn.Module) -> tuple:
    """``(stride, padding, dilation, transposed, output_padding, groups)`` of ``module``, the
    arguments ``torch.ops.aten.convolution`` takes after the bias."""
    transposed = isinstance(module, nn.ConvTranspose2d)
    output_padding = list(module.output_padding) if transposed else [0] * len(module.stride)
    return (
        list(module.stride),
        list(module.padding),
        list(module.dilation),
        transposed,
        output_padding,
        module.groups,
    )


def passes(x, weight, bias, geom, grad) -> tuple[Callable, Callable, Callable]:
    """The three passes of a convolution as functions of no arguments: the forward pass, the
    gradient to the input and the gradient to the weight (and bias), for the output gradient
    ``grad``. :func:`tune` and the benchmark's ``layers`` section time these."""
    bias_sizes = None if bias is None else list(bias.shape)
    args = (grad, x, weight, bias_sizes, *geom)
    return (
        lambda: torch.ops.aten.convolution(x, weight, bias, *geom),
        lambda: torch.ops.aten.convolution_backward(*args, [True, False, False]),
        lambda: torch.ops.aten.convolution_backward(*args, [False, True, bias is not None]),
    )


class _Convolution(torch.autograd.Function):
    """A convolution whose forward pass and two gradients each run in their own backend."""

    @staticmethod
    def forward(ctx, x, weight, bias, geom, kernels):
        ctx.save_for_backward(x, weight)
        ctx.geom, ctx.kernels, ctx.bias_sizes = geom, kernels, None
        if bias is not None:
            ctx.bias_sizes = list(bias.shape)
        with backend(kernels.forward):
            return torch.ops.aten.convolution(x, weight, bias, *geom)  # (B, C_out, H', W')

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        args = (grad, x, weight, ctx.bias_sizes, *ctx.geom)
        grad_x = grad_w = grad_b = None
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if need_x:
            with backend(ctx.kernels.input_grad):
                grad_x = torch.ops.aten.convolution_backward(*args, [True, False, False])[0]
        if need_w or need_b:
            with backend(ctx.kernels.weight_grad):
                _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                    *args, [False, need_w, need_b]
                )
        return grad_x, grad_w, grad_b, None, None


def _forward(module: nn.Module, x: torch.Tensor, output_size=None, *, geom, kernels):
    if output_size is not None:  # a transposed convolution told its output size: PyTorch's way
        return type(module).forward(module, x, output_size)
    return _Convolution.apply(x, module.weight, module.bias, geom, kernels)


@contextlib.contextmanager
def use(model: nn.Module, choices: Mapping[str, ConvKernels | tuple]) -> Iterator[nn.Module]:
    """Inside the block, the convolutions named in ``choices`` (names from
    ``model.named_modules()``) run each pass in the backend chosen for it; the rest of the
    model is unchanged. ``choices`` is what :func:`tune` returns, or what a run directory kept."""
    modules = dict(model.named_modules())
    patched = []
    try:
        for name, kernels in choices.items():
            module = modules.get(name)
            if module is None or not supported(module):
                raise ValueError(
                    f"conv_kernels names {name!r}, which is not a convolution of this model"
                )
            kernels = ConvKernels(*kernels)
            for pass_backend in kernels:
                if pass_backend not in BACKENDS:
                    raise ValueError(
                        f"conv_kernels[{name!r}]={tuple(kernels)} is not valid; "
                        f"allowed backends: {', '.join(BACKENDS)}"
                    )
            # an instance attribute shadows the class's forward; deleted again below
            module.forward = functools.partial(
                _forward, module, geom=geometry(module), kernels=kernels
            )
            patched.append(module)
        yield model
    finally:
        for module in patched:
            del module.forward


def forward_flops(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of ``module``'s forward pass from input ``x`` to output ``y``: each output element
    of a convolution (each input element of a transposed one) meets one slice of the weight."""
    transposed = isinstance(module, nn.ConvTranspose2d)
    return 2 * (x if transposed else y).numel() * module.weight[0].numel()


def layer_io(model: nn.Module, *inputs: torch.Tensor) -> list[tuple[nn.Module, Any, Any]]:
    """``(module, input, output)`` of each supported convolution as ``model(*inputs)`` runs it
    (without gradients), in the order they run; each layer's first call only."""
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(module, args, out) -> None:  # a hook that returned a value would replace `out`
        seen.setdefault(module, (args[0], out))

    hooks = [m.register_forward_hook(keep) for m in model.modules() if supported(m)]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return [(module, x, y) for module, (x, y) in seen.items()]


def _best_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: oneDNN builds its kernel on the first call
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def tune(
    model: nn.Module, *inputs: torch.Tensor, repeats: int = 2, min_flops: float | None = None
) -> dict[str, ConvKernels]:
    """Time each pass of each convolution of ``model`` in oneDNN and in PyTorch's own kernels.

    ``model(*inputs)`` is run once to capture what each convolution gets; then each pass is
    timed alone, ``repeats`` times after a warm-up, in each backend, for the layers whose
    forward pass costs at least ``min_flops`` (default :data:`MIN_FLOPS`). Returns, by module name,
    the layers where PyTorch's kernel wins some pass by more than ``1 - MARGIN``; the layers
    left out keep PyTorch's choice (oneDNN). Only CPU tensors with oneDNN available are tuned;
    otherwise the result is empty.
    """
    # a VAE samples, a denoiser corrupts and the timing draws gradients: leave the RNG be
    with torch.random.fork_rng(), torch.no_grad():
        return _tune(model, inputs, repeats, MIN_FLOPS if min_flops is None else min_flops)


def _tune(model, inputs, repeats, min_flops) -> dict[str, ConvKernels]:
    if not inputs or inputs[0].device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return {}
    names = {module: name for name, module in model.named_modules() if supported(module)}
    if not names:
        return {}
    choices = {}
    for module, x, y in layer_io(model, *inputs):
        if forward_flops(module, x, y) < min_flops:
            continue
        grad = torch.randn_like(y)  # same shape and memory format as the output
        bias = None if module.bias is None else module.bias.detach()
        fns = passes(x, module.weight.detach(), bias, geometry(module), grad)
        times = {}
        for name in BACKENDS:
            with backend(name):
                times[name] = [_best_ms(fn, repeats) for fn in fns]
        picked = ConvKernels(
            *(
                "native" if native <= MARGIN * onednn else "onednn"
                for onednn, native in zip(times["onednn"], times["native"], strict=True)
            )
        )
        if picked != ConvKernels():
            choices[names[module]] = picked
    return choices
