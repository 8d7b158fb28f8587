"""Convolution kernels chosen per layer and per pass, by timing them on the CPU.

On a CPU PyTorch runs a convolution either with oneDNN or with its own kernels ("native"), and
one global flag decides for the forward pass and both backward passes of every layer. The
fastest kernel differs by layer and by pass: on a 2-core AVX2 CPU, the notebook's conv model
computes the weight gradients of its transposed convolutions 1.35-2.9x faster in PyTorch's
kernels, and everything else fastest in oneDNN (``benchmarks/README.md``).

A transposed convolution is the adjoint of the ordinary convolution with the same weight: its
forward pass is that convolution's gradient to its input, its gradient to the input is that
convolution's forward pass, and its weight gradient is that convolution's weight gradient with
the roles of input and output gradient swapped. Each pass can run either way (the "adjoint"
route); the numbers are the same (bit for bit in float32 on oneDNN), the kernels are not: in
bfloat16 oneDNN computes a convolution's input gradient 2-5x faster than the same arithmetic
as a transposed convolution (``benchmarks/README.md``).

:func:`tune` times each pass of each large convolution in every kernel (backend and route), on
the input the layer really gets and in the precision it runs in, and keeps the fastest; :func:`use`
runs a model with those choices. This is cuDNN's benchmark mode for CPUs, and like it, it picks
by timing: two runs may pick differently and then differ in the last bits of their floats. A run
directory records the choices, so a resumed run uses the same ones.
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

from aelab.models.layers import autocast_on, is_full_precision, no_autocast

BACKENDS = ("onednn", "native")
# A pass's kernel: a backend, computing the pass directly or (transposed convolutions only) as the
# adjoint ordinary convolution's pass (module docstring).
ADJOINT = "-adjoint"
KERNELS = (*BACKENDS, *(name + ADJOINT for name in BACKENDS))
# What TrainConfig.conv_kernels takes: "auto" tunes (below), "default" leaves PyTorch's choice.
CONV_KERNELS = ("auto", "default")
# Layers whose forward pass costs less than this at the training batch keep PyTorch's choice:
# each of their passes takes about a millisecond, where timing noise outweighs any gain.
MIN_FLOPS = 5e7
# Another kernel is chosen only when it takes at most this fraction of PyTorch's choice's time,
# so that timing noise does not flip a choice between kernels that are equally fast.
MARGIN = 0.9
# A kernel whose first (warm-up) call takes this many times the best time so far is not timed
# again: PyTorch's own bfloat16 convolutions can take seconds where oneDNN's take milliseconds.
GIVE_UP = 4.0


class ConvKernels(NamedTuple):
    """The kernel of each pass of one convolution, one of :data:`KERNELS`: ``"onednn"`` or
    ``"native"``, with ``"-adjoint"`` for a transposed convolution's pass computed as the
    ordinary convolution's (module docstring)."""

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


def kernels_for(module: nn.Module) -> tuple[str, ...]:
    """The kernels each pass of ``module`` can run in: the adjoint route for transposed ones."""
    return KERNELS if isinstance(module, nn.ConvTranspose2d) else BACKENDS


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


def _adjoint(geom: tuple) -> tuple:
    """The geometry of the ordinary convolution a transposed one (``geom``) is the adjoint of."""
    stride, padding, dilation, _, output_padding, groups = geom
    return (stride, padding, dilation, False, [0] * len(output_padding), groups)


def _run(kernel: str, which: str, x, weight, bias, geom, grad=None):
    """One pass of a convolution in ``kernel``: ``which`` is ``"forward"`` (returns the output),
    ``"input_grad"`` (the input's gradient) or ``"weight_grad"`` (the weight's and bias's)."""
    name, adjoint = kernel.removesuffix(ADJOINT), kernel.endswith(ADJOINT)
    conv, backward = torch.ops.aten.convolution, torch.ops.aten.convolution_backward
    has_bias = bias is not None
    with backend(name):
        if not adjoint:
            if which == "forward":
                return conv(x, weight, bias, *geom)
            sizes = list(bias.shape) if has_bias else None
            if which == "input_grad":
                return backward(grad, x, weight, sizes, *geom, [True, False, False])[0]
            return backward(grad, x, weight, sizes, *geom, [False, True, has_bias])[1:]
        ordinary = _adjoint(geom)
        if which == "forward":  # the ordinary convolution's input gradient, x as its output's
            shape = _transposed_shape(x, weight, geom)  # (B, C_out, H', W'): only its shape
            out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_layout(x))
            y = backward(x, out, weight, None, *ordinary, [True, False, False])[0]
            return y if bias is None else y.add_(bias.view(1, -1, *([1] * (y.dim() - 2))))
        if which == "input_grad":
            return conv(grad, weight, None, *ordinary)
        grad_w = backward(x, grad, weight, None, *ordinary, [False, True, False])[1]
        return grad_w, grad.sum([0, *range(2, grad.dim())]) if has_bias else None


