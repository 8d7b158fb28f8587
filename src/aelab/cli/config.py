"""Configuration files: ``aelab train --config FILE.toml`` and ``aelab run --config FILE.toml``
take every setting their flags take, and ``aelab config RUN`` writes the file that trains a run
again, bit for bit.

A file holds one key per flag, named as the flag without its dashes (``latent-dim = 16``;
``latent_dim`` works too), and ``model = "deep"`` for ``aelab train``'s model. Lists are TOML
lists (``seeds = [0, 1, 2]``, ``hidden = [256, 64]``, ``log = ["tensorboard"]``), switches are
booleans (``mirror = true``). Flags given on the command line override the file. A key that is
no flag of the command, a value of the wrong type or out of range is one line naming the key;
nothing is ever ignored. The standard library reads TOML (``tomllib``; ``tomli`` before
Python 3.11).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LIST_FLAGS = ("--models", "--seeds", "--hidden", "--filters")  # comma-separated lists
POSITIONAL = {"train": "model"}  # a command's positional argument, as a key of the file


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"config='{path}': no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config='{path}': not valid TOML ({e})") from None


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The flags of ``parser`` by the keys a file names them with."""
    out = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option not in ("--help", "--config"):
                out[option[2:]] = action
    return out


def tokens(path: Path, command: str, parser: argparse.ArgumentParser) -> list[str]:
    """The arguments the file ``path`` stands for, for ``command``'s ``parser``."""
    data = _toml(path)
    actions = _actions(parser)
    out: list[str] = []
    positional = POSITIONAL.get(command)
    for raw, value in data.items():
        key = raw.replace("_", "-")
        where = f"config='{path}': {raw}"
        if positional is not None and key == positional:
            if not isinstance(value, str):
                raise ValueError(f"{where}={value!r} is not valid; expected a model's name")
            out.insert(0, value)
            continue
        action = actions.get(key)
        if action is None:
            allowed = ", ".join(sorted({k for k in actions if "-" in k or k.isalpha()}))
            hint = f"{positional}, " if positional else ""
            raise ValueError(
                f"{where} is not a setting of aelab {command}; allowed: {hint}{allowed}"
            )
        out += _as_arguments(action, value, where)
    return out


def _as_arguments(action: argparse.Action, value: Any, where: str) -> list[str]:
    flag = action.option_strings[-1]
    if action.nargs == 0:  # a switch: store_true, store_const, --x/--no-x
        if not isinstance(value, bool):
            raise ValueError(f"{where}={value!r} is not valid; expected true or false")
        if isinstance(action, argparse.BooleanOptionalAction):  # --mirror / --no-mirror
            return [action.option_strings[0 if value else 1]]
        return [flag] if value else []
    if isinstance(action, argparse._AppendAction):
        values = value if isinstance(value, list) else [value]
        return [t for v in values for t in (flag, _scalar(v, where))]
    if isinstance(value, list):
        if flag not in LIST_FLAGS:
            raise ValueError(f"{where}={value!r} is not valid; expected one value, not a list")
        return [flag, ",".join(_scalar(v, where) for v in value)]
    text = _scalar(value, where)
    if action.type is not None:  # the flag's own conversion, named after the key
        try:
            action.type(text)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
            raise ValueError(f"{where}={value!r} is not valid ({e})") from None
    if action.choices is not None and action.type is None and text not in action.choices:
        raise ValueError(
            f"{where}={value!r} is not valid; allowed: {', '.join(map(str, action.choices))}"
        )
    return [flag, text]


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool) or isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"{where}={value!r} is not valid; expected a number or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}={value!r} is not valid; expected a finite number")
    return repr(value) if isinstance(value, float) else str(value)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | None:
    """``argv`` with a ``--config FILE`` in it parsed as the file's settings, then the flags on
    top; None when there is no ``--config``."""
    argv = list(argv)
    if not argv or argv[0] not in ("train", "run"):
        return None
    found = [i for i, a in enumerate(argv) if a == "--config" or a.startswith("--config=")]
    if not found:
        return None
    i = found[-1]
    if argv[i] == "--config":
        if i + 1 >= len(argv):
            parser.error("argument --config: expected one argument")
        path, rest = Path(argv[i + 1]), argv[1:i] + argv[i + 2 :]
    else:
        path, rest = Path(argv[i].split("=", 1)[1]), argv[1:i] + argv[i + 1 :]
    command = argv[0]
    sub = _subparser(parser, command)
    args = sub.parse_args(tokens(path, command, sub))
    given = {a.dest for a in sub._actions for t in rest if t in a.option_strings}
    for dest in given:  # what the command line gives replaces the file's, lists included
        if isinstance(getattr(args, dest, None), list):
            setattr(args, dest, None)
    args = sub.parse_args(rest, namespace=args)
    args.command = command
    return args


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise AssertionError("the parser has no sub-commands")


# -- aelab config RUN: the file that trains a run again ---------------------------------------

