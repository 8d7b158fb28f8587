"""The report reading its own numbers, as a workshop teacher would: for each model, a sentence
where its result would surprise a newcomer, saying what it means and what to try.

What is said: whether the model beats PCA with as many components as it has code units
(:func:`verdict`) and, where it does not, whether it stopped too early or overfit; a denoising
model whose output is worse than its noisy input at the noise it was trained on, with the level
at which it does help; dead code units, what they mean and what would bring them back; a
variational model using fewer code units than it has (posterior collapse, by KL: the dead-unit
count, a unit's range over the images, misses a posterior mean that barely moves);
reconstructions that are nearly all the same image, or alike because the code is small. With
several training seeds a sentence is said only where the 95% interval of its number supports it
(:mod:`aelab.analysis.spread`).

Pure functions of ``metrics.json``'s records (:func:`aelab.analysis.measure.measure`): no model,
no array, so each can be checked on a record built by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aelab.analysis.robustness import standings
from aelab.analysis.spread import against, interval, n_seeds
from aelab.models.variational import ACTIVE_KL

LEVEL = 0.01  # one seed: an error within 1% of PCA's is called level, never better or worse
LEVEL_AUC = 0.01  # one seed: ROC-AUCs closer than this are level (the table prints 3 decimals)
SAME_IMAGE = 0.1  # reconstructions varying less than this share of the originals: one image
DEAD_SHARE = 0.1  # dead units worth a sentence: at least this share of the code
STILL_FALLING = 0.02  # held-out loss this much lower over the last quarter of epochs: not done
OVERFIT = 0.05  # held-out loss ending this much above its best: overfit
TIED_DB = 0.05  # one seed: PSNRs closer than this (0.0 dB when printed) are level
KINDS = {"gaussian": "Gaussian noise", "saltpepper": "salt and pepper", "mask": "masking"}
THINGS = {"faces": ("face", "person", "people"), "digits": ("digit", "digit", "digits")}


def _pct(x: float) -> str:
    if abs(x) < 0.0005:
        return "under 0.1%"
    return f"{x:.1%}" if abs(x) < 0.1 else f"{x:.0%}"


def _share(x: float) -> str:
    """A share in whole percent, never "0%" for one that is not zero."""
    return "under 1%" if 0 < x < 0.005 else f"{x:.0%}"


def _side(
    m: Mapping[str, Any], path: str, value: float, reference: float, level: float = 0.0
) -> int:
    """-1, 0 or 1: ``value`` (at ``path`` of the record) below, level with or above
    ``reference``, by its seeds' 95% interval where it has one; with one seed, level where
    they differ by less than ``level``."""
    ci = interval(m, path)
    if ci is None and abs(value - reference) < level:
        return 0
    return against(value, ci, reference)


def side(m: Mapping[str, Any], path: str, reference: float, level: float = 0.0) -> int:
    """:func:`_side` of the number at dotted ``path`` of a model's record ``m`` (a table's mark:
    -1 lower, 1 higher, 0 level or not shown by its seeds)."""
    value: Any = m
    for key in path.split("."):
        value = value[key]
    return _side(m, path, value, reference, level)


# --- the data's words -----------------------------------------------------------------------


def words(data: Mapping[str, Any]) -> dict[str, str]:
    """What a run's images are called: ``{"thing", "things", "label", "group"}`` ("face",
    "faces", "person", "people"; "digit", "digits", "digit", "digits"; "image", "images",
    "class", "classes"), from ``metrics.json``'s ``"data"`` (its ``"kind"``)."""
    kind = data.get("kind", "images")
    thing, label, group = THINGS.get(kind, ("image", "class", "classes"))
    return {"thing": thing, "things": f"{thing}s", "label": label, "group": group}


