"""The repetition benchmarks (benchmarks/repetition_truth.py, benchmarks/repetition_path.py): the known-truth
tables repeat their small domains as stated, the grid check finds the true law's optimum, and the SlimPajama path
reads its pools and repetition parameters from the sources it names."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mixlaw_jax as mj
from benchmarks import repetition_path, repetition_truth
from benchmarks.common import REPETITION_RANGES, RESULTS, objective_at, synthetic_table


@pytest.mark.parametrize("k", [3, 5])
def test_truth_tables_repeat_the_small_domains_up_to_the_stated_epochs(k):
    pools = repetition_truth.pools(seed=2, k=k)
    runs, truth = synthetic_table(2, k=k, noise=repetition_truth.NOISE, pools=pools)
    assert runs.n_rows == 300 and truth.shape == (mj.get_law("joint_repetition").n_params(k),)
    epochs = runs.h * runs.d[:, None] / pools
    most = np.asarray(repetition_truth.MOST_EPOCHS[k])
    limited = np.isfinite(most)
    np.testing.assert_allclose(epochs.max(axis=0)[limited], most[limited], rtol=1e-12)
    assert epochs[:, limited].min() < 0.1 and (epochs[:, ~limited] == 0).all()  # e spans < 0.1 .. 30
    np.testing.assert_array_equal(runs.u, np.broadcast_to(pools, runs.h.shape))
    # the joint part of the truth is the pool-free table's; the repetition part follows it
    _, joint = synthetic_table(2, k=k)
    np.testing.assert_array_equal(truth[: len(joint)], joint)
    for value, name in zip(truth[len(joint) :], ("rho", "C_o", "nu", "kappa")):
        low, high = REPETITION_RANGES[name]
        assert low <= value <= high
    # noise of the stated level: the truth's residuals (relative) have about that spread
    law = mj.get_law("joint_repetition")
    clean = np.asarray(law.predict(law.unflatten(truth, k), runs.inputs()))
    assert np.std(runs.losses[:, 0] / clean - 1) == pytest.approx(repetition_truth.NOISE, rel=0.15)
    assert objective_at("joint_repetition", truth, runs) > 0


def test_the_grid_check_finds_the_true_laws_lowest_point():
    runs, truth = synthetic_table(0, k=3, pools=repetition_truth.pools(0, 3))
    u = repetition_truth.pools(0, 3)
    grid = repetition_truth.simplex_grid(3, 0.05)
    assert len(grid) == 231 and np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()
    n, d = repetition_truth.BUDGET
    h, f = repetition_truth.grid_optimum(truth, u, n, d)
    law = mj.get_law("joint_repetition")
    fine = repetition_truth.simplex_grid(3, repetition_truth.STEP)
    x = mj.laws.Inputs.from_arrays(np.full(len(fine), n), np.full(len(fine), d), fine, np.broadcast_to(u, fine.shape))
    loss = np.asarray(law.predict(law.unflatten(truth, 3), x))
    assert f == loss.min() and np.array_equal(h, fine[np.argmin(loss)])
    assert repetition_truth.json_number(np.inf) is None and repetition_truth.json_number(2.0) == 2.0


def test_the_slimpajama_path_reads_its_pools_and_repetition_parameters_from_the_named_sources():
    assert sum(repetition_path.POOLS.values()) == pytest.approx(627e9)
    assert repetition_path.POOLS["weight_commoncrawl"] == pytest.approx(0.522 * 627e9)
    fits = {
        (f["law"], f["loss_space"]): f["params"]
        for f in json.loads((RESULTS / "datablations.json").read_text())["fits"]
    }
    params = repetition_path.repetition_parameters()
    assert params["rho"] == pytest.approx(1 / fits[("muennighoff", "raw")]["R_D"])
    assert params["C_o"] == fits[("chinchilla_overfit", "raw")]["C"]
    assert (params["nu"], params["kappa"]) == (
        fits[("chinchilla_overfit", "raw")]["nu"],
        fits[("chinchilla_overfit", "raw")]["kappa"],
    )
