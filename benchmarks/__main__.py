"""``python -m benchmarks``: ``aelab bench`` with this checkout's defaults.

The Keras port and the Olivetti file are looked for where the project keeps them beside the
checkout (``../shared/peers/keras_seed.py``, ``../shared/data/olivettifaces.mat``) and the Keras
environment in ``.venv-keras`` (see benchmarks/README.md); results go to ``benchmarks/results/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from aelab.bench import main

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = {
    "--keras-python": REPO / ".venv-keras" / "bin" / "python",
    "--keras-script": REPO.parent / "shared" / "peers" / "keras_seed.py",
    "--olivetti-mat": REPO.parent / "shared" / "data" / "olivettifaces.mat",
}


def _with_defaults(argv: list[str]) -> list[str]:
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    extra: list[str] = []
    for flag, path in DEFAULTS.items():
        if flag not in given and path.is_file():
            extra += [flag, str(path)]
    if "--out" not in given:
        extra += [
            "--out",
            str(REPO / "benchmarks" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json"),
        ]
    if "--sections" not in given and not (REPO / ".venv-keras" / "bin" / "python").is_file():
        extra += ["--sections", "models,end-to-end,scaling,contention"]
    return [*argv, *extra]


if __name__ == "__main__":
    sys.exit(main(_with_defaults(sys.argv[1:]), prog="python -m benchmarks"))