DATA_FLAGS = {  # DataSpec field -> key
    "source": "data", "image_size": "image-size", "channels": "channels",
    "skip_bad": "skip-bad", "mirror": "mirror", "holdout_people": "holdout-people",
    "holdout": "holdout", "normals": "normals", "stream": "stream",
    "follow_links": "follow-links", "max_image_pixels": "max-image-pixels", "cache": "cache",
}  # fmt: skip
MODEL_FLAGS = {
    "latent_dim": "latent-dim",
    "hidden": "hidden",
    "channels": "filters",
    "beta": "beta",
}


def settings_of(path: str | Path, legacy: bool = False) -> tuple[str, dict[str, Any]]:
    """The command (``"train"`` or ``"run"``) and the file's settings that train the run or
    workshop in ``path`` again."""
    from aelab.runs.config import RunConfig
    from aelab.runs.workshop import GROUPS_FILE, WorkshopRecord, is_workshop

    path = Path(path)
    if is_workshop(path):
        record = WorkshopRecord.read(path, legacy=legacy)
        data, schedule, train = record.resumable(str(path / "workshop.json"))
        out: dict[str, Any] = _data(data)
        if record.model is not None:  # aelab train MODEL --seeds: its model's fields
            out = {"model": record.models[0], **out, **_model_fields(record.model)}
            command = "train"
        else:
            out["models"] = list(record.models)
            command = "run"
        out["schedule"] = schedule
        if record.seeds is not None:
            out["seeds"] = list(record.seeds)
        out |= _train(train, keep_seed=record.seeds is None)
        if (path / GROUPS_FILE).is_file():  # its copy of --groups, read before a rerun writes
            out["groups"] = str((path / GROUPS_FILE).resolve())
        return command, out
    config = RunConfig.load(path, legacy=legacy)
    if config.data is None:
        raise ValueError(
            f"run='{path}' was fitted on in-memory arrays (aelab.Autoencoder): no command "
            "trains it again; refit the estimator"
        )
    from aelab.models import get_recipe, model_config

    recipe_default = model_config(config.model, config.model_config.input_shape)
    changed = {
        f: v
        for f, v in config.model_config.to_dict().items()
        if v != recipe_default.to_dict()[f] and f != "input_shape"
    }
    # the quick schedule's own model fields (a centred input, in a workshop's runs): its name
    # sets them; the training settings below are written out whole either way
    quick = dict(get_recipe(config.model).quick.model)
    schedule = "quick" if quick and all(changed.get(f) == v for f, v in quick.items()) else "seed"
    if schedule == "quick":
        changed = {f: v for f, v in changed.items() if f not in quick}
    out = {"model": config.model, **_data(config.data), **_model_fields(changed)}
    out["schedule"] = schedule
    train = config.train.to_dict()
    if train["seed"] != config.data.seed:
        raise ValueError(
            f"run='{path}' trained with seed {train['seed']} on the split of seed "
            f"{config.data.seed}, which --seed sets together: take the file of its workshop "
            "(aelab config on the folder above it)"
        )
    return "train", out | _train(train, keep_seed=True)


def _data(spec) -> dict[str, Any]:
    from aelab.data.spec import DataSpec

    default = DataSpec()
    out = {}
    for field, key in DATA_FLAGS.items():
        value = getattr(spec, field)
        if field in ("source", "mirror") or value != getattr(default, field):
            if field == "image_size" and value is not None:
                value = "x".join(map(str, value))
            out[key] = "none" if value is None and field == "max_image_pixels" else value
    out["seed"] = spec.seed
    return {k: v for k, v in out.items() if v is not None}


def _model_fields(fields: dict[str, Any]) -> dict[str, Any]:
    from .flags import FAMILY_FLAGS

    names = MODEL_FLAGS | {f[2:].replace("-", "_"): f[2:] for f, _, _ in FAMILY_FLAGS}
    out = {}
    for field, value in fields.items():
        if field not in names:
            raise ValueError(
                f"the model's {field}={value!r} has no flag: no command sets it; the run was "
                "made from the library"
            )
        if field == "latent_activation" and value is None:
            value = "none"
        out[names[field]] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _train(fields: dict[str, Any], *, keep_seed: bool) -> dict[str, Any]:
    import dataclasses

    from aelab.training.config import TrainConfig
    from aelab.utils.fields import flag_of

    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in fields or (f.name == "seed" and not keep_seed):
            continue
        value = fields[f.name]
        if f.name == "shuffle":
            if value is False:
                out["no-shuffle"] = True
            continue
        if value is None:
            if f.name in ("noise", "augment"):
                out[flag_of(f)[2:]] = "none"
            continue
        out[flag_of(f)[2:]] = value
    return out


def dumps(command: str, settings: dict[str, Any], source: str) -> str:
    """``settings`` as a TOML file for ``aelab COMMAND --config FILE``."""
    lines = [
        f"# aelab {command} --config FILE trains the run in {source} again (aelab config wrote",
        "# this). Flags given on the command line override a setting here.",
    ]
    for key, value in settings.items():
        lines.append(f"{key} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


__all__ = ["dumps", "parse", "settings_of", "tokens"]
