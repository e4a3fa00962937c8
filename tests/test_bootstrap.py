"""Bootstrap: resampling, batched replicate fits, intervals, JSON round trip; Epoch's Chinchilla numbers."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax.bootstrap import resample_weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import bootstrap_calibration as calibration  # noqa: E402

LIGHT = mj.Search(128, ((4, 30, 1.0), (2, 60, 1.0)))


@pytest.fixture(scope="module")
def small_table():
    """20 mixtures x 2 sizes x 3 checkpoints of a known additive law (k = 2), 0.3% noise, two targets."""
    law = mj.get_law("additive")
    from mixlaw_jax.simulate import design, random_mixtures, simulate

    frame = design(random_mixtures(20, 2, min_weight=0.05, seed=1), [1e8, 3e8], [2e9, 6e9, 1.8e10])
    h = frame[["weight_0", "weight_1"]].to_numpy()
    u = np.array([1.8, np.log(170.0), 0.3, np.log(470.0), 0.3, np.log(2.0), np.log(1.5), 0.3, 0.6])
    assert u.size == law.n_params(2)
    for t in range(2):
        frame[f"loss_{t}"] = simulate(law, u, frame["N"], frame["D"], h, noise=3e-3, seed=t)
    return mj.load_runs(frame, weights="weight_*", N="N", D="D", targets="loss_*")


@pytest.fixture(scope="module")
def small_boot(small_table):
    full = mj.fit(small_table, "additive", search=mj.Search(1024, ((64, 30), (16, 100))))
    return mj.bootstrap(small_table, "additive", n_replicates=40, full_fit=full, search=LIGHT)


def test_run_resampling_keeps_checkpoints_of_a_run_together(small_table):
    w = resample_weights(small_table, 50, "runs", seed=3)
    assert w.shape == (50, small_table.n_rows)
    for r in range(50):
        for run in range(small_table.n_runs):
            assert len(set(w[r, small_table.run_id == run])) == 1
    rows_per_run = np.bincount(small_table.run_id)
    assert np.allclose((w / rows_per_run[small_table.run_id]).sum(axis=1), small_table.n_runs)
    rows = resample_weights(small_table, 50, "rows", seed=3)
    assert np.all(rows.sum(axis=1) == small_table.n_rows)
    assert not np.array_equal(w, resample_weights(small_table, 50, "runs", seed=4))
    assert np.array_equal(w, resample_weights(small_table, 50, "runs", seed=3))
    with pytest.raises(mj.MixlawError, match="resample"):
        resample_weights(small_table, 5, "points", seed=0)


def test_bayesian_weights_keep_every_run_with_a_dirichlet_weight(small_table):
    """n_runs x Dirichlet(1, ..., 1) per replicate: every run in, one weight per run, mean 1, variance
    (n - 1) / (n + 1) (a Beta(1, n - 1) times n)."""
    n = small_table.n_runs
    w = resample_weights(small_table, 400, "bayesian", seed=3)
    first_row = np.array([np.flatnonzero(small_table.run_id == run)[0] for run in range(n)])
    per_run = w[:, first_row]
    assert np.all(w > 0) and np.array_equal(w, per_run[:, small_table.run_id])
    assert np.allclose(per_run.sum(axis=1), n)
    assert per_run.var() == pytest.approx((n - 1) / (n + 1), rel=0.1)
    assert np.array_equal(w, resample_weights(small_table, 400, "bayesian", seed=3))


def test_a_bayesian_bootstrap_spreads_around_the_fit_and_round_trips(small_boot, small_table, tmp_path):
    boot = mj.bootstrap(
        small_table, "additive", n_replicates=20, resample="bayesian", full_fit=small_boot.fit, search=LIGHT
    )
    assert np.isfinite(boot.objective).all() and boot.resample == "bayesian"
    for t in boot.targets:
        lo, hi = boot.intervals(0.9)[t]["beta"]
        assert lo < boot.fit.params[t]["beta"] < hi
    boot.save(tmp_path / "bayes.json")
    assert mj.load_bootstrap(tmp_path / "bayes.json").resample == "bayesian"


def test_replicates_are_finite_and_spread_around_the_full_fit(small_boot):
    assert small_boot.coordinates.shape == (40, 2, mj.get_law("additive").n_params(2))
    assert np.isfinite(small_boot.objective).all()
    assert small_boot.n_failed == {"loss_0": 0, "loss_1": 0}
    se = small_boot.standard_errors
    ci = small_boot.intervals(0.9)
    for t in small_boot.targets:
        point = small_boot.fit.params[t]
        assert se[t]["alpha"] > 0 and np.all(np.array(se[t]["C"]) > 0)
        assert len(ci[t]["C"]) == 2 and all(lo < hi for lo, hi in ci[t]["C"])
        lo, hi = ci[t]["beta"]
        assert lo <= point["beta"] <= hi
    assert set(small_boot.fraction_unconverged) == {"loss_0", "loss_1"}


def test_prediction_intervals_bracket_the_point_and_widen_with_level(small_boot, small_table):
    frame = small_table.frame.drop(columns=["loss_0", "loss_1"]).iloc[:10].copy()
    frame["N"] = 3e9  # extrapolate 10x in N
    p95 = small_boot.predict_interval(frame)
    p50 = small_boot.predict_interval(frame, level=0.5)
    for t in small_boot.targets:
        assert np.all(p95[f"{t}_lo"] <= p95[t] + 1e-12) and np.all(p95[t] <= p95[f"{t}_hi"] + 1e-12)
        assert np.all(p95[f"{t}_hi"] - p95[f"{t}_lo"] >= p50[f"{t}_hi"] - p50[f"{t}_lo"])
        assert np.all(p95[f"{t}_hi"] > p95[f"{t}_lo"])
    mre = small_boot.mre_interval(small_table)
    assert list(mre.index) == ["loss_0", "loss_1"] and np.all(mre["lo"] <= mre["hi"])


def test_bagged_predictions_are_the_replicates_centre(small_boot, small_table):
    """The bagged prediction (the median of the replicate laws' predictions) sits inside the replicates'
    interquartile range, and near the full fit on the fitted rows."""
    frame = small_table.frame.drop(columns=["loss_0", "loss_1"]).iloc[:10].copy()
    frame["N"] = 3e9
    median = small_boot.predict(frame)
    quartiles = small_boot.predict_interval(frame, level=0.5)
    assert list(median.columns) == ["loss_0", "loss_1"] and list(median.index) == list(frame.index)
    for t in small_boot.targets:
        assert np.all(quartiles[f"{t}_lo"] <= median[t] + 1e-12) and np.all(median[t] <= quartiles[f"{t}_hi"] + 1e-12)
        assert not np.array_equal(median[t], small_boot.fit.predict(frame)[t])  # the replicates', not the fit's
    fitted = small_boot.predict(small_table)
    np.testing.assert_allclose(fitted.to_numpy(), small_boot.fit.predict(small_table).to_numpy(), rtol=2e-3)


def test_mixture_interval_contains_the_point_h_star(small_boot):
    frame = small_boot.mixture_interval(N=1e9, D=2e10, targets=["loss_0", "loss_1"])
    assert list(frame.index) == ["weight_0", "weight_1"]
    assert frame["h_star"].sum() == pytest.approx(1.0)
    assert np.all(frame["lo"] <= frame["h_star"] + 1e-9) and np.all(frame["h_star"] <= frame["hi"] + 1e-9)
    loss = frame.attrs["loss"]
    assert loss["lo"] <= loss["value"] <= loss["hi"]


def test_json_round_trip_predicts_the_same(small_boot, small_table, tmp_path):
    path = tmp_path / "boot.json"
    small_boot.save(path)
    loaded = mj.load_bootstrap(path)
    a, b = small_boot.predict_interval(small_table), loaded.predict_interval(small_table)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert loaded.standard_errors == small_boot.standard_errors
    payload = json.loads(path.read_text())
    payload["schema_version"] = 99
    path.write_text(json.dumps(payload))
    with pytest.raises(mj.MixlawError, match="schema version"):
        mj.load_bootstrap(path)


def test_bad_options_are_named(small_table):
    with pytest.raises(mj.MixlawError, match="n_replicates"):
        mj.bootstrap(small_table, "additive", n_replicates=1)
    with pytest.raises(mj.MixlawError, match="level"):
        mj.bootstrap(small_table, "additive", n_replicates=5, level=95)


#: Besiroglu et al. 2024 (Epoch), 4000 bootstrap resamples of the 240 points: SPEC.md section 5.
EPOCH_SE = {"A": 124.52, "B": 1293.28, "E": 0.02566, "alpha": 0.01540, "beta": 0.02060}
EPOCH_CI = {
    "A": (285.2, 743.6),
    "B": (1042.4, 5810.3),
    "E": (1.769, 1.871),
    "alpha": (0.317, 0.373),
    "beta": (0.331, 0.415),
}


def test_chinchilla_bootstrap_matches_epoch(chinchilla_frame):
    runs = mj.load_runs(chinchilla_frame, weights=["h"], N="Model Size", D="D", targets=["loss"])
    boot = mj.bootstrap(
        runs,
        "chinchilla",
        n_replicates=4000,
        resample="rows",
        objective=mj.Objective(loss_space="log", reduction="sum"),
        parameter_bounds=None,
        search=mj.Search(256, ((4, 30, 1.0), (2, 100, 1.0))),
    )
    se, ci = boot.standard_errors["loss"], boot.intervals(0.95)["loss"]
    for name in EPOCH_SE:
        print(
            f"{name:6s} SE {se[name]:.5g} (Epoch {EPOCH_SE[name]})  95% CI ({ci[name][0]:.5g}, {ci[name][1]:.5g}) "
            f"(Epoch {EPOCH_CI[name]})"
        )
        assert se[name] == pytest.approx(EPOCH_SE[name], rel=0.15), name
        assert ci[name][0] == pytest.approx(EPOCH_CI[name][0], rel=0.15), name
        assert ci[name][1] == pytest.approx(EPOCH_CI[name][1], rel=0.15), name
    assert boot.fraction_unconverged["loss"] < 0.05


def test_prediction_intervals_are_calibrated_small():
    """A small version of benchmarks/bootstrap_calibration.py: 24 tables, 40 replicates, nominal 90%."""
    result = calibration.coverage(24, 40, seed=1)
    print(result)
    assert 0.70 <= result["coverage"] <= 1.0


def test_calibration_benchmark_result_is_within_the_bar():
    """The full run (>= 100 tables) on file: nominal 90% intervals cover the truth 80-97% of the time."""
    result = json.loads((ROOT / "benchmarks" / "results" / "bootstrap_calibration.json").read_text())
    assert result["tables"] >= 100 and result["level"] == 0.9
    assert 0.80 <= result["coverage"] <= 0.97, result["coverage"]


def test_slimpajama_run_level_bootstrap_gives_val_mre_and_h_star_intervals(slimpajama, slimpajama_additive):
    """A small version of benchmarks/slimpajama_bootstrap.py (all 8 targets in one call, 6 replicates)."""
    train, val = slimpajama.query("model_size <= 1.3e9"), slimpajama.query("model_size > 1.3e9")
    boot = mj.bootstrap(
        train,
        "additive",
        n_replicates=6,
        full_fit=slimpajama_additive,
        search=mj.Search(32, ((2, 20, 1.0), (1, 40, 1.0))),
    )
    assert boot.coordinates.shape[:2] == (6, 8) and np.isfinite(boot.objective).all()
    mre = boot.mre_interval(val)
    assert len(mre) == 8 and np.all(mre["lo"] <= mre["hi"]) and np.all(mre["lo"] > 0)
    domains = ["arxiv", "book", "c4", "github", "commoncrawl", "stackexchange", "wikipedia"]
    h = boot.mixture_interval(7e9, 1.5e11, targets=[f"{d}_loss" for d in domains])
    print(mre, h, sep="\n")
    assert np.all(h["lo"] <= h["hi"]) and h["h_star"].sum() == pytest.approx(1.0)


def test_slimpajama_bootstrap_benchmark_results_on_file():
    """benchmarks/slimpajama_bootstrap.py: intervals on val MRE and h*_avg for additive (and joint when run)."""
    files = sorted((ROOT / "benchmarks" / "results").glob("slimpajama_bootstrap_*.json"))
    assert files, "run benchmarks/slimpajama_bootstrap.py"
    for path in files:
        out = json.loads(path.read_text())
        assert out["replicates"] >= 100 and len(out["targets"]) == 8
        for r in out["targets"]:
            assert r["val_mre_lo"] <= r["val_mre"] <= r["val_mre_hi"], r
        assert sum(r["h_star"] for r in out["h_star_avg_percent"]) == pytest.approx(100.0)
        assert all(r["lo"] <= r["h_star"] + 1e-6 and r["h_star"] <= r["hi"] + 1e-6 for r in out["h_star_avg_percent"])
