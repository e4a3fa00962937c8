"""repetition_aware(law): mixture laws at each domain's effective tokens, plus an overfitting penalty."""

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from benchmarks.common import objective_at
from mixlaw_jax.laws import Inputs
from mixlaw_jax.laws.repetition import effective_inputs, lost_tokens
from mixlaw_jax.simulate import random_mixtures

RHO, C_O, NU, KAPPA = 1 / 15.4, np.log(3.2e-7), 1.5, 0.7
ADDITIVE_K3 = [1.8, np.log(170.0), 0.3, np.log(470.0), 0.3, np.log(2.0), np.log(1.5), np.log(1.2), 0.3, 0.6, 0.45]


def _random_inputs(k: int, rows: int, seed: int, limited: bool):
    rng = np.random.default_rng(seed)
    h = random_mixtures(rows, k, min_weight=0.0, seed=seed)
    h[rng.random((rows, k)) < 0.1] = 0.0
    h[h.sum(axis=1) == 0, 0] = 1.0
    h /= h.sum(axis=1, keepdims=True)
    n, d = 10 ** rng.uniform(7, 10, rows), 10 ** rng.uniform(9, 12, rows)
    u = h * d[:, None] * (rng.uniform(1, 50, (rows, k)) if limited else 1.0)  # U_i >= h_i D: no repeat
    u[rng.random((rows, k)) < 0.3] = np.inf
    u[u == 0] = 1e6  # a pool for a domain the mixture leaves out
    return n, d, h, u


@pytest.mark.parametrize("base", ["additive", "joint", "full", "simple"])
def test_without_repeats_the_law_is_the_base_law_exactly(base):
    law, rep = mj.get_law(base), mj.repetition_aware(base)
    k = 4
    rng = np.random.default_rng(0)
    for seed in range(3):
        theta = rng.uniform(*np.array([p.init for p in law.params for _ in range(p.size(k))]).T)
        extra = np.array([RHO, C_O, NU, KAPPA])
        n, d, h, u = _random_inputs(k, 500, seed, limited=True)
        x = Inputs.from_arrays(n, d, h, u)
        base_loss = np.asarray(law.predict(law.unflatten(theta, k), x))
        rep_loss = np.asarray(rep.predict(rep.unflatten(np.concatenate([theta, extra]), k), x))
        finite = np.isfinite(base_loss)
        assert finite.mean() > 0.5
        assert np.array_equal(rep_loss[finite], base_loss[finite])  # bit for bit, not only to 1e-12
        unlimited = Inputs.from_arrays(n, d, h, np.full_like(u, np.inf))
        assert np.array_equal(
            np.asarray(rep.predict(rep.unflatten(np.concatenate([theta, extra]), k), unlimited))[finite],
            base_loss[finite],
        )


def test_effective_tokens_follow_muennighoff_per_domain():
    h = np.array([[0.5, 0.3, 0.2]])
    d, u = 1e11, np.array([[2e9, 1e11, np.inf]])  # epochs 25, 0.3, 0
    x = Inputs.from_arrays(np.array([1e9]), np.array([d]), h, u)
    effective, log_e, repeated = effective_inputs(x, RHO)
    tokens = np.exp(np.asarray(effective.log_d))[:, None] * np.asarray(effective.h)
    r_star = 1 / RHO
    expected_0 = 2e9 * (1 + r_star * (1 - np.exp(-(25 - 1) / r_star)))  # Muennighoff et al.'s D'
    assert tokens[0, 0] == pytest.approx(expected_0, rel=1e-12)
    assert tokens[0, 1:] == pytest.approx(h[0, 1:] * d, rel=1e-12)  # one epoch or none: every token counts
    assert np.asarray(effective.h).sum() == pytest.approx(1.0, abs=1e-15)
    assert np.asarray(repeated).tolist() == [[True, False, False]]
    assert np.exp(np.asarray(effective.log_h)) == pytest.approx(np.asarray(effective.h), rel=1e-12)
    # g's series and closed form agree where they meet, and rho = 0 loses nothing
    x_small = np.array([0.999e-4, 1.001e-4]) / 0.5
    assert np.allclose(lost_tokens(x_small, 0.5), x_small - (1 - np.exp(-0.5 * x_small)) / 0.5, rtol=1e-9)
    assert float(lost_tokens(np.array(30.0), 0.0)) == 0.0