def heldout_phrase(data: Mapping[str, Any]) -> str:
    """One sentence saying what the held-out images are, true of this run's split: whole
    people or classes never trained on, or a random share of images whose people or classes
    also occur in training."""
    w = words(data)
    split = data.get("split", {})
    held = data.get("heldout")
    if held is None:  # a record of an older aelab: only the split says
        held = "classes" if split.get("holdout_people") else "images"
    if held in ("people", "classes"):
        names = data.get("heldout_classes") or []
        n = len(names) or split.get("holdout_people")
        group = "people" if held == "people" else "classes"
        which = f": {_names(names)}" if names else ""
        return f"The held-out {w['things']} are of {n} {group} never trained on{which}."
    share = split.get("holdout")
    share = f"a random {share:.0%}" if isinstance(share, (int, float)) else "a random share"
    text = f"The held-out {w['things']} are {share} of the images, never trained on"
    if data.get("labelled", True):
        who = "the same people" if w["thing"] == "face" else f"the same {w['group']}"
        text += f"; {who} appear in training"
    return text + "."


def _names(names: list[str]) -> str:
    if len(names) > 2 and all(n.isdigit() for n in names):
        values = sorted(int(n) for n in names)
        if values == list(range(values[0], values[-1] + 1)):
            return f"{values[0]}–{values[-1]}"
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]


# --- against PCA ------------------------------------------------------------------------------


def standing(m: Mapping[str, Any]) -> int:
    """-1 where a model's held-out error is below PCA's (beyond its seeds' 95% interval with
    several, by more than :data:`LEVEL` with one), 1 where above, 0 where level or the interval
    straddles PCA's (or PCA is exact)."""
    ratio = m.get("pca_ratio")
    return 0 if ratio is None else _side(m, "pca_ratio", ratio, 1.0, LEVEL)


def verdict(name: str, m: Mapping[str, Any]) -> str:
    """One sentence: did the model beat PCA with the same code size on held-out data? With
    several seeds, only where the 95% interval of its error's ratio to PCA's says so; with
    one, only by more than :data:`LEVEL`."""
    ae, pca, ratio = m["heldout"]["mse"], m["pca"]["mse"], m.get("pca_ratio")
    k, n = m["pca"]["n_components"], n_seeds(m)
    if ratio is None:
        return (
            f"PCA with {k} components reconstructs the held-out images exactly: {name} is not "
            "compared."
        )
    side = standing(m)
    lower = "lower" if ratio < 1 else "higher"
    where = f"MSE {ae:.5f} vs {pca:.5f}, {_pct(abs(1 - ratio))} {lower}"
    ci = interval(m, "pca_ratio")
    if ci is None:
        one = "one seed: its spread is unknown; --seeds 0,1,2 measures it"
        did = "is level with" if side == 0 else "beats" if side < 0 else "does not beat"
        return f"{name} {did} PCA with {k} components on held-out images: {where} ({one})."
    spread = f"95% interval of the ratio {ci[0]:.3f}–{ci[1]:.3f} over {n} seeds"
    if side == 0:
        return (
            f"{name} and PCA with {k} components are not distinguishable over {n} seeds on "
            f"held-out images: ratio {ratio:.3f} ({spread})."
        )
    did = "beats" if side < 0 else "does not beat"
    return f"{name} {did} PCA with {k} components on held-out images: {where} ({spread})."


def _why_pca_wins(m: Mapping[str, Any]) -> str | None:
    """Where a model loses to PCA: whether it stopped while its held-out loss still fell (its
    last quarter of epochs gained more than :data:`STILL_FALLING`), overfit (ended more than
    :data:`OVERFIT` above its best), or had levelled off."""
    c = m.get("heldout_curve")
    if standing(m) != 1 or not c:
        return None
    epochs, best_epoch = int(m["epochs"]), round(c["best_epoch"])
    if c["last"] > (1 + OVERFIT) * c["best"]:
        return (
            f"Its held-out loss was lowest at epoch {best_epoch} of {epochs} and ended "
            f"{_pct(c['last'] / c['best'] - 1)} higher: it overfit its training images; keeping "
            "the best epoch (--validation 0.2 --patience 5) would help."
        )
    early = c.get("best_early", c["best"])
    if c["best"] < (1 - STILL_FALLING) * early:
        gained = _pct(1 - c["best"] / early)
        return (
            f"Its held-out loss was still falling when training stopped ({gained} "
            f"lower over the last quarter of its {epochs} epochs): more epochs come first "
            "(--epochs N, or --schedule seed for the notebook's own)."
        )
    return (
        f"Its held-out loss had levelled off (lowest at epoch {best_epoch} of {epochs}, under "
        f"{STILL_FALLING:.0%} lower than over its first three quarters): more epochs alone will "
        "not close the gap."
    )


