"""``aelab export --scorer``: everything a scorer outside aelab needs to decide as ``aelab score``
decides, beside the encoder and decoder graphs.

``scorer.onnx`` is the score's definition as one graph: ``x`` ``(B, C, H, W)`` float32 pixels
(clipped to [0, 1]) through the encoder and the decoder, then in float64 the squared error of
every value, ``error_map`` ``(B, H, W)`` (its mean over channels) and ``score`` ``(B,)`` (minus its
mean over all values). It is built from the two graphs already written and checked, not exported
again. ``export.json``'s ``"scorer"`` section holds the rest: the input size and channels, how
aelab reads an image file into ``x`` (Pillow's decoding, alpha on white, the grey weights, the
resize rule with its numbers, the pixel scaling), the false-positive rate, the threshold and the
sorted calibration scores that p-values are counted against.

What ONNX cannot express as aelab computes it stays out of the graph and is written out instead:
the resize is scikit-image's (a Gaussian prefilter whose width depends on each image's own size,
mirrored at the edges, then linear interpolation at half-pixel centres), and ONNX's ``Resize``
(antialiasing with a triangle filter, edges clamped) gives other pixels; decoding, alpha and
colour conversion happen before it on images of any size and number of channels.
``examples/score_onnx.py`` implements them with NumPy and Pillow alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab.analysis import anomaly
from aelab.apps.scoring import Scorer

SCORER_FILE = "scorer.onnx"
SCORER_FORMAT = 1  # of export.json's "scorer" section
SCORE_TOLERANCE = 1e-6  # the graph's against the Detector's, of their scale, on the check images

# How aelab reads an image file into pixels (aelab.data.reading and aelab.data.images), as
# numbers a scorer elsewhere can use; ``kind`` names each rule, so a reader refuses one it
# does not know.
READING = {
    "decoder": "Pillow",
    "modes": "1 to L; P to L, RGB or RGBA (RGBA with a transparent entry); LA as RGBA; CMYK, "
    "YCbCr, LAB, HSV to RGB; I;16 and I as 16-bit",
    "scaling": {"kind": "by-bit-depth", "uint8": 255, "uint16": 65535},
    "reduce_large": {
        "kind": "aelab-box-then-gaussian",
        "at_least": 4,
        "rule": "when an axis is at least 8 times the size asked for, the image is reduced by "
        "integer box factors (Pillow's reduce; a JPEG first decodes at 1/2, 1/4 or 1/8 with "
        "Pillow's draft) to no less than 4 times it, then blurred by a Gaussian (mirror edges) "
        "of sigma sqrt(max(0, ((N/n - 1)/2)^2 - (k ((n/t - 1)/2))^2 - (k^2 - 1)/12)) / k "
        "reduced pixels, k = N/n, for N original, n reduced and t target pixels",
    },
    "alpha": {"kind": "over-background", "background": [1.0, 1.0, 1.0]},
    "grey": {"kind": "weighted", "weights": [0.2125, 0.7154, 0.0721]},
    "colour_from_grey": {"kind": "copy"},
    "resize": {
        "kind": "skimage-antialias-linear",
        "rule": "skimage.transform.resize(image, (H, W), anti_aliasing=True): a Gaussian of "
        "sigma max(0, (in / out - 1) / 2) on each axis, truncated at truncate sigma, mirror "
        "edges (d c b | a b c d | c b a); then linear interpolation at (i + 0.5) * in / out - "
        "0.5, mirror edges; clipped to the image's own range; skipped at the same size",
        "truncate": 4.0,
    },
    "order": ["decode", "reduce_large", "alpha", "grey or colour_from_grey", "resize",
              "clip to [0, 1]", "float32, (C, H, W)"],
}  # fmt: skip


def check_scorer(scorer: Scorer, format: str) -> None:
    """Refuse what an ONNX scorer cannot reproduce: another format, an ELBO score."""
    if format != "onnx":
        raise ValueError(
            f"scorer=True needs format='onnx', not {format!r}: the scorer runs with onnxruntime"
        )
    if scorer.detector.score != "reconstruction":
        raise ValueError(
            f"scorer=True is not valid for anomaly_score={scorer.detector.score!r}: the ELBO "
            "draws codes at random; an exported scorer computes the reconstruction score"
        )


def _scorer_graph(out: Path):
    """The scorer's ModelProto from ``out``'s encoder.onnx and decoder.onnx."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    enc, dec = onnx.load(out / "encoder.onnx"), onnx.load(out / "decoder.onnx")
    p = "scorer/"  # names of the scorer's own nodes and values, apart from the two graphs'
    clipped = p + "x_clipped"
    encoder_nodes = []
    for node in enc.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [clipped if name == "x" else name for name in copy.input]
        encoder_nodes.append(copy)
    constants = [numpy_helper.from_array(np.array(v, dtype), p + name) for name, v, dtype in (
        ("zero", 0.0, np.float32), ("one", 1.0, np.float32),
        ("channel_axis", [1], np.int64), ("all_axes", [1, 2, 3], np.int64))]  # fmt: skip
    node = helper.make_node
    before = [node("Clip", ["x", p + "zero", p + "one"], [clipped], name=p + "clip")]
    after = [
        node("Cast", [clipped], [p + "x64"], to=TensorProto.DOUBLE, name=p + "cast_x"),
        node("Cast", ["x_hat"], [p + "x_hat64"], to=TensorProto.DOUBLE, name=p + "cast_x_hat"),
        node("Sub", [p + "x64", p + "x_hat64"], [p + "difference"], name=p + "sub"),
        node("Mul", [p + "difference", p + "difference"], [p + "squared"], name=p + "mul"),
        node("ReduceMean", [p + "squared", p + "channel_axis"], ["error_map"], keepdims=0,
             name=p + "error_map"),
        node("ReduceMean", [p + "squared", p + "all_axes"], [p + "mse"], keepdims=0,
             name=p + "mse"),
        node("Neg", [p + "mse"], ["score"], name=p + "score"),
    ]  # fmt: skip
    x = onnx.ValueInfoProto()
    x.CopyFrom(enc.graph.input[0])
    h, w = (d.dim_value for d in x.type.tensor_type.shape.dim[2:])
    outputs = [
        helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["batch"]),
        helper.make_tensor_value_info("error_map", TensorProto.DOUBLE, ["batch", h, w]),
    ]
    graph = helper.make_graph(
        before + encoder_nodes + list(dec.graph.node) + after, "aelab_scorer", [x], outputs,
        initializer=[*enc.graph.initializer, *dec.graph.initializer, *constants],
        value_info=[*enc.graph.value_info, *dec.graph.value_info],
    )  # fmt: skip
    functions = {(f.domain, f.name): f for f in [*enc.functions, *dec.functions]}
    model = helper.make_model(
        graph, opset_imports=list(enc.opset_import), functions=list(functions.values()),
        producer_name="aelab",
    )  # fmt: skip
    model.ir_version = enc.ir_version
    onnx.checker.check_model(model)
    return model


