"""``python -m aelab`` (also what ``torchrun -m aelab`` starts)."""

from .cli import main

raise SystemExit(main())