# --- what surprises ---------------------------------------------------------------------------


def _level(kind: str, level: float) -> str:
    if kind == "gaussian":
        return f"σ = {level:g}"
    return f"{level:.0%} of the pixels {'masked' if kind == 'mask' else 'set to 0 or 1'}"


def noise_phrase(spec: str) -> str:
    """A noise spec in words: ``"gaussian:0.05"`` -> "Gaussian noise, σ = 0.05"."""
    kind, level = _noise(spec)
    if kind not in KINDS or level is None:
        return spec
    return f"{KINDS[kind]}, {_level(kind, level)}"


def _noise(spec: str) -> tuple[str, float | None]:
    kind, _, level = spec.partition(":")
    try:
        return kind, float(level)
    except ValueError:
        return kind, None


def denoising_note(name: str, m: Mapping[str, Any], curve: Mapping | None = None) -> str | None:
    """Where a denoising model's output is worse than its noisy input at the noise it was
    trained on: by how much, why, and from which level of that noise it does help (the
    robustness curve ``curve``, where there is one)."""
    d = m.get("denoising")
    if not d:
        return None
    noisy, out = d["noisy_psnr"], d["denoised_psnr"]
    if _side(m, "denoising.denoised_psnr", out, noisy) != -1:
        return None
    kind, _ = _noise(d["noise"])
    text = (
        f"At the noise it was trained on ({noise_phrase(d['noise'])}) {name}'s output "
        f"is {noisy - out:.1f} dB worse than its noisy input: {noisy:.1f} dB noisy, {out:.1f} "
        "dB denoised."
    )
    clean = m["heldout"]["psnr"]
    if clean < noisy:
        text += (
            f" Even clean images come back at only {clean:.1f} dB: this noise costs less than "
            "the model's own reconstruction error, so passing an image through the model loses "
            "more than it removes."
        )
    else:
        text += (
            f" It reconstructs clean images at {clean:.1f} dB, so it has not learned to remove "
            "this noise."
        )
    if curve and name in curve.get("methods", {}) and kind in curve.get("levels", {}):
        rows = standings(curve, name, [])[kind]
        helps = [r for r in rows if not r["below_input"]]
        if not helps:
            top = _level(kind, max(r["level"] for r in rows))
            text += f" At no level measured, up to {top}, is its output better than the input."
        else:
            first = helps[0]
            after = all(not r["below_input"] for r in rows if r["level"] >= first["level"])
            text += (
                f" It does help {'from' if after else 'at'} {_level(kind, first['level'])}"
                f"{' on' if after else ''}: {first['psnr']:.1f} dB against the noisy input's "
                f"{first['input']:.1f} dB."
            )
    return text


