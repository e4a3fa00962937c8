"""benchmarks/local_solvers.py at tiny sizes: both local solvers refine the same screened starts and report finite,
comparable numbers (the full run is on file in benchmarks/results/local_solvers.json)."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import local_solvers  # noqa: E402


def test_quick_comparison_refines_the_same_starts_with_both_methods():
    out = local_solvers.run(quick=True)
    (row,) = out["problems"]
    assert row["problem"] == "synthetic" and row["starts"] == local_solvers.QUICK["n_starts"]
    lm, gd = row["lm"], row["adam+lbfgs"]
    assert np.isfinite([lm["best"], gd["best"], lm["warm_s"], gd["warm_s"]]).all()
    assert row["best_objective"] == min(lm["best"], gd["best"])
    assert lm["in_basin"] + gd["in_basin"] >= 1
    steps = local_solvers.QUICK["adam"] + local_solvers.QUICK["lbfgs"]
    assert len(gd["best_trace"]) == steps // local_solvers.QUICK["trace"]
    assert all(a >= b for a, b in zip(gd["best_trace"], gd["best_trace"][1:]))  # a running best never rises