def _transposed_shape(x, weight, geom) -> list[int]:
    stride, padding, dilation, _, output_padding, groups = geom
    sizes = [
        (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        for n, k, s, p, d, op in zip(
            x.shape[2:], weight.shape[2:], stride, padding, dilation, output_padding
        )
    ]
    return [x.shape[0], weight.shape[1] * groups, *sizes]


def _layout(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def passes(x, weight, bias, geom, grad, kernel: str = "onednn") -> tuple[Callable, ...]:
    """The three passes of a convolution as functions of no arguments: the forward pass, the
    gradient to the input and the gradient to the weight (and bias), for the output gradient
    ``grad``, each in ``kernel`` (:data:`KERNELS`). :func:`tune` and the benchmark's ``layers``
    section time these."""
    return tuple(
        functools.partial(_run, kernel, which, x, weight, bias, geom, grad)
        for which in ConvKernels._fields
    )


class _Convolution(torch.autograd.Function):
    """A convolution whose forward pass and two gradients each run in their own kernel."""

    @staticmethod
    def forward(ctx, x, weight, bias, geom, kernels):
        ctx.save_for_backward(x, weight)
        ctx.geom, ctx.kernels = geom, kernels
        # the gradients read only the bias's shape
        ctx.bias = None if bias is None else torch.empty(bias.shape, device="meta")
        return _run(kernels.forward, "forward", x, weight, bias, geom)  # (B, C_out, H', W')

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        bias = ctx.bias
        grad_x = grad_w = grad_b = None
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if need_x:
            grad_x = _run(ctx.kernels.input_grad, "input_grad", x, weight, bias, ctx.geom, grad)
        if need_w or need_b:
            kernel, bias = ctx.kernels.weight_grad, bias if need_b else None  # no unasked grad
            grad_w, grad_b = _run(kernel, "weight_grad", x, weight, bias, ctx.geom, grad)
        return grad_x, grad_w, grad_b, None, None


def _forward(module: nn.Module, x: torch.Tensor, output_size=None, *, geom, kernels):
    if output_size is not None:  # a transposed convolution told its output size: PyTorch's way
        return type(module).forward(module, x, output_size)
    weight, bias = module.weight, module.bias
    device = x.device.type
    if not autocast_on(device):
        return _Convolution.apply(x, weight, bias, geom, kernels)
    if is_full_precision(module):  # aelab.models.layers: in the weight's dtype, autocast off
        with no_autocast(device):
            return _Convolution.apply(x.to(weight.dtype), weight, bias, geom, kernels)
    dtype = torch.get_autocast_dtype(device)  # as autocast runs a convolution: in its dtype
    x, weight = x.to(dtype), weight.to(dtype)
    bias = None if bias is None else bias.to(dtype)
    return _Convolution.apply(x, weight, bias, geom, kernels)


def check_kernels(name: str, module: nn.Module, kernels: ConvKernels | tuple) -> ConvKernels:
    """``kernels`` for ``module`` (named ``name``) as a :class:`ConvKernels`, or a one-line error
    saying what that convolution allows."""
    allowed = kernels_for(module)
    try:
        checked = ConvKernels(*kernels)
    except TypeError:
        checked = None
    if checked is None or any(k not in allowed for k in checked):
        raise ValueError(
            f"conv_kernels[{name!r}]={tuple(kernels)} is not valid; allowed kernels for "
            f"{type(module).__name__}: {', '.join(allowed)}"
        )
    return checked


@contextlib.contextmanager
def use(model: nn.Module, choices: Mapping[str, ConvKernels | tuple]) -> Iterator[nn.Module]:
    """Inside the block, the convolutions named in ``choices`` (names from
    ``model.named_modules()``) run each pass in the kernel chosen for it, in the dtype autocast
    gives the convolution when it is on; the rest of the model is unchanged. ``choices`` is what
    :func:`tune` returns, or what a run directory kept."""
    modules = dict(model.named_modules())
    patched = []
    try:
        for name, kernels in choices.items():
            module = modules.get(name)
            if module is None or not supported(module):
                raise ValueError(
                    f"conv_kernels names {name!r}, which is not a convolution of this model"
                )
            kernels = check_kernels(name, module, kernels)
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


def _best_ms(fn: Callable[[], Any], repeats: int, give_up: float = float("inf")) -> float:
    """The best of ``repeats`` timed calls of ``fn`` after a warm-up, in ms; the warm-up's time
    alone when it takes longer than ``give_up`` ms."""
    start = time.perf_counter()
    fn()  # warm-up: oneDNN builds its kernel on the first call
    best = (time.perf_counter() - start) * 1e3
    if best > give_up:
        return best
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def tune(
    model: nn.Module,
    *inputs: torch.Tensor,
    repeats: int = 2,
    min_flops: float | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, ConvKernels]:
    """Time each pass of each convolution of ``model`` in every kernel it can run in.

    ``model(*inputs)`` is run once (under bfloat16 autocast when ``dtype`` is
    ``torch.bfloat16``) to capture what each convolution gets; then each pass is timed alone, in
    ``dtype`` (default: the weights'), ``repeats`` times after a warm-up, in each of
    :func:`kernels_for` the layer, for the layers whose forward pass costs at least
    ``min_flops`` (default :data:`MIN_FLOPS`). Returns, by module name, the layers where another
    kernel beats PyTorch's choice (oneDNN, directly) at some pass by more than ``1 - MARGIN``;
    the layers left out keep PyTorch's choice. In bfloat16 only oneDNN's kernels are timed
    (PyTorch's own take 5-50x as long, ``benchmarks/README.md``). Only CPU tensors with oneDNN
    available are tuned; otherwise the result is empty.
    """
    # a VAE samples, a denoiser corrupts and the timing draws gradients: leave the RNG be
    with torch.random.fork_rng(), torch.no_grad():
        threshold = MIN_FLOPS if min_flops is None else min_flops
        return _tune(model, inputs, repeats, threshold, dtype)


def _tune(model, inputs, repeats, min_flops, dtype) -> dict[str, ConvKernels]:
    if not inputs or inputs[0].device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return {}
    names = {module: name for name, module in model.named_modules() if supported(module)}
    if not names:
        return {}
    reduced = dtype is not None and dtype != torch.float32
    with torch.autocast("cpu", dtype=dtype if reduced else torch.bfloat16, enabled=reduced):
        seen = layer_io(model, *inputs)
    choices = {}
    for module, x, y in seen:
        if forward_flops(module, x, y) < min_flops:
            continue
        # a full-precision layer (aelab.models.layers) runs in its weight's dtype under autocast
        full = is_full_precision(module)
        cast = module.weight.dtype if full or dtype is None else dtype
        x, y = x.to(cast), y.to(cast)
        grad = torch.randn_like(y)  # same shape and memory format as the output
        weight = module.weight.detach().to(cast)
        bias = None if module.bias is None else module.bias.detach().to(cast)
        best = [float("inf")] * 3
        times = {}
        for kernel in kernels_for(module):  # PyTorch's choice first: the others' yardstick
            if reduced and not full and not kernel.startswith("onednn"):
                continue  # PyTorch's own bfloat16 convolutions: 5-50x slower than oneDNN's
            fns = passes(x, weight, bias, geometry(module), grad, kernel)
            times[kernel] = [
                _best_ms(fn, repeats, GIVE_UP * b) for fn, b in zip(fns, best, strict=True)
            ]
            best = [min(b, t) for b, t in zip(best, times[kernel], strict=True)]
        default = ConvKernels()
        picked = []
        for i, kernel in enumerate(default):
            fastest = min(times, key=lambda k: times[k][i])
            picked.append(fastest if times[fastest][i] <= MARGIN * times[kernel][i] else kernel)
        if ConvKernels(*picked) != default:
            choices[names[module]] = ConvKernels(*picked)
    return choices