def test_the_law_is_c1_at_one_epoch_and_rises_past_a_frontier():
    rep = mj.repetition_aware("additive")
    theta = np.concatenate([ADDITIVE_K3, [RHO, C_O, NU, KAPPA]])
    params = rep.unflatten(theta, 3)

    def loss(d, u0=2e9, h0=0.5, n=1e9):
        h = np.array([[h0, 0.3, 1 - 0.3 - h0]])
        return float(
            rep.predict(params, Inputs.from_arrays(np.array([n]), np.array([d]), h, np.array([[u0, 1e30, 1e30]])))[0]
        )

    d1 = 2e9 / 0.5  # e_0 = 1
    for eps in (1e-4, 1e-5):
        left = (loss(d1) - loss(d1 * (1 - eps))) / (d1 * eps)
        right = (loss(d1 * (1 + eps)) - loss(d1)) / (d1 * eps)
        assert right == pytest.approx(left, rel=20 * eps)
    # in h_0 at fixed D past one epoch: more of the scarce domain first helps, then hurts
    curve = [loss(1e11, h0=w) for w in np.linspace(0.02, 0.68, 34)]
    best = int(np.argmin(curve))
    assert 0 < best < len(curve) - 1


def _truth_table(seed: int, noise: float = 1e-3):
    rep = mj.repetition_aware("additive")
    theta = np.concatenate([ADDITIVE_K3, [RHO, C_O, NU, KAPPA]])
    h = random_mixtures(16, 3, min_weight=0.05, seed=seed)
    rows = [(w, n, d) for w in h for n in (1e8, 3e8) for d in (2e9, 8e9, 3.2e10)]
    hh = np.array([r[0] for r in rows])
    n = np.array([r[1] for r in rows])
    d = np.array([r[2] for r in rows])
    u = np.array([1e9, 1e10, np.inf])  # domain 0 repeats up to ~22 epochs, domain 1 up to ~2
    x = Inputs.from_arrays(n, d, hh, np.broadcast_to(u, hh.shape))
    clean = np.asarray(rep.predict(rep.unflatten(theta, 3), x))
    loss = clean * (1 + noise * np.random.default_rng(seed).standard_normal(len(clean)))
    frame = pd.DataFrame(hh, columns=["w_a", "w_b", "w_c"]).assign(N=n, D=d, x_loss=loss)
    spec = {"w_a": 1e9, "w_b": 1e10, "w_c": None}
    return mj.load_runs(frame, weights="w_*", N="N", D="D", targets="x_loss", unique_tokens=spec), theta


def test_a_fit_reaches_the_objective_of_a_known_truth():
    runs, theta = _truth_table(seed=4)
    fit = mj.fit(runs, "additive_repetition", parameter_bounds=None)
    assert fit.objective[0] <= objective_at("additive_repetition", theta, runs) * (1 + 1e-6)
    predicted = fit.predict(runs)["x_loss"].to_numpy()
    assert np.max(np.abs(predicted / runs.losses[:, 0] - 1)) < 0.01
    assert fit.params["x_loss"]["rho"] >= 0


def test_bad_uses_are_named():
    with pytest.raises(mj.MixlawError, match="uses D and h"):
        mj.repetition_aware("chinchilla")
    with pytest.raises(mj.MixlawError, match="uses D and h"):
        mj.repetition_aware("additive_mixture")
    runs, _ = _truth_table(seed=1)
    plain = mj.load_runs(runs.frame, weights="w_*", N="N", D="D", targets="x_loss")
    with pytest.raises(mj.MixlawError, match="unique_tokens"):
        mj.fit(plain, "additive_repetition")


def _truth_fit():
    """A FitResult holding the repetition-aware truth itself (no fitting), from the table's own fit shape."""
    import dataclasses
    import warnings

    runs, theta = _truth_table(seed=4)
    with warnings.catch_warnings():  # a two-stage shell: only its shape is used
        warnings.simplefilter("ignore", mj.MixlawWarning)
        shell = mj.fit(runs, "additive_repetition", parameter_bounds=None, search=mj.Search(8, ((2, 5),)))
    return dataclasses.replace(shell, coordinates=theta[None], weight_range=np.array([[0.0, 1.0]] * 3))


@pytest.fixture(scope="module")
def truth_fit():
    return _truth_fit()


