"""Optimizer quality against a known truth: synthetic joint-law tables (k = 5, 60 runs x 5 checkpoints)."""
import sys
from pathlib import Path

import mixlaw_jax as mj
from mixlaw_jax.fit.space import make_space

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import SYNTHETIC_K as K, objective_at, synthetic_table  # noqa: E402


def test_default_fit_reaches_the_truths_objective():
    """Issue 2 asks for 19 of 20 seeds; that full run (~6 min) is benchmarks/synthetic_truth.py
    (results/synthetic_truth.json). Here: the first 5 seeds, every one of which must reach the truth."""
    wins = []
    for seed in range(5):
        runs, truth = synthetic_table(seed)
        result = mj.fit(runs, "joint")
        at_truth = objective_at("joint", truth, runs)
        wins.append(bool(result.objective[0] <= at_truth))
        print(f"seed {seed}: fit {result.objective[0]:.6e}  truth {at_truth:.6e}")
    assert all(wins), wins
    assert make_space(mj.get_law("joint"), K).size == 25
