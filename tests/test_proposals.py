"""Sequential proposals: which runs most reduce the variance of h* (or of its loss) per unit of cost, under the Laplace
ensemble around a fit or a bootstrap's replicates."""

import warnings

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax.simulate import design, random_mixtures, simulate

LIGHT = mj.Search(128, ((4, 30, 1.0), (2, 60, 1.0)), warm_starts=1)
BUDGET = (3e9, 6e10)
#: an additive law with k = 3 (E, A, alpha, B, beta, C_i, gamma_i in law coordinates)
TRUTH = np.array([1.8, np.log(170.0), 0.3, np.log(470.0), 0.3, np.log(2.0), np.log(1.5), np.log(1.2), 0.3, 0.6, 0.45])


def _table(n_mixtures: int, seed: int = 1):
    frame = design(random_mixtures(n_mixtures, 3, min_weight=0.05, seed=seed), [1e8, 3e8], [2e9, 6e9])
    h = frame[["weight_0", "weight_1", "weight_2"]].to_numpy()
    for t in range(2):
        frame[f"loss_{t}"] = simulate("additive", TRUTH, frame["N"], frame["D"], h, noise=3e-3, seed=t)
    return mj.load_runs(frame, weights="weight_*", N="N", D="D", targets="loss_*")


@pytest.fixture(scope="module")
def table():
    return _table(12)


@pytest.fixture(scope="module")
def boot(table):
    full = mj.fit(table, "additive")
    return mj.bootstrap(table, "additive", n_replicates=30, full_fit=full, search=LIGHT)


@pytest.fixture(scope="module")
def proposed(table, boot):
    return mj.propose_runs(table, boot, budget=BUDGET, n=4, candidates=300)


def test_proposals_lie_in_the_bounds_reduce_the_variance_and_are_not_copies(table, proposed):
    h = proposed[["weight_0", "weight_1", "weight_2"]].to_numpy()
    assert len(proposed) == 4
    assert np.allclose(h.sum(axis=1), 1.0)
    assert np.all(h >= table.h.min(axis=0) - 1e-9) and np.all(h <= table.h.max(axis=0) + 1e-9)
    attrs = proposed.attrs
    assert 0 < attrs["variance_after"] < attrs["variance_before"]
    assert np.all(proposed["variance_reduction"] > 0)
    assert np.isclose(
        proposed["variance_reduction"].sum(), 1 - attrs["variance_after"] / attrs["variance_before"], rtol=1e-9
    )
    assert np.allclose(proposed["score"], proposed["variance_reduction"] / proposed["cost"])
    assert np.allclose(proposed["cost"], 6 * proposed["N"] * proposed["D"])
    for a in range(4):
        for b in range(a):
            same_scale = proposed["N"][a] == proposed["N"][b] and proposed["D"][a] == proposed["D"][b]
            assert not same_scale or np.linalg.norm(h[a] - h[b]) >= attrs["radius"]
    assert all(text.startswith("h*[weight_") and " of loss_" in text for text in proposed["pins_down"])
    assert set(attrs["h_star"]) == {"weight_0", "weight_1", "weight_2"}
    # the default candidates: the table's two sizes at their largest D and at half of it, and one size up
    scales = set(zip(proposed["N"], proposed["D"]))
    assert scales <= {(1e8, 6e9), (3e8, 6e9), (1e8, 3e9), (3e8, 3e9), (9e8, 1.8e10)}


def test_the_first_pick_removes_the_ensemble_kalman_variance(table, boot):
    """For one run the variance removed is tr(C_qf (C_ff + Σ)⁻¹ C_fq), computed here from the replicates directly."""
    first = mj.propose_runs(table, boot, budget=BUDGET, n=1, candidates=200, seed=3)
    fit = boot.fit
    point = mj.optimal_mixture(fit, N=BUDGET[0], D=BUDGET[1], seed=3).h[0, -1]
    h_reps, _, _ = mj.mixture.replicate_mixtures(fit, boot.coordinates, N=BUDGET[0], D=BUDGET[1], seed=3, warm=point)
    row = first.iloc[[0]]
    f = np.stack([np.asarray(mj.FitResult.predict(_with(fit, c), row)).ravel() for c in boot.coordinates])  # (R, T)
    residual = table.losses - fit.predict(table).to_numpy()
    noise = np.diag((residual**2).mean(axis=0))
    c = np.cov(np.concatenate([h_reps, f], axis=1), rowvar=False)
    c_qf, c_ff = c[:3, 3:], c[3:, 3:]
    removed = np.trace(c_qf @ np.linalg.solve(c_ff + noise, c_qf.T))
    assert np.isclose(first.attrs["variance_before"], np.trace(c[:3, :3]), rtol=1e-9)
    assert np.isclose(first["variance_reduction"][0] * first.attrs["variance_before"], removed, rtol=1e-6)
    assert np.isclose(first.attrs["variance_after"], first.attrs["variance_before"] - removed, rtol=1e-6)