def test_h_star_under_limits_matches_a_dense_grid_of_the_true_law_and_reports_epochs(tmp_path, truth_fit):
    fit = truth_fit
    law = mj.get_law("additive_repetition")
    pools = {"w_a": 1e9, "w_b": 1e10}
    n, d = 1e9, 1e11
    step = 0.0025
    a, b = np.meshgrid(np.arange(0, 1 + step / 2, step), np.arange(0, 1 + step / 2, step), indexing="ij")
    keep = a + b <= 1 + 1e-12
    grid = np.stack([a[keep], b[keep], np.clip(1 - a[keep] - b[keep], 0, 1)], axis=1)
    u = np.broadcast_to([1e9, 1e10, np.inf], grid.shape)
    x = Inputs.from_arrays(np.full(len(grid), n), np.full(len(grid), d), grid, u)
    on_grid = np.asarray(law.predict(law.unflatten(fit.coordinates[0], 3), x))
    best = grid[np.argmin(on_grid)]
    result = mj.optimal_mixture(fit, N=n, D=d, weight_bounds="simplex", token_budget=pools)
    h = result.h[0, -1]
    assert np.abs(h - best).max() <= 0.01
    assert result.objective[0, -1] <= on_grid.min() + 1e-12
    epochs = result.epochs[0, -1]
    assert epochs[0] == pytest.approx(h[0] * d / 1e9) and epochs[2] == 0.0
    assert epochs[0] > 1.0  # the scarce domain is repeated at h*, and priced, not capped at one epoch
    # without limits the same law is the base law: h* moves onto the scarce domain
    free = mj.optimal_mixture(fit, N=n, D=d, weight_bounds="simplex", token_budget={"w_a": np.inf})
    assert free.h[0, -1][0] > h[0] + 0.05 and free.objective[0, -1] < result.objective[0, -1]
    assert free.unlimited_h is None and free.limit_cost is None  # no finite pool: nothing to compare
    assert np.allclose(result.unlimited_h, free.h, atol=1e-6)
    assert np.allclose(result.unlimited_objective, free.objective, rtol=1e-12)
    assert np.array_equal(result.unlimited_n, result.n) and np.array_equal(result.unlimited_d, result.d)
    assert result.limit_cost[0, -1] == pytest.approx(result.objective[0, -1] - free.objective[0, -1])
    assert result.limit_cost[0, -1] > 0.05
    result.save(tmp_path / "m.json")
    back = mj.load_mixture(tmp_path / "m.json")
    assert np.array_equal(back.unlimited_h, result.unlimited_h) and np.array_equal(back.limit_cost, result.limit_cost)
    with pytest.raises(mj.MixlawError, match="reads the unique tokens per domain"):
        mj.optimal_mixture(fit, N=n, D=d)


def test_the_command_prices_repeats_and_prints_epochs_and_the_cost(tmp_path, capsys, truth_fit):
    from mixlaw_jax.cli import main

    truth_fit.save(tmp_path / "fit.json")
    args = ["optimize", str(tmp_path / "fit.json"), "--N", "1e9", "--D", "1e11", "--weight-bounds", "simplex"]
    assert main([*args, "--unique-tokens", "w_a=1e9,w_b=1e10"]) == 0
    out = capsys.readouterr().out
    assert "the data limits cost" in out and "epochs)" in out
    assert main(args) == 2 and "reads the unique tokens per domain" in capsys.readouterr().err


def test_a_max_epochs_cap_bounds_the_priced_optimum(truth_fit):
    n, d = 1e9, 1e11
    limits = mj.DataLimits({"w_a": 1e9, "w_b": 1e10}, max_epochs=3.0)
    result = mj.optimal_mixture(truth_fit, N=n, D=d, weight_bounds="simplex", token_budget=limits)
    h, epochs = result.h[0, -1], result.epochs[0, -1]
    # without the cap h* repeats w_a 4.8 and w_b 6.3 times (README); the cap holds both at 3 epochs
    assert result.upper[0, -1, :2] == pytest.approx([3 * 1e9 / d, 3 * 1e10 / d], rel=1e-12)
    assert epochs[:2] == pytest.approx([3.0, 3.0], abs=1e-6) and epochs[2] == 0.0
    assert list(result.active[0, -1]) == ["upper", "upper", ""]
    assert result.settings["max_epochs"] == 3.0 and result.settings["token_budget"] == {"w_a": 1e9, "w_b": 1e10}
    assert h.sum() == pytest.approx(1.0, abs=1e-12)
    # the law still prices the pools: the same caps as plain weight bounds on the law without pools cost more
    assert result.limit_cost[0, -1] > 0
    assert np.isfinite(result.unlimited_objective).all()


