"""aelab export: every recipe's encoder and decoder as ONNX and TorchScript graphs that give the
model's codes and reconstructions at any batch size; export.json; the command's folder rules."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
_onnx_before = {m for m in sys.modules if m.split(".")[0] in ONNX_PACKAGES}

from aelab.apps.export import NotExportable, export_model, export_run  # noqa: E402
from aelab.cli import main  # noqa: E402  (what importing aelab imports is counted)
from aelab.models import MODELS, build_model  # noqa: E402
from aelab.runs.manifest import Manifest  # noqa: E402
from aelab.runs.run import load_run  # noqa: E402
from aelab.utils.files import sha256_file  # noqa: E402

# with this module run alone, the first import of aelab (conftest imports none at its top)
IMPORTED_BY_AELAB = {m for m in sys.modules if m.split(".")[0] in ONNX_PACKAGES} - _onnx_before

SHAPE = (1, 16, 16)
TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _one_onnx_op_table():
    """torch.onnx.export rebuilds its table of ~500 op translations from their source at every
    call (2.5 s on a 2-core CPU, a call a model); the table depends only on the opset and
    nothing here adds to it, so this module builds it once. The name is private: where it has
    moved, the tests run at full cost."""
    try:
        from torch.onnx._internal.exporter import _registration

        original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    except (ImportError, KeyError):
        yield
        return
    built = {}

    def from_torchlib(cls, opset_version=18):
        if opset_version not in built:
            built[opset_version] = original.__func__(cls, opset_version)
        return built[opset_version]

    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    yield
    _registration.ONNXRegistry.from_torchlib = original


def _images(n, seed=1, shape=SHAPE):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _tiny(name, shape=SHAPE):
    torch.manual_seed(0)
    model = build_model(name, shape, latent_dim=8)
    if model.needs_data_init:  # sparse's input mean: not all zeros
        model.init_from_data(_images(16, seed=2, shape=shape))
    return model.eval()


def _graphs(folder: Path, fmt: str):
    """The exported encoder and decoder as functions of arrays, each returning a list."""
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")

        def load(part):
            path = str(folder / f"{part}.onnx")
            s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            return lambda a: s.run(None, {s.get_inputs()[0].name: np.asarray(a, np.float32)})

    else:

        def load(part):
            module = torch.jit.load(str(folder / f"{part}.pt"))  # a file this test just wrote

            def run(a):
                with torch.no_grad():
                    out = module(torch.as_tensor(a))
                return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]

            return run

    return load("encoder"), load("decoder")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_recipe_exports_graphs_that_give_its_codes_and_reconstructions(name, fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    model = _tiny(name)
    out = tmp_path / "out"
    if model.family == "aligned":  # its encoder is an optimisation: refused, nothing written
        with pytest.raises(NotExportable, match="family 'aligned' cannot be exported"):
            export_model(model, out, fmt)
        assert not out.exists()
        return
    # a variational encoder with its log-variance in one format, the mean alone in the other
    logvar = model.variational and fmt == "onnx"
    record = export_model(model, out, fmt, logvar, recipe=name, run_format=1)
    encode, decode = _graphs(out, fmt)
    for n in (3, 1):  # traced at 3: the batch axis is free
        x = _images(n)
        with torch.no_grad():
            z = model.encode(x)
            x_hat = model.decode(z)
            want = [z, model.posterior(x)[1]] if logvar else [z]
        codes = encode(x.numpy())
        (recon,) = decode(z.numpy())
        assert len(codes) == len(want) and recon.shape == (n, *SHAPE)
        for got, ref in zip(codes, want):
            assert got.shape == (n, 8) and np.abs(got - ref.numpy()).max() <= TOLERANCE
        assert np.abs(recon - x_hat.numpy()).max() <= TOLERANCE
    code = codes[0]
    if model.discrete_codes:  # each slot of the code is a row of the codebook
        slots = code.reshape(-1, model.config.code_dim)
        book = model.quantizer.codebook.numpy()
        assert np.abs(slots[:, None] - book[None]).max(2).min(1).max() <= TOLERANCE
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["export.json", f"encoder{suffix}", f"decoder{suffix}"]
    )
    assert json.loads((out / "export.json").read_text()) == record
    outputs = ["z", "logvar"] if logvar else ["z"]
    assert record["encoder"] == {"file": f"encoder{suffix}", "inputs": ["x"], "outputs": outputs}
    assert (record["recipe"], record["family"], record["code_size"]) == (name, model.family, 8)
    assert record["input_shape"] == list(SHAPE) and record["pixel_range"] == [0.0, 1.0]
    assert record["opset"] == (18 if fmt == "onnx" else None)
    assert max(record["max_abs_error"].values()) <= TOLERANCE


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", [n for n, r in MODELS.items() if r.family_class.exportable])
def test_the_graphs_refuse_inputs_of_another_layout(name, fmt, tmp_path):
    """An encoder graph given channels-last, flattened, unbatched or wrongly sized images (or a
    decoder codes of another width) refuses them, naming the input and its shape, where a
    traced dense encoder's flatten took a channels-last batch of 3-channel images without a
    word: the same numbers in another order. (onnxruntime refuses from the graph's static
    axes; TorchScript's graph checks its input first and raises a ValueError inside.)"""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    shape = (3, 16, 16)
    model = _tiny(name, shape)
    export_model(model, tmp_path / "out", fmt)
    encode, decode = _graphs(tmp_path / "out", fmt)
    x = _images(3, shape=shape).numpy()
    z = encode(x)[0]
    images = {"N,H,W,C": x.transpose(0, 2, 3, 1), "N,D": x.reshape(3, -1), "C,H,W": x[0],
              "wrong size": x[:, :, :8, :8], "N,1,C,H,W": x[:, None]}  # fmt: skip
    codes = {
        "N,d+1": np.pad(z, ((0, 0), (0, 1))),
        "N,d-1": z[:, :-1],
        "d": z[0],
        "N,d,1": z[..., None],
    }
    for graph, arg, want, wrong, takes in (
        (encode, "x", z, images, "(B, 3, 16, 16)"),
        (decode, "z", decode(z)[0], codes, "(B, 8)"),
    ):
        for layout, a in wrong.items():
            a = np.ascontiguousarray(a)
            try:
                got = graph(a)[0]
            except Exception as e:  # onnxruntime's or TorchScript's own error types
                message = str(e)
                if fmt == "onnx":
                    assert f"input: {arg}" in message, message
                else:
                    assert message.splitlines()[-1] == (
                        f"builtins.ValueError: {arg} has shape {a.shape}; the graph takes {takes}"
                    ), message
                continue
            assert got.shape == want.shape and np.abs(got - want).max() <= TOLERANCE, layout


def test_export_model_errors(tmp_path):
    model = _tiny("deep")
    with pytest.raises(ValueError, match="format='keras' is not valid; allowed: onnx, torchscript"):
        export_model(model, tmp_path / "a", "keras")
    with pytest.raises(ValueError, match="logvar=True is not valid for family 'dense'"):
        export_model(model, tmp_path / "a", "torchscript", logvar=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty; expected a new or empty folder"):
        export_model(model, tmp_path / "full", "torchscript")
    assert not (tmp_path / "a").exists()


def test_importing_aelab_imports_no_onnx():
    assert IMPORTED_BY_AELAB == set()  # only format="onnx" does, when it runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two one-epoch runs of aelab train on scikit-learn's digits (8x8), a variational and a
    dense one, in a folder that is also a workshop holding both."""
    ws = tmp_path_factory.mktemp("export") / "ws"
    for name in ("vae", "deep"):
        code = main(["train", name, "--data", "digits", "--epochs", "1", "--batch-size", "256",
                     "--out", str(ws / name), "--quiet"])  # fmt: skip
        assert code == 0
    (ws / "workshop.json").write_text(json.dumps({"models": ["vae", "deep"]}))
    files = {"workshop.json": sha256_file(ws / "workshop.json")}
    Manifest("workshop", files=files, runs=["vae", "deep"]).write(ws)  # as aelab run marks it
    return ws


def _one_line_error(capsys, argv, match):
    assert main(["export", *argv]) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aelab export: error: "), err
    assert match in err, err


def test_the_command_exports_a_run_and_refuses_bad_input(runs, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    run, out = runs / "vae", tmp_path / "vae-onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert f"wrote {out}: vae (vae, code 2)" in capsys.readouterr().out
    record = json.loads((out / "export.json").read_text())
    assert record["input_shape"] == [1, 8, 8] and record["pixel_range"] == [0.0, 1.0]
    assert (record["recipe"], record["family"], record["code_size"]) == ("vae", "vae", 2)
    assert record["run_format"] == json.loads((run / "config.json").read_text())["format"]
    assert record["versions"]["aelab"] == __import__("aelab").__version__
    assert record["encoder"]["outputs"] == ["z"] and record["opset"] == 18
    assert record["code"] == "the posterior mean"
    model = load_run(run).model
    x = _images(5, shape=(1, 8, 8))
    session = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    (mu,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert np.abs(mu - model.posterior(x)[0].numpy()).max() <= TOLERANCE
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    _one_line_error(capsys, [str(tmp_path / "nope")], "is not a directory")
    _one_line_error(capsys, [str(run), "--format", "keras"], "--format keras is not valid")
    _one_line_error(capsys, [str(run), "--out", str(out)], "holds an earlier export; pass "
                    "--overwrite")  # fmt: skip
    _one_line_error(capsys, [str(runs / "deep"), "--logvar", "--out", str(tmp_path / "d")],
                    "--logvar is not valid for family 'dense'")  # fmt: skip
    _one_line_error(capsys, [str(run), "--out", str(run / "export")], "is in the aelab folder")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not (tmp_path / "d").exists() and not (run / "export").exists()

    # an earlier export is replaced with --overwrite; one file of the user's there, never
    assert main(["export", str(run), "--out", str(out), "--format", "torchscript",
                 "--overwrite"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["decoder.pt", "encoder.pt", "export.json"]
    (out / "notes.txt").write_text("mine")
    refused = "holds files aelab did not write (notes.txt); refusing to replace it even with"
    _one_line_error(capsys, [str(run), "--out", str(out), "--overwrite"], refused)
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".vae-onnx*"))  # no staging folder left behind


def test_a_missing_onnx_is_one_line_naming_the_extra(runs, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript raises ImportError
    with pytest.raises(ImportError, match=r'needs onnxscript: pip install "aelab\[onnx\]"'):
        export_model(_tiny("deep"), tmp_path / "a")
    _one_line_error(capsys, [str(runs / "deep"), "--out", str(tmp_path / "b")], "needs onnxscript")
    assert sorted(tmp_path.iterdir()) == []


def test_a_corrupt_run_is_one_line_and_writes_nothing(runs, tmp_path, capsys):
    run = tmp_path / "deep"
    shutil.copytree(runs / "deep", run)
    weights = bytearray((run / "model.safetensors").read_bytes())
    weights[-64:] = bytes(64)
    (run / "model.safetensors").write_bytes(bytes(weights))
    _one_line_error(capsys, [str(run), "--format", "torchscript"], "model.safetensors: its SHA-256")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]


def test_a_workshop_exports_every_model_into_its_folder(runs, capsys):
    out = runs.parent / "ws-torchscript"  # the default: beside the workshop, named by the format
    assert main(["export", str(runs), "--format", "torchscript"]) == 0
    deep = load_run(runs / "deep").model.latent_dim
    assert f"vae (vae, code 2), deep (dense, code {deep})" in capsys.readouterr().out
    record = json.loads((out / "export.json").read_text())
    assert list(record["models"]) == ["vae", "deep"] and record["skipped"] == {}
    files = ("encoder.pt", "decoder.pt", "export.json")
    assert set(record["files"]) == {f"{n}/{f}" for n in ("vae", "deep") for f in files}
    for name in ("vae", "deep"):
        model = load_run(runs / name).model
        encode, decode = _graphs(out / name, "torchscript")
        x = _images(4, shape=(1, 8, 8))
        with torch.no_grad():
            z = model.encode(x)
            assert np.abs(encode(x)[0] - z.numpy()).max() <= TOLERANCE
            assert np.abs(decode(z)[0] - model.decode(z).numpy()).max() <= TOLERANCE
    # one of its models: beside the workshop too, never inside it
    assert main(["export", str(runs / "deep"), "--format", "torchscript"]) == 0
    assert (runs.parent / "ws-deep-torchscript" / "encoder.pt").is_file()
    _one_line_error(capsys, [str(runs / "deep"), "--out", str(runs / "x")], "in the aelab folder")


def test_an_interrupted_export_leaves_nothing_and_the_next_one_cleans_up(
    runs, tmp_path, monkeypatch
):
    import aelab.apps.export as export

    out = tmp_path / "out"
    # a kill -9 in the middle leaves only the hidden staging folder beside out, unlocked
    stale = tmp_path / ".out.aelab-new-12345678"
    stale.mkdir()
    (stale / "encoder.pt").write_bytes(b"half")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_check", interrupted)  # once the graphs are written
    with pytest.raises(KeyboardInterrupt):
        export_run(runs / "deep", out, "torchscript")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the stale one removed, no out
    with pytest.raises(KeyboardInterrupt):  # export_model leaves nothing either
        export_model(_tiny("deep"), out, "torchscript")
    assert not out.exists()
    monkeypatch.undo()
    record = export_run(runs / "deep", out, "torchscript")
    assert record["out"] == str(out) and record["family"] == "dense"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["decoder.pt", "encoder.pt", "export.json"]
