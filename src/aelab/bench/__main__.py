"""``python -m aelab.bench``: the benchmark's command (also its scaling worker processes)."""

import sys

from .cli import main

sys.exit(main())
