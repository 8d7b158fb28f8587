"""The ``aelab`` command: a one-epoch run of every model, ``datasets``, and every user error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from aelab.cli import build_parser, main
from aelab.data import write_image_folder
from aelab.models import MODELS


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory):
    """200 MNIST digits (20 per class) as a labelled .npz, the CLI's array input."""
    from aelab.data import load_mnist

    data = load_mnist()
    idx = np.concatenate([np.flatnonzero(data.labels == c)[:20] for c in range(10)])
    path = tmp_path_factory.mktemp("arrays") / "digits200.npz"
    images = (data.images[idx, 0] * 255).round().astype(np.uint8)  # (N, H, W)
    np.savez(path, images=images, labels=data.labels[idx])
    return path


def _err(capsys):
    return _err_line(capsys.readouterr())


def _err_line(captured) -> str:
    err = captured.err.strip().splitlines()
    return err[-1] if err else ""


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "faces" else n for n in MODELS]
)
def test_one_epoch_run_of_every_model(name, small_npz, tmp_path, capsys):
    out = tmp_path / name
    code = main(["train", name, "--data", str(small_npz), "--epochs", "1", "--out", str(out),
                 "--quiet", "--batch-size", "64"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (out / "model.safetensors").is_file()
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == name
    split = config["split"]
    assert {k: split[k] for k in ("n_train", "n_heldout", "image_shape")} == {
        "n_train": 180, "n_heldout": 20, "image_shape": [1, 28, 28]
    }  # fmt: skip
    assert set(split["fingerprint"]) == {"train", "heldout"}
    assert f"wrote {out}: 1 epochs" in capsys.readouterr().out


@pytest.mark.slow
def test_olivetti_conv_run_with_mirrors_and_resume(olivetti_home, tmp_path, capsys):
    out = tmp_path / "conv"
    args = ["train", "conv", "--data", "olivetti", "--data-home", str(olivetti_home), "--mirror",
            "--out", str(out), "--quiet", "--latent-dim", "8"]  # fmt: skip
    assert main([*args, "--epochs", "1"]) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert (config["split"]["n_train"], config["split"]["n_heldout"]) == (720, 80)
    assert config["model"]["config"]["latent_dim"] == 8
    # refused without --resume, continued with it
    assert main([*args, "--epochs", "2"]) == 2
    assert "already holds files; pass --overwrite" in _err(capsys)
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 2


def test_overwrite_replaces_an_earlier_run(small_npz, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "deep", "--data", str(small_npz), "--out", str(out), "--quiet"]
    assert main([*base, "--epochs", "2"]) == 0
    assert main([*base, "--epochs", "1", "--overwrite"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_stream_a_folder_with_workers_and_resume(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "faces", 40, image_size=12, n_classes=4)
    out = tmp_path / "conv"
    args = ["train", "conv", "--data", str(folder), "--stream", "--workers", "2", "--mirror",
            "--image-size", "8", "--out", str(out), "--quiet", "--batch-size", "16"]  # fmt: skip
    assert main([*args, "--epochs", "1"]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "72 training, 8 held-out images of 1x8x8" in err and "(streamed from disk)" in err
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["stream"] is True and config["data"]["image_size"] == [8, 8]
    assert config["train"]["workers"] == 2
    assert main(["train", "conv", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history)
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--stream" in help_text and "--workers N" in help_text


def test_datasets_lists_every_set(capsys, tmp_path):
    """Every set loads offline, olivetti too with an empty data home: aelab ships the faces."""
    home = tmp_path / "empty-home"
    home.mkdir()
    assert main(["datasets", "--data-home", str(home)]) == 0
    out = capsys.readouterr().out
    for name in ("olivetti", "mnist", "digits"):
        assert name in out
    olivetti_line = next(line for line in out.splitlines() if line.startswith("olivetti"))
    assert olivetti_line.split()[1:6] == ["400", "1x64x64", "person", "0-39", "yes"]
    assert "shipped inside aelab" in olivetti_line and not list(home.iterdir())


def _bad_inputs(tmp_path, small_npz):
    """(arguments, expected fragment of the one-line error)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 5), np.float32))
    ints = tmp_path / "ints.npy"
    np.save(ints, np.zeros((4, 8, 8), np.int64))
    nan = tmp_path / "nan.npy"
    a = np.zeros((4, 8, 8), np.float32)
    a[0, 0, 0] = np.nan
    np.save(nan, a)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    from skimage.io import imsave

    imsave(mixed / "a.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    imsave(mixed / "b.png", np.zeros((9, 9), np.uint8), check_contrast=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    d = ["--data", str(small_npz)]
    folder = ["--data", str(write_image_folder(tmp_path / "folder", 4, image_size=8))]
    return [
        (["train", "resnet", *d], "model='resnet' is not a known model"),
        (["train", "deep", "--data", "cifar"], "--data cifar is neither a known data set"),
        (["train", "deep", "--data", str(tmp_path / "nope.npz")], "no such file or folder"),
        (["train", "deep", "--data", str(empty)], "no images"),
        (["train", "deep", "--data", str(wrong)], "wrong.npy"),
        (["train", "deep", "--data", str(ints)], "int64"),
        (["train", "deep", "--data", str(nan)], "NaN"),
        (["train", "deep", "--data", str(mixed)], "image-size"),
        (["train", "deep", *d, "--latent-dim", "0"], "--latent-dim 0 is not valid"),
        (["train", "deep", *d, "--batch-size", "0"], "--batch-size 0 is not valid"),
        (["train", "deep", *d, "--noise", "pink:3"], "--noise pink:3 is not valid"),
        (["train", "deep", *d, "--optimizer", "lbfgs"],
         "--optimizer lbfgs is not valid"),
        (["train", "conv", *d, "--conv-kernels", "fast"],
         "--conv-kernels fast is not valid"),
        (["run", *d, "--conv-kernels", "fast"], "--conv-kernels fast is not"),
        (["train", "deep", *d, "--out", str(locked / "run")], "is not writable"),
        (["train", "deep", "--data", "mnist", "--stream"],
         "--stream is not valid for --data mnist (a registered data set); "
         "allowed: a folder of images; drop --stream to load other data into memory"),
        (["train", "deep", *d, "--stream"], "--stream is not valid for --data "),
        (["train", "deep", *folder, "--stream", "--workers", "-1"],
         "--workers -1 is not valid; expected an integer >= 0"),
        (["train", "deep", *d, "--workers", "2"],
         "--workers 2 is not valid without --stream"),
        (["train", "deep", *folder, "--stream", "--skip-bad"],
         "--skip-bad is not valid with --stream"),
        (["train", "deep", *d, "--k", "3"], "k is not a parameter of model 'deep'"),
        (["train", "sparse", *d, "--penalty", "l2"], "--penalty l2 is not valid"),
        (["train", "deep", *d, "--normals", "0.1"], "--normals 0.1 is not valid with"),
        (["train", "deep", "--data", "digits", "--holdout-people", "2", "--normals", "1"],
         "--normals 1.0 is not valid; expected a fraction in (0, 1)"),
    ]  # fmt: skip


def test_family_fields_from_the_command_line(small_npz, tmp_path, capsys):
    """Each family flag reaches the model's config.json (and the model trains with it)."""
    runs = {
        "topk": ["--k", "3"],
        "sparse": ["--penalty", "kl", "--latent-activation", "sigmoid", "--rho", "0.1"],
        "beta-vae": ["--warmup", "2", "--capacity", "5", "--capacity-epochs", "2"],
    }
    for name, flags in runs.items():
        out = tmp_path / name
        code = main(["train", name, "--data", str(small_npz), "--epochs", "1", "--out", str(out),
                     "--quiet", *flags])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        config = json.loads((out / "config.json").read_text())["model"]["config"]
        for flag, value in zip(flags[::2], flags[1::2], strict=True):
            field = flag[2:].replace("-", "_")
            assert str(config[field]) == value or config[field] == float(value), (field, config)


def test_every_user_error_is_one_line_exit_2_nothing_written(small_npz, tmp_path, capsys):
    if os.geteuid() == 0:  # root ignores directory permissions; test writability another way
        locked_ok = False
    else:
        locked_ok = True
    for args, fragment in _bad_inputs(tmp_path, small_npz):
        if "is not writable" in fragment and not locked_ok:
            args = ["train", "deep", "--data", str(small_npz), "--out", "/proc/aelab-run"]
        out = tmp_path / "out-should-not-exist"
        if "--out" not in args:
            args = [*args, "--out", str(out)]
        code = main([*args, "--epochs", "1", "--quiet"])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, (args, captured.err)
        assert len(lines) == 1, (args, captured.err)
        assert fragment in lines[0], (args, lines[0])
        assert "Traceback" not in captured.err
        assert not out.exists(), args


@pytest.mark.parametrize(("model", "level"), [("denoising", "1e38"), ("vae", "1e30")])
def test_a_huge_noise_level_is_named_when_training_diverges(model, level, small_npz, tmp_path,
                                                           capsys):  # fmt: skip
    # the blame fell on the learning rate; 1e38 noise holds infinities (float32 ends near
    # 3.4e38), and 1e30 sends a VAE's log-variance past what exp() can hold
    out = tmp_path / model
    code = main(["train", model, "--data", str(small_npz), "--noise", f"gaussian:{level}",
                 "--epochs", "1", "--out", str(out), "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert _err_line(captured).startswith("aelab train: error: training diverged at epoch 1: ")
    assert _err_line(captured).endswith(
        f"the noise level may be too large: lower --noise gaussian:{float(level)!r}, or --lr; "
        "nothing was kept"
    )
    assert not out.exists()


@pytest.mark.slow
def test_real_entry_point_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "aelab", "train", "deep", "--data", "cifar"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("aelab train: error: --data cifar")
    assert not any(tmp_path.iterdir())


def test_models_lists_every_recipe_and_its_capabilities(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(MODELS)
    assert "images" in rows["conv"] and "sample" in rows["vae"] and "weights" in rows["deep"]


def _flags(*argv: str) -> dict:
    """The flags of the command ``argv`` parses to (what main() rewrites its errors with)."""
    from aelab.cli import command_flags

    return command_flags(build_parser().parse_args(list(argv)).command_parser)


def test_errors_on_the_command_line_name_the_flag_the_user_typed_first():
    from aelab.cli import with_flags

    train = _flags("train", "deep")
    for library, command_line in (
        ("pass overwrite=True to replace it", "pass --overwrite to replace it"),
        ("pass skip_bad=True to skip bad images", "pass --skip-bad to skip bad images"),
        ("stream=True is not valid; drop stream=True to load it",
         "--stream is not valid; drop --stream to load it"),
        ("optimizer='adm' is not valid; did you mean 'adam'?",
         "--optimizer adm is not valid; did you mean 'adam'?"),
        ("lower noise='gaussian:0.5', or learning_rate; nothing was kept",
         "lower --noise gaussian:0.5, or --lr; nothing was kept"),
        ("out='my runs/a' already holds files", "--out 'my runs/a' already holds files"),
        ("data='/tmp/stream/x': no such file", "--data /tmp/stream/x: no such file"),
        ("batch_size=0 is not valid", "--batch-size 0 is not valid"),
        ("image_size=(9, 9) is too large", "--image-size (9, 9) is too large"),
        # plain words are parameters only as name=value; False and None have no flag to say them
        ("out='r' holds no run to resume; pass resume=True to continue",
         "--out r holds no run to resume; pass --resume to continue"),
        ("set stream=False to load", "set stream=False to load"),
        ("pass --overwrite", "pass --overwrite"),
    ):  # fmt: skip
        assert with_flags(library, train) == command_line
    run = _flags("run")
    assert with_flags("models: 'vea' is not a known model", run) == (
        "--models: 'vea' is not a known model"
    )
    # a parameter the command has no flag for keeps the library's name
    assert with_flags("batch_size=0 is not valid", run) == "batch_size=0 is not valid"
    # score's data is a positional argument: no flag to name
    assert with_flags("data='x.npz': no such file", _flags("score", "r", "d")) == (
        "data='x.npz': no such file"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["train", "cnov"], "model='cnov' is not a known model; did you mean 'conv'? allowed: "),
        (["run", "--models", "shallow,conv,vea"],
         "--models: 'vea' is not a known model; did you mean 'vae'? allowed: "),
        (["train", "deep", "--optimizer", "adm"],
         "--optimizer adm is not valid; did you mean 'adam'? allowed: adam, adamw"),
        (["train", "deep", "--precision", "bf61"],
         "--precision bf61 is not valid; did you mean 'bf16'? allowed: auto, fp32, bf16"),
        (["train", "deep", "--noise", "gausian:0.1"],
         "--noise gausian:0.1 is not valid; did you mean 'gaussian'? use gaussian:STD"),
        (["train", "deep", "--data", "olivetty"], "did you mean 'olivetti'?"),
        (["run", "--data", "mnst"], "did you mean 'mnist'?"),
        (["train", "deep", "--device", "gpu"], "--device gpu is not valid; did you mean 'cuda'?"),
        (["train", "deep", "--log", "tensorbord"], "did you mean 'tensorboard'?"),
    ],
)  # fmt: skip
def test_a_near_miss_name_gets_a_suggestion(args, line, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out), "--epochs", "1", "--quiet"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and line in err[0], captured.err
    assert "shallow,conv,vea" not in err[0]  # the item, not the whole value
    assert not out.exists()


def test_a_schedule_near_miss_is_refused_by_the_parser_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--schedule", "quik"])
    assert e.value.code == 2
    assert "'quik' is not valid; did you mean 'quick'? allowed: seed, quick" in _err(capsys)


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_import_neither_torch_nor_scikit_learn(argv):
    code = (
        "import sys\n"
        "from aelab.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules]\n"
        "print('heavy:', heavy, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "heavy: []" in proc.stderr
    assert proc.stdout.strip()  # the version, or the help


def test_help_names_the_models_when_it_is_printed(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert all(name in " ".join(out.split()) for name in MODELS) and "{models}" not in out


def test_sizes_that_cannot_fit_are_refused_before_allocating(small_npz, tmp_path, capsys):
    import time

    out = tmp_path / "out"
    for args, fragment in (
        (["--latent-dim", "1000000000"], "--latent-dim 1000000000"),
        (["--image-size", "100000"], "100000x100000"),
    ):
        start = time.perf_counter()
        code = main(["train", "shallow", "--data", str(small_npz), "--out", str(out), "--quiet",
                     "--epochs", "1", *args])  # fmt: skip
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
        assert "GiB" in lines[0] and "available" in lines[0]
        assert time.perf_counter() - start < 30 and not out.exists()


def test_an_unreadable_image_under_stream_workers_is_one_line(tmp_path, capsys):
    """Once 78 lines: torch wraps a worker's traceback into the error's message."""
    folder = write_image_folder(tmp_path / "faces", 40, image_size=8, n_classes=2)
    (folder / "class_0" / "000000.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "run"
    code = main(["train", "deep", "--data", str(folder), "--stream", "--workers", "2",
                 "--image-size", "8", "--epochs", "1", "--out", str(out), "--quiet"])  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Traceback" not in "".join(lines)
    # the split's note (two subfolders: random images held out), the data, then the error
    assert len(lines) == 3 and "cannot read image" in lines[-1] and "000000.png" in lines[-1]
    assert not out.exists()


def test_train_says_how_long_it_will_train_and_what_quick_would():
    from aelab.cli import with_flags
    from aelab.data.prepare import prepare_data
    from aelab.data.spec import DataSpec
    from aelab.runs.training import _schedule_line
    from aelab.training.recipes import resolve

    split = prepare_data(DataSpec("mnist"))
    shape, n = split.train.image_shape, len(split.train)
    seed = resolve("conv", shape, schedule_name="seed", n_train=n, train={"device": "cpu"}).train
    line = _schedule_line("conv", "seed", seed, {}, split)
    assert line == "schedule seed: 200 epochs in batches of 80 (schedule='quick' trains 13)"
    assert with_flags(line, _flags("train", "conv")).endswith("(--schedule quick trains 13)")
    assert _schedule_line("conv", "seed", seed, {"epochs": 200}, split).endswith("batches of 80")


def test_help_says_what_happens(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a folder whose images differ in size is refused" in text  # not resized by default
    assert "seed (default, unlike aelab run)" in text and "200 epochs" in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "quick (default, unlike aelab train)" in " ".join(capsys.readouterr().out.split())
