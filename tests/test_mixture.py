"""Optimal mixtures (mixlaw_jax.mixture) on synthetic fits built from chosen law coordinates (no fitting).

Exact checks: a dense simplex grid (step 0.005) for k = 2 and 3, scipy SLSQP from 50 random starts for k = 7,
the closed-form compute-optimal N of the additive law.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

import mixlaw_jax as mj
from mixlaw_jax.mixture import project, target_losses

GRID_STEP = 0.005
BUDGET_N = np.array([1e8, 1e10])
BUDGET_D = 20 * BUDGET_N


# ---------------------------------------------------------------------------------------------- synthetic fits


def make_fit(law, coordinates, k, weight_range=None):
    coordinates = np.atleast_2d(np.asarray(coordinates, float))
    law_obj = mj.get_law(law)
    assert coordinates.shape[1] == law_obj.n_params(k) == len(law_obj.names(k))
    targets = tuple(f"t{j}" for j in range(coordinates.shape[0]))
    weight_range = np.tile([0.0, 1.0], (k, 1)) if weight_range is None else np.asarray(weight_range, float)
    return mj.FitResult(
        law=law,
        k=k,
        targets=targets,
        weight_columns=tuple(f"w{i}" for i in range(k)),
        n_column="N",
        d_column="D",
        weight_range=weight_range,
        coordinates=coordinates,
        objective=np.zeros(len(targets)),
        diagnostics={t: {} for t in targets},
        settings={},
        provenance={},
    )


def additive(E, A, alpha, B, beta, C, gamma):
    """Coordinates in the order of law.params: E, log A, alpha, log B, beta, log C_i, gamma_i."""
    return np.r_[E, np.log(A), alpha, np.log(B), beta, np.log(C), gamma]


def joint(E, C, gamma, A_pure, tau_A, alpha, B_pure, tau_B, beta):
    """E, log C_i, gamma_i, log A_pure_i, tau_A, alpha, log B_pure_i, tau_B, beta (power-mean coordinates)."""
    return np.r_[E, np.log(C), gamma, np.log(A_pure), tau_A, alpha, np.log(B_pure), tau_B, beta]


# gamma_i < 1 and |tau| < 1: every objective is strictly convex on the simplex, with an interior optimum
COORDS = {
    ("additive", 2): [
        additive(1.5, 400.0, 0.3, 2000.0, 0.3, [1.0, 2.0], [0.4, 0.6]),
        additive(1.8, 300.0, 0.32, 2500.0, 0.28, [1.5, 1.0], [0.3, 0.5]),
    ],
    ("additive", 3): [
        additive(1.5, 400.0, 0.3, 2000.0, 0.3, [1.0, 2.0, 1.5], [0.3, 0.5, 0.4]),
        additive(1.8, 300.0, 0.32, 2500.0, 0.28, [2.0, 1.0, 1.5], [0.6, 0.5, 0.4]),
    ],
    ("joint", 2): [
        joint(1.6, [0.3, 0.6], [0.3, 0.5], [250.0, 500.0], 0.5, 0.3, [3000.0, 1200.0], -0.3, 0.3),
        joint(1.9, [0.5, 0.4], [0.45, 0.35], [400.0, 250.0], -0.4, 0.32, [1500.0, 2500.0], 0.4, 0.28),
    ],
    ("joint", 3): [
        joint(
            1.6, [0.3, 0.6, 0.45], [0.3, 0.5, 0.4], [250.0, 500.0, 300.0], 0.5, 0.3, [3000.0, 1200.0, 2000.0], -0.3, 0.3
        ),
        joint(
            1.9,
            [0.5, 0.4, 0.3],
            [0.45, 0.35, 0.5],
            [400.0, 250.0, 300.0],
            -0.4,
            0.32,
            [1500.0, 2500.0, 1800.0],
            0.4,
            0.28,
        ),
    ],
}
# bounds that cut the unconstrained optima (all multiples of the grid step, so the grid has points on the faces)
BOUNDS = {2: {"w0": (0.2, 0.45)}, 3: {"w0": (0.15, 0.6), "w1": (0.0, 0.5), "w2": (0.2, 1.0)}}
TARGET_WEIGHTS = [0.3, 0.7]


def simplex_grid(k, step=GRID_STEP):
    m = int(round(1 / step))
    if k == 2:
        a = np.arange(m + 1) / m
        return np.stack([a, 1 - a], axis=1)
    i, j = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
    keep = i + j <= m
    i, j = i[keep], j[keep]
    return np.stack([i, j, m - i - j], axis=1) / m


def grid_optimum(fit, n, d, weights, lo=None, hi=None):
    """Best grid point of sum_t weights_t L_t(n, d, h) over the simplex grid inside [lo, hi]."""
    h = simplex_grid(fit.k)
    if lo is not None:
        inside = np.all((h >= lo - 1e-12) & (h <= hi + 1e-12), axis=1)
        h = h[inside]
    values = fit.predict_arrays(np.full(len(h), n), np.full(len(h), d), h) @ weights
    j = np.argmin(values)
    return h[j], values[j], values


def objective_weights(result):
    return np.concatenate([np.eye(len(result.targets)), result.target_weights[None]], axis=0)


# ------------------------------------------------------------------------------------------- dense grid checks


@pytest.mark.parametrize("constrained", [False, True], ids=["simplex", "bounds"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("law", ["additive", "joint"])
def test_matches_a_dense_simplex_grid(law, k, constrained):
    fit = make_fit(law, COORDS[law, k], k)
    bounds = BOUNDS[k] if constrained else "simplex"
    result = mj.optimal_mixture(
        fit, N=BUDGET_N, D=BUDGET_D, weight_bounds=bounds, target_weights=TARGET_WEIGHTS, n_starts=16
    )
    assert result.objectives == ("t0", "t1", "weighted")
    assert result.h.shape == (2, 3, k) and result.loss.shape == (2, 3, 2)
    np.testing.assert_allclose(result.target_weights, TARGET_WEIGHTS)
    W = objective_weights(result)
    for b, (n, d) in enumerate(zip(BUDGET_N, BUDGET_D)):
        for o in range(3):
            h = result.h[b, o]
            lo, hi = result.lower[b, o], result.upper[b, o]
            assert np.all(h >= lo) and np.all(h <= hi) and abs(h.sum() - 1) < 1e-14
            h_grid, v_grid, _ = grid_optimum(fit, n, d, W[o], lo, hi)
            # the reported losses are the law's at h*, and no grid point beats h* by more than 1e-6
            np.testing.assert_allclose(result.loss[b, o], fit.predict_arrays([n], [d], h[None])[0], rtol=1e-13)
            assert result.objective[b, o] <= v_grid + 1e-6, (b, o, result.objective[b, o], v_grid)
            assert np.abs(h - h_grid).max() <= 0.01, (b, o, h, h_grid)
            # active bounds are reported, and only those
            for i in range(k):
                expect = "lower" if h[i] - lo[i] <= 1e-6 else "upper" if hi[i] - h[i] <= 1e-6 else ""
                assert result.active[b, o, i] == expect
    if constrained:  # these bounds do bind at the chosen coordinates
        assert (result.active != "").any()
        assert set(np.unique(result.active)) <= {"", "lower", "upper"}
    else:
        assert (result.active == "").all()  # interior optima


def test_additive_optimum_does_not_depend_on_the_budget():
    fit = make_fit("additive", COORDS["additive", 3], 3)
    n = np.geomspace(1e7, 1e11, 6)
    result = mj.optimal_mixture(fit, N=n, D=np.geomspace(1e9, 1e13, 6), weight_bounds="simplex", n_starts=16)
    assert result.h.shape == (6, 3, 3)
    assert np.abs(result.h - result.h[:1]).max() <= 1e-6
    assert np.all(np.diff(result.objective, axis=0) < 0)  # larger budgets, lower loss
    np.testing.assert_array_equal(result.n[:, 0], n)


def test_joint_optimum_moves_smoothly_with_scale():
    fit = make_fit("joint", COORDS["joint", 3], 3)
    n = np.geomspace(1e7, 1e11, 9)
    result = mj.optimal_mixture(fit, N=np.r_[n, 1e40], D=np.r_[20 * n, 1e40], weight_bounds="simplex", n_starts=16)
    path, limit = result.h[:-1], result.h[-1]
    assert result.h.shape == (10, 3, 3)
    for o in range(3):
        h = path[:, o]
        step = np.diff(h, axis=0)
        assert np.abs(h[-1] - h[0]).max() > 0.05  # h* depends on scale
        assert np.abs(step).max() < 0.1  # no jumps along the path
        assert np.abs(np.diff(step, axis=0)).max() <= 0.25 * np.abs(step).max()  # smooth
        if o < 2:
            # per target, each weight moves monotonically toward the large-scale limit
            assert np.all(step * np.sign(h[-1] - h[0]) > 0)
            assert np.all(np.diff(np.abs(h - limit[o]).max(axis=1)) < 0)
    # at large scale the scale terms vanish: h* minimises the mixture term 1 / sum_i C_i h_i^gamma_i
    grid = simplex_grid(3, 0.001)
    mixture_term = 1 / (grid ** [0.3, 0.5, 0.4] @ np.array([0.3, 0.6, 0.45]))
    np.testing.assert_allclose(limit[0], grid[np.argmin(mixture_term)], atol=2e-3)


# ------------------------------------------------------------------------------------------------- constraints


def test_infeasible_constraints_name_the_domains_and_numbers():
    fit = make_fit("additive", COORDS["additive", 3], 3)
    with pytest.raises(mj.MixlawError, match=r"lower bounds sum to 1\.1 > 1: 'w0' >= 0\.6 .*'w1' >= 0\.5"):
        mj.optimal_mixture(fit, N=1e9, D=1e10, weight_bounds={"w0": (0.6, 1.0), "w1": (0.5, 1.0)})
    with pytest.raises(mj.MixlawError, match=r"upper bounds sum to 0\.9 < 1: 'w0' <= 0\.2.*'w1' <= 0\.3.*'w2' <= 0\.4"):
        mj.optimal_mixture(fit, N=1e9, D=1e10, weight_bounds=np.array([[0, 0.2], [0, 0.3], [0, 0.4]]))
    with pytest.raises(mj.MixlawError, match=r"'w0': lower 0\.5 \(fixed at 0\.5\) > upper 0\.1 \(token budget"):
        mj.optimal_mixture(fit, N=1e9, D=1e10, weight_bounds="simplex", fixed={"w0": 0.5}, token_budget={"w0": 1e9})
    with pytest.raises(mj.MixlawError, match=r"'w2': lower 0\.7 .* > upper 0\.2"):
        mj.optimal_mixture(fit, N=1e9, D=1e10, weight_bounds={"w2": (0.7, 0.2)})
    # a token budget that only binds at the larger D: the error names that budget
    with pytest.raises(mj.MixlawError, match=r"at D = 1e\+11.*'w0' <= 0\.01 \(token budget 1e\+09 / D = 1e\+11\)"):
        mj.optimal_mixture(
            fit,
            N=[1e9, 1e9],
            D=[1e10, 1e11],
            weight_bounds={"w1": (0, 0.49), "w2": (0, 0.49)},
            token_budget={"w0": 1e9},
        )


def test_token_budget_caps_and_fixed_domains_are_respected():
    fit = make_fit("additive", COORDS["additive", 3], 3)
    d = np.array([5e9, 1e10])
    capped = mj.optimal_mixture(fit, N=1e9, D=d, weight_bounds="simplex", token_budget={"w1": 5e8}, n_starts=16)
    cap = 5e8 / d  # 0.1, 0.05; unconstrained optima have h_1 ~ 0.6
    np.testing.assert_array_equal(capped.upper[:, :, 1], np.broadcast_to(cap[:, None], (2, 3)))
    assert np.all(capped.h[:, :, 1] <= cap[:, None])
    np.testing.assert_allclose(capped.h[:, 0, 1], cap, atol=1e-12)
    assert np.all(capped.active[:, 0, 1] == "upper")
    W = objective_weights(capped)
    for o in range(3):  # the capped optimum is the grid optimum on the face
        h_grid, v_grid, _ = grid_optimum(fit, 1e9, 5e9, W[o], capped.lower[0, o], capped.upper[0, o])
        assert capped.objective[0, o] <= v_grid + 1e-6
        assert np.abs(capped.h[0, o] - h_grid).max() <= 0.01
    assert capped.settings["token_budget"] == {"w1": 5e8}

    fixed = mj.optimal_mixture(fit, N=[1e9, 1e9], D=1e10, weight_bounds="simplex", fixed={"w2": 0.5}, n_starts=16)
    assert np.all(fixed.h[..., 2] == 0.5) and np.all(fixed.active[..., 2] == "fixed")
    assert np.all(fixed.active[..., :2] == "")
    a = np.linspace(0, 0.5, 50001)  # the rest is optimal on the segment h_0 + h_1 = 0.5
    segment = np.stack([a, 0.5 - a, np.full_like(a, 0.5)], axis=1)
    for o in range(3):
        values = fit.predict_arrays(np.full(len(a), 1e9), np.full(len(a), 1e10), segment) @ objective_weights(fixed)[o]
        assert fixed.objective[0, o] <= values.min() + 1e-9
        assert abs(fixed.h[0, o, 0] - a[np.argmin(values)]) <= 1e-4


def test_data_bounds_are_the_default_and_the_reference_shows_the_gain():
    k = 3
    fit = make_fit("additive", COORDS["additive", 3], k, weight_range=[[0.2, 0.5], [0.1, 0.5], [0.2, 0.6]])
    result = mj.optimal_mixture(fit, N=[1e9, 1e10], D=[1e10, 1e11], n_starts=16)
    assert result.settings["bounds"] == "data" and result.settings["reference"] == "uniform"
    np.testing.assert_array_equal(result.lower[0, 0], [0.2, 0.1, 0.2])
    np.testing.assert_array_equal(result.upper[0, 0], [0.5, 0.5, 0.6])
    np.testing.assert_allclose(result.reference_h, np.full(k, 1 / 3))
    assert np.all(result.gain >= 0) and result.gain[0, 2] > 0
    ref = fit.predict_arrays([1e9], [1e10], result.reference_h[None])[0]
    np.testing.assert_allclose(result.reference_loss[0, 0], ref, rtol=1e-13)
    given = mj.optimal_mixture(
        fit, N=1e9, D=1e10, n_starts=16, reference={"w0": 0.2, "w1": 0.3, "w2": 0.5}, targets=["t1"]
    )
    assert given.objectives == ("t1", "weighted")
    np.testing.assert_allclose(given.reference_h, [0.2, 0.3, 0.5])
    np.testing.assert_allclose(given.h[0, 0], result.h[0, 1], atol=1e-7)
    # a law without N and D (mixing_exp): N, D may be omitted; L = c + k exp(t.h) is minimised at a corner of the box
    mix = make_fit(
        "mixing_exp", [np.r_[1.0, np.log(0.5), 1.0, -1.0, 0.0]], k, weight_range=[[0.1, 0.5], [0.1, 0.5], [0.1, 0.5]]
    )
    corner = mj.optimal_mixture(mix, n_starts=8)
    assert corner.n is None and corner.d is None
    np.testing.assert_allclose(corner.h[0, 0], [0.1, 0.5, 0.4], atol=1e-9)
    assert list(corner.active[0, 0]) == ["lower", "upper", ""]


def test_projection_is_exact():
    rng = np.random.default_rng(0)
    k = 6
    lo = rng.uniform(0, 0.1, (300, k))
    hi = lo + rng.uniform(0.05, 0.6, (300, k))
    v = rng.normal(0, 2, (300, k)) * rng.choice([1e-3, 1, 1e3], (300, 1))
    h = np.asarray(jax.jit(jax.vmap(project))(jnp.asarray(v), jnp.asarray(lo), jnp.asarray(hi)))
    assert np.all(h >= lo) and np.all(h <= hi)
    np.testing.assert_allclose(h.sum(axis=1), 1.0, atol=1e-14)
    # KKT: h_i = clip(v_i - lam, lo_i, hi_i) with one lam per row
    free = (h > lo + 1e-12) & (h < hi - 1e-12)
    lam = np.where(free, v - h, np.nan)
    has = free.any(axis=1)
    lam = np.nanmean(lam[has], axis=1)
    np.testing.assert_allclose(
        np.where(free[has], v[has] - h[has], lam[:, None]), lam[:, None].repeat(k, 1), atol=1e-9 * np.abs(v[has]).max()
    )
    assert np.all(np.where(h[has] <= lo[has] + 1e-12, v[has] - lo[has] <= lam[:, None] + 1e-9, True))
    assert np.all(np.where(h[has] >= hi[has] - 1e-12, v[has] - hi[has] >= lam[:, None] - 1e-9, True))


# ------------------------------------------------------------------------------------------ k = 7 vs SLSQP


def _k7_fit(law):
    rng = np.random.default_rng(7)
    k = 7
    coords = []
    for _ in range(2):
        C, gamma = rng.uniform(0.5, 3, k), rng.uniform(0.2, 0.9, k)
        if law == "additive":
            coords.append(additive(1.8, 400.0, 0.3, 2000.0, 0.3, C, gamma))
        else:
            coords.append(
                joint(
                    1.8,
                    C,
                    gamma,
                    rng.uniform(100, 800, k),
                    rng.uniform(-0.8, 0.8),
                    0.3,
                    rng.uniform(500, 5000, k),
                    rng.uniform(-0.8, 0.8),
                    0.32,
                )
            )
    return make_fit(law, coords, k, weight_range=np.stack([np.full(k, 0.02), rng.uniform(0.25, 0.6, k)], axis=1))


@pytest.mark.parametrize("bounds", ["simplex", "data"])
@pytest.mark.parametrize("law", ["additive", "joint"])
def test_k7_matches_slsqp_from_50_starts(law, bounds):
    fit = _k7_fit(law)
    n, d = 1e9, 2e10
    result = mj.optimal_mixture(fit, N=n, D=d, weight_bounds=bounds)
    lo, hi = result.lower[0, 0], result.upper[0, 0]
    law_obj, coords = mj.get_law(law), jnp.asarray(fit.coordinates)
    rng = np.random.default_rng(1)
    for o, w in enumerate(objective_weights(result)):

        def f(h, w=jnp.asarray(w)):  # noqa: B008 (binds this iteration's weights)
            return jnp.dot(w, target_losses(law_obj, 7, coords, jnp.log(n), jnp.log(d), h))

        value_and_grad = jax.jit(jax.value_and_grad(f))
        best = np.inf
        for _ in range(50):
            h0 = np.clip(rng.dirichlet(np.ones(7)), lo, hi)
            out = minimize(
                lambda h: tuple(np.asarray(v, float) for v in value_and_grad(h)),
                h0,
                jac=True,
                method="SLSQP",
                bounds=list(zip(np.maximum(lo, 1e-12), hi)),
                constraints=[{"type": "eq", "fun": lambda h: h.sum() - 1, "jac": lambda h: np.ones(7)}],
                options={"ftol": 1e-15, "maxiter": 1000},
            )
            feasible = abs(out.x.sum() - 1) < 1e-9 and np.all(out.x >= lo - 1e-9) and np.all(out.x <= hi + 1e-9)
            if feasible and out.fun < best:
                best = out.fun
        assert np.isfinite(best)
        assert abs(result.objective[0, o] - best) <= 1e-7, (result.objectives[o], result.objective[0, o], best)
    if bounds == "data":
        assert (result.active != "").any()


# --------------------------------------------------------------------------------------------- compute optimal


def test_compute_optimal_additive_matches_the_closed_form():
    E, A, alpha, B, beta = 1.7, 400.0, 0.34, 2000.0, 0.28
    fit = make_fit(
        "additive",
        [
            additive(E, A, alpha, B, beta, [1.0, 2.0, 1.5], [0.3, 0.5, 0.4]),
            additive(E, 1.5 * A, alpha, B, 1.1 * beta, [2.0, 1.0, 1.5], [0.6, 0.5, 0.4]),
        ],
        3,
    )
    C = np.array([1e19, 1e21])
    result = mj.compute_optimal(fit, C=C, weight_bounds="simplex", n_starts=8)
    # min_N A/N^alpha + B/D^beta with D = C/(6N): N* = (alpha A / (beta B))^(1/(alpha+beta)) (C/6)^(beta/(alpha+beta))
    n_star = (alpha * A / (beta * B)) ** (1 / (alpha + beta)) * (C / 6) ** (beta / (alpha + beta))
    np.testing.assert_allclose(result.n[:, 0], n_star, rtol=1e-4)
    np.testing.assert_allclose(result.n * result.d * 6, np.broadcast_to(C[:, None], (2, 3)), rtol=1e-12)
    np.testing.assert_array_equal(result.compute, C)
    fixed_scale = mj.optimal_mixture(fit, N=BUDGET_N, D=BUDGET_D, weight_bounds="simplex", n_starts=16)
    np.testing.assert_allclose(result.h, np.broadcast_to(fixed_scale.h[:1], result.h.shape), atol=1e-6)
    assert result.settings["at_edge"] == []


def test_compute_optimal_joint_beats_nearby_splits():
    fit = make_fit("joint", COORDS["joint", 3], 3)
    C = 1e20
    result = mj.compute_optimal(fit, C=C, weight_bounds="simplex", n_starts=8)
    assert np.ptp(result.n[0]) > 0  # each objective has its own split
    # the profile min_h L(N, C / 6N, h) on 29 nearby N (same program shape as compute_optimal's grid stage)
    for o in (0, 2):
        nearby = result.n[0, o] * np.exp(np.linspace(-0.28, 0.28, 29))
        profile = mj.optimal_mixture(fit, N=nearby, D=C / (6 * nearby), weight_bounds="simplex", n_starts=5)
        assert result.objective[0, o] <= profile.objective[:, o].min() + 1e-10
        assert np.argmin(profile.objective[:, o]) == 14  # the chosen N is the profile's minimum
        np.testing.assert_allclose(result.h[0, o], profile.h[14, o], atol=1e-6)
    frame = result.to_frame()
    assert {"C", "N", "D"} <= set(frame.columns) and (frame["C"] == C).all()


# ----------------------------------------------------------------------------------------- results and errors


@pytest.fixture(scope="module")
def small_result():
    fit = make_fit("joint", COORDS["joint", 2], 2)
    return fit, mj.optimal_mixture(
        fit,
        N=BUDGET_N,
        D=BUDGET_D,
        weight_bounds=BOUNDS[2],
        target_weights={"t1": 1.0},
        token_budget={"w1": 1e12},
        n_starts=16,
        seed=3,
    )


def test_json_round_trip_is_identical(small_result, tmp_path):
    _, result = small_result
    path = tmp_path / "mix.json"
    result.save(path)
    payload = json.loads(path.read_text())
    assert payload["kind"] == "mixture" and payload["schema_version"] == 1
    loaded = mj.load_mixture(path)
    for field in (
        "target_weights",
        "n",
        "d",
        "h",
        "loss",
        "objective",
        "reference_h",
        "reference_loss",
        "reference_objective",
        "lower",
        "upper",
        "active",
        "starts_at_best",
    ):
        a, b = getattr(result, field), getattr(loaded, field)
        assert a.shape == b.shape and a.dtype.kind == b.dtype.kind, field
        np.testing.assert_array_equal(a, b, err_msg=field)
    assert loaded.compute is None
    assert (loaded.law, loaded.domains, loaded.targets, loaded.objectives) == (
        result.law,
        result.domains,
        result.targets,
        result.objectives,
    )
    assert loaded.settings == result.settings and loaded.settings["seed"] == 3
    pd.testing.assert_frame_equal(loaded.to_frame(), result.to_frame())
    payload["schema_version"] = 2
    (tmp_path / "v2.json").write_text(json.dumps(payload))
    with pytest.raises(mj.MixlawError, match="schema version 2"):
        mj.load_mixture(tmp_path / "v2.json")
    payload["kind"] = "fit"
    (tmp_path / "fit.json").write_text(json.dumps(payload))
    with pytest.raises(mj.MixlawError, match="not a 'mixture' result"):
        mj.load_mixture(tmp_path / "fit.json")


def test_to_frame_is_tidy(small_result):
    _, result = small_result
    frame = result.to_frame()
    n_budgets, n_obj, k = result.h.shape
    assert len(frame) == n_budgets * n_obj * k
    assert list(frame.columns) == [
        "budget",
        "N",
        "D",
        "objective",
        "domain",
        "h",
        "lower",
        "upper",
        "active",
        "reference_h",
        "loss",
        "reference_loss",
        "gain",
    ]
    sums = frame.groupby(["budget", "objective"])["h"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-14)
    row = frame[(frame.budget == 1) & (frame.objective == "weighted") & (frame.domain == "w1")].iloc[0]
    assert row.h == result.h[1, 2, 1] and row.N == BUDGET_N[1] and row.loss == result.objective[1, 2]
    assert row.gain == pytest.approx(result.reference_objective[1, 2] - result.objective[1, 2])
    # target_weights={"t1": 1}: the weighted objective is target t1
    np.testing.assert_array_equal(result.target_weights, [0.0, 1.0])
    np.testing.assert_allclose(result.h[:, 2], result.h[:, 1], atol=1e-9)
    wide = result.mixture("t0")
    assert list(wide.columns) == ["w0", "w1"] and wide.shape == (2, 2)


def test_bad_input_gives_clear_errors(small_result):
    fit, _ = small_result
    cases = [
        (dict(N=1e9, D=1e10, targets=["t9"]), "unknown target 't9'"),
        (dict(N=1e9, D=1e10, weight_bounds={"w7": (0, 1)}), "unknown domain 'w7'"),
        (dict(N=1e9, D=1e10, fixed={"x": 0.5}), "unknown domain 'x'"),
        (dict(N=-1e9, D=1e10), r"N must be finite and > 0: N\[0\] = -1000000000\.0"),
        (dict(N=[1e9, 2e9], D=[1e10, 2e10, 3e10]), "same length"),
        (dict(N=1e9), "needs D"),
        (dict(N=1e9, D=1e10, weight_bounds=np.zeros((3, 2))), r"shape \(3, 2\); expected \(2, 2\)"),
        (dict(N=1e9, D=1e10, token_budget=[1e9, 1e9, 1e9]), r"token_budget has shape \(3,\); the fit has k = 2"),
        (dict(N=1e9, D=1e10, token_budget={"w0": -5}), "token_budget must be >= 0"),
        (dict(N=1e9, D=1e10, reference=[0.5, 0.6]), "reference must be a mixture"),
        (dict(N=1e9, D=1e10, target_weights=[1.0]), "target_weights has shape"),
        (dict(N=1e9, D=1e10, weight_bounds="box"), "bounds must be"),
        (dict(N=1e9, D=1e10, weight_bounds={"w0": (-0.1, 0.5)}), r"must lie in \[0, 1\]"),
        (dict(N=1e9, D=1e10, n_starts=0), "n_starts"),
    ]
    for kwargs, message in cases:
        with pytest.raises(mj.MixlawError, match=message):
            mj.optimal_mixture(fit, **kwargs)
    with pytest.raises(mj.MixlawError, match="C must be finite and > 0"):
        mj.compute_optimal(fit, C=[1e20, 0.0])
    with pytest.raises(mj.MixlawError, match="unknown objective 'x'"):
        small_result[1].mixture("x")
