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
    Wall time of ``aelab run --schedule quick`` (default data set) and of
    ``aelab run --schedule seed --data olivetti --mirror`` (the notebook's full schedule).
``scaling``
    Seconds per epoch and peak resident memory as a synthetic 64x64 data set grows, held in
    memory and streamed from a folder of PNG files, each size in a fresh process.
``contention``
    A busy machine: each model trained by ``aelab train`` (threads waiting passively, as
    always, and with libgomp's spinning wait, as before) and by the Keras port (when given),
    while 0, 1 and 2 busy-loop processes (``--busy``) share the CPU.

A tool on top of the library (which never imports it), one file per concern: ``machine`` (the
machine and its matmul peak), ``models``, ``keras``, ``layers``, ``end_to_end``, ``scaling``,
``contention`` (one file per section) and ``cli`` (the command).
"""

from .cli import build_parser, main
from .contention import busy_loops, contention
from .end_to_end import end_to_end, timed_process
from .keras import compare, keras_seed_total, merge_keras, run_keras
from .layers import conv_layers
from .machine import machine_info, matmul_peak, typical_epoch
from .models import bench_model, olivetti_split, step_flops
from .scaling import scaling, scaling_worker

__all__ = [
    "bench_model",
    "build_parser",
    "busy_loops",
    "compare",
    "contention",
    "conv_layers",
    "end_to_end",
    "keras_seed_total",
    "machine_info",
    "main",
    "matmul_peak",
    "merge_keras",
    "olivetti_split",
    "run_keras",
    "scaling",
    "scaling_worker",
    "step_flops",
    "timed_process",
    "typical_epoch",
]