def dead_note(name: str, m: Mapping[str, Any], variational: bool = False) -> str | None:
    """Where at least :data:`DEAD_SHARE` of a model's code units are dead (never vary over the
    training images), supported by its seeds: what that means, and what would revive them.
    Not for a variational model (its units are judged by KL: :func:`collapse_note`)."""
    dead, size = m.get("dead_units"), m.get("code_size")
    if variational or not dead or not size:
        return None
    ci = interval(m, "dead_units")
    if dead / size < DEAD_SHARE or (ci is not None and ci[0] <= 0):
        return None
    seeds = f" (mean of {n_seeds(m)} seeds)" if ci is not None else ""
    if dead >= size:
        return (
            f"Every one of {name}'s {size} code units is dead{seeds}: the decoder gets the same "
            "code for every image, so it can only draw one image."
        )
    text = (
        f"{dead:.3g} of {name}'s {size} code units are dead ({dead / size:.0%}){seeds}: they "
        "take the same value on every training image and pass nothing to the decoder, so its "
        f"code is in effect {size - dead:.3g} numbers wide, not {size}."
    )
    act = m.get("code_activation")
    if act == "relu":
        text += (
            " A ReLU unit whose input is negative for every image gets no gradient, so more "
            "epochs will not bring it back; training again with a lower learning rate (--lr) "
            "makes the large early steps that switch units off rarer."
        )
    elif act == "sigmoid":
        text += (
            " A sigmoid unit stuck at 0 or 1 is saturated and its gradient nearly zero, so "
            "it recovers slowly if at all; training again with a lower learning rate (--lr) "
            "keeps units out of saturation."
        )
    return text


def collapse_note(name: str, m: Mapping[str, Any]) -> str | None:
    """Where a variational model's active units (mean KL above :data:`ACTIVE_KL` nats per
    image, over the held-out images) are fewer than its code units, supported by its seeds."""
    active, size = (m.get("family") or {}).get("active_units"), m.get("code_size")
    if active is None or not size:
        return None
    ci = interval(m, "family.active_units")
    if active >= size or (ci is not None and ci[1] >= size):
        return None
    seeds = f" (mean of {n_seeds(m)} seeds)" if ci is not None else ""
    if active < 0.5:
        return (
            f"{name} uses none of its {size} code units{seeds}: every image gets the prior as "
            "its code, so the decoder draws the same image for all (posterior collapse)."
        )
    return (
        f"{name} uses {active:.3g} of its {size} code units{seeds}: the others' posterior stays "
        f"at the prior (mean KL under {ACTIVE_KL} nats per image) and carries nothing about the "
        "image. "
        "This is posterior collapse, which the dead-unit count misses (a mean that barely moves "
        "still moves). The KL term pushes units the decoder can do without to the prior; a "
        "smaller KL weight (--beta) or warming it up (--warmup N epochs) leaves more in use."
    )


def same_image_note(name: str, m: Mapping[str, Any], data: Mapping | None = None) -> str | None:
    """Where a model's reconstructions differ from one another by less than
    :data:`SAME_IMAGE` of what the originals do (supported by its seeds): nearly one image."""
    ratio = m["heldout"].get("variance_ratio")
    if ratio is None or _side(m, "heldout.variance_ratio", ratio, SAME_IMAGE) != -1:
        return None
    w = words(data or {})
    pca = m["pca"].get("variance_ratio")
    k = m["pca"]["n_components"]
    keeps = "" if pca is None else f"; PCA with {k} components keeps {_share(pca)}"
    return (
        f"{name}'s reconstructions are nearly all the same image: they differ from one another "
        f"by {_share(ratio)} of what the original {w['things']} do{keeps}. It has learned the "
        f"average {w['thing']} and little of what tells one {w['thing']} from another."
    )


def small_code_note(name: str, m: Mapping[str, Any], data: Mapping | None = None) -> str | None:
    """Where a model's reconstructions look alike (they keep under half of how the originals
    differ) but no less than PCA's of the same size do: the code is small, not the training
    poor (MNIST's two-unit VAE drew one blurry blob, as PCA with 2 components does)."""
    ratio, pca = m["heldout"].get("variance_ratio"), m["pca"].get("variance_ratio")
    if ratio is None or pca is None or not SAME_IMAGE <= ratio < 0.5 or pca >= 0.5:
        return None
    if ratio < 0.5 * pca:
        return None
    w, k = words(data or {}), m["pca"]["n_components"]
    return (
        f"{name}'s reconstructions look alike: they keep {_share(ratio)} of how the "
        f"{w['things']} differ, and PCA with {k} components keeps {_share(pca)}. A code of {k} "
        f"numbers holds little: the blur is mostly the code's size, and more units "
        "(--latent-dim) hold more."
    )