def _with(fit, coordinates):
    import dataclasses

    return dataclasses.replace(fit, coordinates=np.asarray(coordinates))


def test_a_repeated_point_is_not_proposed_twice_and_cost_steers_the_scale(table, boot):
    frame = pd.DataFrame(
        {"weight_0": [0.5] * 6 + [0.2, 0.3], "weight_1": [0.25] * 6 + [0.5, 0.3], "weight_2": [0.25] * 6 + [0.3, 0.4]}
    )
    frame["N"], frame["D"] = 3e8, 6e9
    proposed = mj.propose_runs(table, boot, budget=BUDGET, n=3, candidates=frame)
    rows = [tuple(r) for r in proposed[["weight_0", "weight_1", "weight_2"]].to_numpy().round(12)]
    assert len(set(rows)) == 3
    big = mj.propose_runs(table, boot, budget=BUDGET, n=4, candidates=200, cost=lambda n, d: np.where(n > 5e8, 1e30, 1))
    assert np.all(big["N"] < 5e8)
    # the size up, 3x the largest size: at D scaled alike for h*, at the same D for the loss at h*
    size_up = dict(budget=BUDGET, n=2, candidates=200, cost=lambda n, d: np.where(n > 5e8, 1.0, 1e30))
    assert set(zip(*mj.propose_runs(table, boot, **size_up)[["N", "D"]].to_numpy().T)) == {(9e8, 1.8e10)}
    loss = mj.propose_runs(table, boot, criterion="loss", **size_up)
    assert set(zip(*loss[["N", "D"]].to_numpy().T)) == {(9e8, 6e9)}
    # h*'s shorter runs: half the largest D (a quarter, 1.5e9, is below the table's shortest D, 2e9, and not offered)
    short = dict(budget=BUDGET, n=4, candidates=200, cost=lambda n, d: np.where(d < 6e9, 1.0, 1e30))
    assert set(mj.propose_runs(table, boot, **short)["D"]) == {3e9}


def test_the_loss_criterion_pins_down_the_loss_at_h_star(table, boot):
    proposed = mj.propose_runs(table, boot, budget=BUDGET, n=2, candidates=200, criterion="loss", cost="runs")
    assert np.all(proposed["cost"] == 1.0)
    assert proposed.attrs["criterion"] == "loss"
    forced = "one size up (too few model sizes: see the warning); "
    reasons = [text.removeprefix(forced) for text in proposed["pins_down"]]
    assert all(text.startswith("loss at h* sd") for text in reasons)
    assert proposed.attrs["variance_after"] < proposed.attrs["variance_before"]
    # the loss criterion's variance is the ensemble's variance of the loss at h*, reported as its sd
    assert proposed.attrs["loss_at_h_star_sd"] ** 2 == pytest.approx(proposed.attrs["variance_before"], rel=1e-9)


def test_two_model_sizes_are_warned_about_and_the_loss_criterion_trains_a_third(table, boot):
    two_sizes = r"has 2 model sizes \(1e\+08, 3e\+08\).*sd of the loss at N\* = 3e\+09 can be far too small"
    with pytest.warns(mj.MixlawWarning, match=two_sizes + r"; train a third size \(the batch starts with"):
        loss = mj.propose_runs(table, boot, budget=BUDGET, n=2, candidates=200, criterion="loss", cost="runs")
    assert loss["N"][0] == 9e8 and loss["pins_down"][0].startswith("one size up (too few model sizes")
    assert not loss["pins_down"][1].startswith("one size up")
    with pytest.warns(mj.MixlawWarning, match=two_sizes + "; train a third size$"):  # h*: a warning only
        mj.propose_runs(table, boot, budget=BUDGET, n=1, candidates=50)
    frame = design(random_mixtures(12, 3, min_weight=0.05, seed=1), [1e8, 3e8, 9e8], [2e9, 6e9])
    h = frame[["weight_0", "weight_1", "weight_2"]].to_numpy()
    frame["loss_0"] = simulate("additive", TRUTH, frame["N"], frame["D"], h, noise=3e-3, seed=0)
    three = mj.load_runs(frame, weights="weight_*", N="N", D="D", targets="loss_0")
    with warnings.catch_warnings():
        warnings.simplefilter("error", mj.MixlawWarning)
        mj.propose_runs(three, mj.fit(three, "additive", search=LIGHT), budget=BUDGET, n=1, criterion="loss")


