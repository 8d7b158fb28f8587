"""Every number with its spread over seeds: summaries, intervals and the tests that decide
whether one thing beats another.

A quantity measured on several training seeds (a held-out MSE, a ratio to PCA, an anomaly AUC)
is given as its mean, its sample standard deviation and a 95% interval for the mean from
Student's t distribution (``mean ± t(0.975, n - 1) · std / √n``): the interval that a verdict
("beats PCA") must clear. With one seed the spread is unknown, and said so. Two groups of seeds
are compared with Welch's t test (unequal variances; Welch 1947), the standard choice for a few
seeds each whose spreads need not match.

Nothing here knows a model: the numbers come from :mod:`aelab.analysis.measure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95


def summary(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "ci95", "n", "values"}`` of ``values`` (one per seed); ``std`` and
    ``ci95`` are None for fewer than two values."""
    from scipy import stats

    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if not len(x):
        raise ValueError("summary needs at least one value")
    n, mean = len(x), float(x.mean())
    out: dict[str, Any] = {"mean": mean, "std": None, "ci95": None, "n": n, "values": x.tolist()}
    if n > 1 and np.isfinite(x).all():
        std = float(x.std(ddof=1))
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
        out.update(std=std, ci95=[mean - half, mean + half])
    return out


def _numbers(entry: Any, at: str = "") -> dict[str, float]:
    """Every number (not a flag) in a nested record, by its dotted path."""
    found: dict[str, float] = {}
    if isinstance(entry, Mapping):
        for key, value in entry.items():
            found |= _numbers(value, f"{at}.{key}" if at else str(key))
    elif isinstance(entry, (int, float)) and not isinstance(entry, bool):
        found[at] = float(entry)
    return found


def _put(entry: dict[str, Any], path: str, value: float) -> None:
    *parents, last = path.split(".")
    for key in parents:
        entry = entry[key]
    entry[last] = value


def aggregate(entries: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One record from the records of several seeds (the same structure): every number the
    seeds disagree on replaced by its mean, and by its dotted path the :func:`summary` of each
    such number. Numbers they agree on (a code size, PCA's, anything deterministic) are kept as
    they are; everything else (names, lists) is the first seed's."""
    import copy

    if not entries:
        raise ValueError("aggregate needs the record of at least one seed")
    merged = copy.deepcopy(dict(entries[0]))
    per_seed = [_numbers(e) for e in entries]
    spread = {}
    for path, first in per_seed[0].items():
        values = [p.get(path) for p in per_seed]
        if any(v is None for v in values) or all(v == first for v in values):
            continue
        spread[path] = summary(values)
        _put(merged, path, spread[path]["mean"])
    return merged, spread


def interval(m: Mapping[str, Any], path: str) -> tuple[float, float] | None:
    """The 95% interval of the number at ``path`` of a model's record (None with one seed)."""
    s = m.get("spread", {}).get(path)
    return None if s is None or s.get("ci95") is None else tuple(s["ci95"])


def n_seeds(m: Mapping[str, Any]) -> int:
    return len(m.get("seeds", [None]))


def against(value: float, ci: tuple[float, float] | None, reference: float) -> int:
    """-1 where the interval lies wholly below ``reference``, 1 wholly above, 0 where it
    straddles it; with no interval (one seed), the sign of the single value's difference."""
    if ci is None:
        return (value > reference) - (value < reference)
    lo, hi = ci
    return -1 if hi < reference else 1 if lo > reference else 0


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Welch's two-sided t test of the means of ``a`` and ``b`` (each at least two values):
    ``{"difference", "t", "df", "p", "ci95"}``, the interval of the difference of the means."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a test of two groups needs at least two seeds in each")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
        return {"difference": diff, "t": None, "df": None, "p": p, "ci95": [diff, diff]}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = diff / se
    p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    return {"difference": diff, "t": float(t), "df": float(df), "p": p,
            "ci95": [diff - half, diff + half]}  # fmt: skip


def within_spread(candidate: Sequence[float], reference: Sequence[float]) -> dict[str, Any]:
    """Is ``candidate`` (one value per seed, lower is better) no worse than ``reference`` beyond
    the reference's own seed-to-seed spread? ``excess`` is the difference of the means, ``std``
    the reference's sample standard deviation, and ``within`` whether ``excess <= std``: the
    candidate costs less than changing the seed does. Being better never counts against it. At
    least two values each, as a spread needs; with a handful of seeds a test of equivalence
    could not be passed, and a test of difference could not fail, so the rule compares with
    the noise a user meets anyway."""
    a, b = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("comparing with a spread needs at least two seeds in each")
    excess, std = float(a.mean() - b.mean()), float(b.std(ddof=1))
    return {"excess": excess, "std": std, "within": bool(excess <= std),
            "ratio": float(a.mean() / b.mean()) if b.mean() else None}  # fmt: skip


def plus_minus(m: Mapping[str, Any], path: str, fmt: str = ".4g") -> str:
    """The number at ``path`` of a model's record as ``mean ± std`` (the mean alone with one
    seed); ``—`` where there is none."""
    value: Any = m
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        return "—"
    s = m.get("spread", {}).get(path)
    if s is None or s.get("std") is None:
        return format(value, fmt)
    return f"{format(value, fmt)} ± {format(s['std'], fmt)}"


__all__ = [
    "CONFIDENCE",
    "against",
    "aggregate",
    "interval",
    "n_seeds",
    "plus_minus",
    "summary",
    "welch",
    "within_spread",
]
