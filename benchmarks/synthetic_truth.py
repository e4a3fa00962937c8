"""Optimizer quality against a known truth, the full version of tests/test_synthetic.py: 20 synthetic joint-law
tables (k = 5, 60 runs x 5 checkpoints, 0.1% noise), default fit settings; does the fit reach an objective no
higher than the objective at the true parameters?

    python -m benchmarks.synthetic_truth [--seeds 20]

Writes benchmarks/results/synthetic_truth.json.
"""

from __future__ import annotations

import argparse
import time

import mixlaw_jax as mj
from benchmarks.common import RESULTS, objective_at, synthetic_table
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.results import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        runs, truth = synthetic_table(seed)
        start = time.perf_counter()
        result = mj.fit(runs, "joint")
        seconds = time.perf_counter() - start
        at_truth = objective_at("joint", truth, runs)
        rows.append(
            {
                "seed": seed,
                "objective": float(result.objective[0]),
                "at_truth": at_truth,
                "reached": bool(result.objective[0] <= at_truth),
                "seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    out = {"reached": sum(r["reached"] for r in rows), "seeds": args.seeds, "rows": rows, "provenance": provenance(0)}
    print(f"reached the truth's objective in {out['reached']} of {args.seeds} seeds")
    atomic_write_json(RESULTS / "synthetic_truth.json", out)


if __name__ == "__main__":
    main()