def test_a_domain_at_its_bound_keeps_the_uncertainty_of_which_side_h_star_lies(table, boot):
    """At a bound the delta method sees no spread of h*_i; the censored distance from the bound does: about half the
    unconstrained sd where the bound cuts just below the unconstrained h*, nothing where it cuts far below (the
    bound clearly holds), and the first run is then chosen to pin it down."""
    free = mj.propose_runs(table, boot.fit, budget=BUDGET, n=1, candidates=100).attrs
    h = np.array(list(free["h_star"].values()))
    i = int(np.argmax(h))
    domain = f"weight_{i}"
    sd = {}
    for gap in (0.005, 0.05, 0.25):
        bounds = np.array(boot.fit.weight_range, float)
        bounds[i, 1] = h[i] - gap
        out = mj.propose_runs(table, boot.fit, budget=BUDGET, n=1, candidates=100, weight_bounds=bounds)
        assert out.attrs["h_star"][domain] == pytest.approx(h[i] - gap, abs=1e-6)
        sd[gap] = out.attrs["h_star_sd"][domain]
        if gap == 0.005:
            assert out["pins_down"][0].startswith(f"h*[{domain}] off its upper bound sd")
    assert 0.3 * free["h_star_sd"][domain] < sd[0.005] < 0.8 * free["h_star_sd"][domain]
    assert sd[0.005] > sd[0.05] and sd[0.25] < 1e-3 * sd[0.005]


def test_bad_requests_are_named(table, boot):
    with pytest.raises(mj.MixlawError, match=r"n = 500 runs asked for, but there are only 200 candidates"):
        mj.propose_runs(table, boot, budget=BUDGET, n=500, candidates=200)  # 40 mixtures x 5 scales
    with pytest.raises(mj.MixlawError, match="far enough apart"):
        mj.propose_runs(table, boot, budget=BUDGET, n=200, candidates=200)
    outside = pd.DataFrame({"weight_0": [0.98], "weight_1": [0.01], "weight_2": [0.01], "N": [1e8], "D": [2e9]})
    with pytest.raises(mj.MixlawError, match=r"candidate row 0: weight_0 = 0\.98 lies outside"):
        mj.propose_runs(table, boot, budget=BUDGET, n=1, candidates=outside)
    with pytest.raises(mj.MixlawError, match="budget must be"):
        mj.propose_runs(table, boot, n=1, candidates=50)
    with pytest.raises(mj.MixlawError, match="criterion"):
        mj.propose_runs(table, boot, budget=BUDGET, criterion="entropy")
    with pytest.raises(mj.MixlawError, match="cost"):
        mj.propose_runs(table, boot, budget=BUDGET, candidates=50, cost="dollars")
    with pytest.warns(mj.MixlawWarning, match="within the table's scales"):
        mj.propose_runs(table, boot, budget=(1e8, 2e9), n=1, candidates=50)
    with pytest.warns(mj.MixlawWarning) as caught:  # N* beyond the table is an extrapolation, even at its largest D
        mj.propose_runs(table, boot, budget=(3e9, 6e9), n=1, candidates=50)
    assert [str(w.message) for w in caught if "within the table's scales" in str(w.message)] == []
    with pytest.raises(mj.MixlawError, match="another table"):
        mj.propose_runs(_table(12, seed=2), boot, budget=BUDGET, n=1, candidates=50)


def test_a_table_with_too_few_rows_for_the_law_is_refused():
    tiny = _table(2)
    with pytest.raises(mj.MixlawError, match="too few to say how uncertain the law is"):
        mj.propose_runs(tiny, "additive", budget=BUDGET)
    with pytest.raises(mj.MixlawError, match="no mixture"):
        mj.propose_runs(_table(12), "chinchilla", budget=BUDGET)


def test_a_fit_gets_the_laplace_ensemble_whose_spread_matches_the_bootstraps(table, boot):
    """A FitResult of the table: the ensemble is 2 P sigma points per objective target, deterministic, and its h* sd
    is a Bayesian bootstrap's within a factor of two (two estimates of one uncertainty: on the design benchmark's
    tables they agree to ~1.5x); a fit of another table is refused."""
    proposed = mj.propose_runs(table, boot.fit, budget=BUDGET, n=2, candidates=100)
    attrs = proposed.attrs
    assert attrs["ensemble"] == "laplace" and attrs["resample"] is None
    # 2 sigma points per free coordinate: loss_0's offset E sits at its lower bound 0 and stays there
    assert boot.fit.coordinates[0, 0] == pytest.approx(0.0, abs=1e-6) and boot.fit.coordinates[1, 0] > 0.1
    assert attrs["members"] == 2 * (2 * mj.get_law("additive").n_params(3) - 1)
    assert 0 < attrs["variance_after"] < attrs["variance_before"]
    bayesian = mj.bootstrap(table, "additive", n_replicates=40, full_fit=boot.fit, search=LIGHT, resample="bayesian")
    from_boot = mj.propose_runs(table, bayesian, budget=BUDGET, n=1, candidates=100).attrs
    assert attrs["h_star"] == pytest.approx(from_boot["h_star"])  # the same point fit behind both
    ratio = np.array([attrs["h_star_sd"][d] / from_boot["h_star_sd"][d] for d in attrs["h_star"]])
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    again = mj.propose_runs(table, boot.fit, budget=BUDGET, n=2, candidates=100)
    pd.testing.assert_frame_equal(proposed, again)
    with pytest.raises(mj.MixlawError, match="another table"):
        mj.propose_runs(_table(12, seed=2), boot.fit, budget=BUDGET, n=2, candidates=100)
