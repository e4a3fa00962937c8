"""Optimizer quality against a known truth: synthetic joint-law tables (k = 5, 60 runs x 5 checkpoints)."""

import json
import sys
from pathlib import Path

import mixlaw_jax as mj
from mixlaw_jax.engine.space import make_space

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import SYNTHETIC_K as K  # noqa: E402
from benchmarks.common import objective_at, synthetic_table  # noqa: E402

#: Seed 0 and the three seeds that failed before the screen profiled the linear parameters (benchmarks/NOTES.md).
HARD_SEEDS = (0, 7, 13, 16)


def test_default_fit_reaches_the_truths_objective():
    """Issue 2 asks for 19 of 20 seeds; that full run (~3 min) is benchmarks/synthetic_truth.py, checked on file
    below. Here the hardest seeds, every one of which must reach the truth's objective."""
    wins = []
    for seed in HARD_SEEDS:
        runs, truth = synthetic_table(seed)
        result = mj.fit(runs, "joint")
        at_truth = objective_at("joint", truth, runs)
        wins.append(bool(result.objective[0] <= at_truth))
        print(f"seed {seed}: fit {result.objective[0]:.6e}  truth {at_truth:.6e}")
    assert all(wins), wins
    assert make_space(mj.get_law("joint"), K).size == 25


def test_twenty_seed_run_on_file_reaches_the_truth_in_at_least_19():
    result = json.loads((ROOT / "benchmarks" / "results" / "synthetic_truth.json").read_text())
    rows = result["rows"]
    assert [r["seed"] for r in rows] == list(range(20))
    assert all(r["reached"] == (r["objective"] <= r["at_truth"]) for r in rows)
    assert sum(r["reached"] for r in rows) >= 19 and result["reached"] == sum(r["reached"] for r in rows)
