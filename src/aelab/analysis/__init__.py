"""Analysis: pure functions and small classes over arrays and opened runs: metrics
(:mod:`.metrics`), new codes from old (:mod:`.generate`), robustness to corruption
(:mod:`.robustness`) and anomaly detection (:mod:`.anomaly`). Nothing here writes a file."""