def write_scorer(out: Path, scorer: Scorer, check: torch.Tensor) -> dict[str, Any]:
    """Write ``scorer.onnx`` into ``out`` (which holds the ONNX encoder and decoder), check it
    against the scorer's Detector on the images ``check``, and return export.json's
    ``"scorer"`` section."""
    import onnxruntime

    from aelab.utils.files import write_bytes

    path = out / SCORER_FILE
    write_bytes(path, _scorer_graph(out).SerializeToString())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    score, error_map = session.run(None, {"x": check.numpy()})
    detector = scorer.detector
    want = {"score": detector.scores(check), "error_map": detector.maps(check)}
    errors = {"score": float(np.abs(score - want["score"]).max()),
              "error_map": float(np.abs(error_map - want["error_map"]).max())}  # fmt: skip
    for name, err in errors.items():
        if not err <= SCORE_TOLERANCE * max(1.0, float(np.abs(want[name]).max())):
            raise ValueError(
                f"the exported scorer's {name} differs from aelab's by {err:.3g}: nothing was kept"
            )
    c, h, w = detector.run.model.input_shape
    calibration = detector.calibration
    return {
        "scorer_format": SCORER_FORMAT,
        "file": SCORER_FILE,
        "inputs": ["x"],
        "outputs": ["score", "error_map"],
        "image_size": [h, w],
        "channels": c,
        "read": READING,
        "score": {
            "name": "reconstruction",
            "definition": "minus the mean over C, H and W of (x - x_hat)^2 in float64, x_hat "
            "the decoder's output for the encoder's code of x: higher is more normal",
            "error_map": "(x - x_hat)^2 in float64, the mean over the channels: (B, H, W)",
        },
        "fpr": scorer.fpr,
        "threshold": scorer.threshold,
        "decision": "outlier when score < threshold",
        "p_value": "(1 + the number of calibration_scores <= score) / (n_calibration + 1)",
        "n_calibration": len(calibration),
        "calibration_scores": [float(s) for s in calibration],  # sorted, finite
        "calibration": scorer.source,
        "max_abs_error": errors,  # the graph against aelab, on the export's check images
        "threshold_rule": "with m = floor(fpr * (n + 1)) - 1, the (m + 1)-th smallest "
        "calibration score (aelab.analysis.anomaly.threshold_at)",
    }


def check_threshold(section: dict[str, Any]) -> None:
    """The threshold a section records follows from its calibration scores and rate (what a
    reader checks of export.json)."""
    calibration = anomaly.calibrate(section["calibration_scores"])
    if anomaly.threshold_at(calibration, section["fpr"]) != section["threshold"]:
        raise ValueError("the threshold does not follow from calibration_scores and fpr")


__all__ = ["READING", "SCORER_FILE", "check_scorer", "check_threshold", "write_scorer"]