def test_a_budget_the_pools_cannot_supply_even_at_max_epochs_is_an_error(truth_fit):
    every = mj.DataLimits({"w_a": 1e9, "w_b": 1e10, "w_c": 2e10}, max_epochs=10)
    with pytest.raises(mj.MixlawError) as err:  # caps 0.01 + 0.1 + 0.2 = 0.31 of D = 1e12
        mj.optimal_mixture(truth_fit, N=1e9, D=1e12, weight_bounds="simplex", token_budget=every)
    message = str(err.value)
    assert "at D = 1e+12" in message and "upper bounds sum to 0.31 < 1" in message
    for name, cap, pool in (("w_a", "0.01", "1e+09"), ("w_b", "0.1", "1e+10"), ("w_c", "0.2", "2e+10")):
        assert f"'{name}' <= {cap} (at most 10 epochs of {pool} unique tokens / D = 1e+12)" in message
    # one budget of several is enough to refuse the call: no clip to the caps
    with pytest.raises(mj.MixlawError, match="at D = 1e"):
        mj.optimal_mixture(truth_fit, N=1e9, D=[1e10, 1e12], weight_bounds="simplex", token_budget=every)
    # a fixed weight above its cap
    with pytest.raises(mj.MixlawError, match=r"'w_a': lower 0.2 \(fixed at 0.2\) > upper 0.02 \(at most 2 epochs"):
        mj.optimal_mixture(
            truth_fit,
            N=1e9,
            D=1e11,
            weight_bounds="simplex",
            fixed={"w_a": 0.2},
            token_budget=mj.DataLimits({"w_a": 1e9}, max_epochs=2),
        )
    with pytest.raises(mj.MixlawError, match="no feasible mixture anywhere on the grid of N"):
        mj.compute_optimal(
            truth_fit, C=6e26, weight_bounds="simplex", token_budget=every, n_starts=2, n_grid=3, refine_rounds=0
        )
    with pytest.raises(mj.MixlawError, match="max_epochs must be > 0"):
        mj.optimal_mixture(truth_fit, N=1e9, D=1e11, token_budget=mj.DataLimits({"w_a": 1e9}, max_epochs=0))


def test_max_epochs_caps_a_law_that_does_not_price_repeats(truth_fit):
    import dataclasses

    plain = dataclasses.replace(truth_fit, law="additive", coordinates=np.array(ADDITIVE_K3)[None])
    pools = {"w_a": 1e9, "w_b": 1e10}
    once = mj.optimal_mixture(plain, N=1e9, D=1e11, weight_bounds="simplex", token_budget=pools)
    twice = mj.optimal_mixture(
        plain, N=1e9, D=1e11, weight_bounds="simplex", token_budget=mj.DataLimits(pools, max_epochs=2)
    )
    assert once.upper[0, -1, :2] == pytest.approx([0.01, 0.1]) and "max_epochs" not in once.settings
    assert twice.upper[0, -1, :2] == pytest.approx([0.02, 0.2]) and twice.settings["max_epochs"] == 2.0
    assert twice.objective[0, -1] <= once.objective[0, -1]
    with pytest.raises(mj.MixlawError, match="does not price repeats.*give max_epochs"):
        mj.optimal_mixture(plain, N=1e9, D=1e11, token_budget=mj.DataLimits(pools))