def model_notes(
    name: str,
    m: Mapping[str, Any],
    *,
    data: Mapping | None = None,
    curve: Mapping | None = None,
    variational: bool | None = None,
) -> list[str]:
    """Every sentence that model ``name``'s record ``m`` calls for, most telling first (none
    where nothing surprises). ``variational``: judged by KL rather than by range (default:
    where the record has the variational families' ``active_units``)."""
    if variational is None:
        variational = "active_units" in (m.get("family") or {})
    notes = [
        same_image_note(name, m, data),
        small_code_note(name, m, data),
        denoising_note(name, m, curve),
        collapse_note(name, m),
        dead_note(name, m, variational),
        _why_pca_wins(m),
    ]
    return [n for n in notes if n]


# --- robustness -------------------------------------------------------------------------------


def _spans(picked: list[float], levels: list[float]) -> str:
    """Levels as ranges of consecutive ones: ``0.05–0.2, 0.5``."""
    runs: list[list[float]] = []
    for level in levels:
        if level in picked:
            if runs and levels.index(level) == levels.index(runs[-1][-1]) + 1:
                runs[-1].append(level)
            else:
                runs.append([level])
    return ", ".join(f"{r[0]:g}" if len(r) == 1 else f"{r[0]:g}–{r[-1]:g}" for r in runs)


def _method(key: str) -> str:
    return f"PCA-{key[4:]}" if key.startswith("pca-") else key


def robustness_notes(curve: Mapping[str, Any], name: str) -> list[str]:
    """Where a denoising model ``name`` stands in the robustness curve, one sentence per kind of
    corruption: the levels where it is the best of every method, where which method does better
    (and by how much at most), where it is no better than the corrupted input. A difference
    under :data:`TIED_DB` is no difference: the two are level there."""
    rivals = list(curve["methods"])
    notes = []
    for kind, rows in standings(curve, name, rivals).items():
        if not rows:
            continue
        levels = [r["level"] for r in rows]
        unit = "σ " if kind == "gaussian" else ""
        tied = [r for r in rows if r["rival"] is not None and r["rival_psnr"] - r["psnr"] < TIED_DB]
        beaten: dict[str, list[dict]] = {}
        for r in rows:
            if r["rival"] is not None and r not in tied:
                beaten.setdefault(r["rival"], []).append(r)
        best = [r["level"] for r in rows if r["rival"] is None and not r["below_input"]]
        parts = [f"the best of all at {unit}{_spans(best, levels)}"] if best else []
        for rival, rs in beaten.items():
            gap = max(r["rival_psnr"] - r["psnr"] for r in rs)
            where = _spans([r["level"] for r in rs], levels)
            by = "by" if len(rs) == 1 else "by up to"
            parts.append(f"{_method(rival)} higher at {unit}{where} ({by} {gap:.1f} dB)")
        if tied:
            others = ", ".join(dict.fromkeys(_method(r["rival"]) for r in tied))
            where = _spans([r["level"] for r in tied], levels)
            parts.append(f"level with {others} at {unit}{where}")
        below = [r["level"] for r in rows if r["below_input"]]
        if below:
            parts.append(f"no better than the corrupted input at {unit}{_spans(below, levels)}")
        notes.append(f"{name} under {KINDS.get(kind, kind)}: {'; '.join(parts)}.")
    return notes


__all__ = [
    "ACTIVE_KL", "collapse_note", "dead_note", "denoising_note", "heldout_phrase", "model_notes",
    "noise_phrase", "robustness_notes", "same_image_note", "side", "small_code_note", "standing",
    "verdict", "words",
]  # fmt: skip
