"""``python -m benchmarks``: aelab's speed benchmark run from a checkout (see README.md here)."""