def test_the_command_caps_epochs_and_names_an_unmeetable_budget(tmp_path, capsys, truth_fit):
    from mixlaw_jax.cli import main

    truth_fit.save(tmp_path / "fit.json")
    args = ["optimize", str(tmp_path / "fit.json"), "--N", "1e9", "--D", "1e11", "--weight-bounds", "simplex"]
    assert main([*args, "--unique-tokens", "w_a=1e9,w_b=1e10", "--max-epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "w_a" in out and "(3 epochs)  (at upper bound)" in out
    assert main([*args, "--unique-tokens", "w_a=1e9,w_b=1e9,w_c=1e9", "--max-epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "upper bounds sum to 0.06 < 1" in err and "'w_c' <= 0.02 (at most 2 epochs of 1e+09 unique tokens" in err
    assert main([*args, "--max-epochs", "2"]) == 2 and "give both" in capsys.readouterr().err


def test_with_repetition_grafts_given_parameters_onto_a_fit_without_repeats(truth_fit):
    import dataclasses

    plain = dataclasses.replace(truth_fit, law="additive", coordinates=np.array(ADDITIVE_K3)[None])
    grafted = plain.with_repetition(rho=RHO, C_o=float(np.exp(C_O)), nu=NU, kappa=KAPPA)
    assert grafted.law == "additive_repetition"
    assert np.allclose(grafted.coordinates, truth_fit.coordinates, rtol=1e-15, atol=0)
    assert grafted.params["x_loss"]["C_o"] == pytest.approx(np.exp(C_O)) and grafted.targets == plain.targets
    with pytest.raises(mj.MixlawError, match=r"rho = -0.1 must lie in the law's range \[0.0, 10.0\]"):
        plain.with_repetition(rho=-0.1, C_o=1e-7, nu=NU, kappa=KAPPA)
    with pytest.raises(mj.MixlawError, match="C_o = 0.0 must lie"):
        plain.with_repetition(rho=RHO, C_o=0.0, nu=NU, kappa=KAPPA)
    with pytest.raises(mj.MixlawError, match="nu must be a number"):
        plain.with_repetition(rho=RHO, C_o=1e-7, nu="1.5", kappa=KAPPA)
    with pytest.raises(mj.MixlawError, match="not U already"):
        truth_fit.with_repetition(rho=RHO, C_o=1e-7, nu=NU, kappa=KAPPA)


def test_the_path_figure_draws_h_star_with_and_without_limits(truth_fit):
    from mixlaw_jax import figures

    d = np.array([1e10, 1e11, 1e12])
    result = mj.optimal_mixture(
        truth_fit, N=1e9, D=d, weight_bounds="simplex", token_budget={"w_a": 1e9, "w_b": 1e10}, n_starts=8
    )
    fig = figures.mixture_path(result, x="D")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlim() == pytest.approx((1e10, 1e12))
    for ax, h in zip(fig.axes, (result.h, result.unlimited_h)):
        first = ax.collections[0].get_paths()[0].vertices  # the band of w_a: 0 .. h*_a at each D
        for dd, h0 in zip(d, h[:, -1, 0]):
            assert np.isclose(first[np.isclose(first[:, 0], dd), 1], h0).any()
    assert "without limits" in fig.axes[1].get_title()
    # the scarce domain's share falls as D grows under limits, not without them
    assert result.h[-1, -1, 0] < result.h[0, -1, 0] - 0.05
    assert result.unlimited_h[-1, -1, 0] > result.h[-1, -1, 0] + 0.05
    with pytest.raises(mj.MixlawError, match="x must be 'compute' or 'D'"):
        figures.mixture_path(result, x="N")


def test_compute_optimal_under_limits_reports_the_unlimited_plan_at_the_same_compute(tmp_path, truth_fit):
    C, pools = 6e20, {"w_a": 1e9, "w_b": 1e10}
    search = dict(weight_bounds="simplex", n_starts=8, n_grid=9, refine_rounds=3)
    limited = mj.compute_optimal(truth_fit, C=C, token_budget=pools, **search)
    free = mj.compute_optimal(truth_fit, C=C, token_budget={"w_a": np.inf}, **search)
    assert free.unlimited_h is None and free.unlimited_n is None and free.limit_cost is None
    # the plan without limits is compute_optimal of the law with every pool unlimited, at the same C
    assert np.allclose(limited.unlimited_n, free.n, rtol=1e-9) and np.allclose(limited.unlimited_d, free.d, rtol=1e-9)
    assert np.allclose(limited.unlimited_h, free.h, atol=1e-6)
    assert np.allclose(limited.unlimited_objective, free.objective, rtol=1e-12)
    assert 6 * limited.unlimited_n * limited.unlimited_d == pytest.approx(np.full((1, 2), C), rel=1e-9)
    # scarce pools: the limited plan repeats them less, spends the compute on a larger model, and pays for it
    h, h_free = limited.h[0, -1], limited.unlimited_h[0, -1]
    assert h[0] < h_free[0] - 0.1 and limited.n[0, -1] > 1.2 * free.n[0, -1]
    assert limited.limit_cost[0, -1] == pytest.approx(limited.objective[0, -1] - free.objective[0, -1])
    assert limited.limit_cost[0, -1] > 0.01
    epochs = limited.epochs[0, -1]
    assert epochs[:2] == pytest.approx(h[:2] * limited.d[0, -1] / np.array([1e9, 1e10])) and epochs[2] == 0.0
    limited.save(tmp_path / "plan.json")
    back = mj.load_mixture(tmp_path / "plan.json")
    assert np.array_equal(back.unlimited_n, limited.unlimited_n) and np.array_equal(back.limit_cost, limited.limit_cost)
