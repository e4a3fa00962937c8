"""The mixture-only laws (additive_mixture, Ye et al.'s implicit mixing law, Ge et al.'s BiMix) and the
continual-pretraining critical proportion (Ye et al. 2024, sec. 5)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax.engine.space import make_space
from mixlaw_jax.laws import Inputs
from mixlaw_jax.simulate import random_mixtures, simulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import mixture_only_truth as truth  # noqa: E402

K = 5
rng = np.random.default_rng(3)
H = rng.dirichlet(np.ones(K), 30)
TOKENS = 10 ** rng.uniform(9, 10.5, 30)
X = Inputs.from_arrays(np.ones(30), TOKENS, H)
LIGHT = mj.Search(2048, ((64, 30), (8, 100)))


def coordinates(law, params: dict) -> np.ndarray:
    return np.concatenate([np.atleast_1d(params[p.name]) for p in law.params])


@pytest.mark.parametrize(
    "name", ["additive_mixture", "mixing_exp_implicit", "mixing_exp_implicit_M2", "bimix", "bimix_d3"]
)
def test_each_law_is_finite_over_its_init_box_and_its_levels_scale_their_term(name):
    law = mj.get_law(name)
    h = H.copy()
    if not name.startswith("bimix"):
        h[0] = [1.0, 0, 0, 0, 0]  # a pure mixture: h_i = 0 must be safe (BiMix is undefined there)
    x = Inputs.from_arrays(np.ones(30), TOKENS, h)
    space = make_space(law, K, "raw", None)
    z = space.sample(jax.random.PRNGKey(1), 64)
    values = jax.vmap(lambda zz: law.predict(space.law_coordinates(zz), x))(z)
    grads = jax.vmap(jax.grad(lambda zz: jnp.sum(law.predict(space.law_coordinates(zz), x))))(z)
    assert np.isfinite(np.asarray(values)).all() and np.isfinite(np.asarray(grads)).all()
    assert all(s is not None for s in space.term_scales)
    _, before = jax.vmap(lambda zz: law.terms(space.law_coordinates(zz), x))(z[:8])
    for m in range(len(space.term_scales)):
        log_s = jnp.zeros((8, len(space.term_scales))).at[:, m].set(jnp.linspace(-2.0, 2.0, 8))
        _, after = jax.vmap(lambda zz: law.terms(space.law_coordinates(zz), x))(space.scale_terms(z[:8], log_s))
        np.testing.assert_allclose(after - before, np.broadcast_to(log_s[:, :, None], after.shape), atol=1e-9)


def test_additive_mixture_is_the_additive_law_at_fixed_n_and_d():
    additive, mixture = mj.get_law("additive"), mj.get_law("additive_mixture")
    c, gamma = rng.uniform(-1, 1, K), rng.uniform(0.2, 1.5, K)
    n, d = 1e9, 2e10
    scale = 300.0 / n**0.3 + 2000.0 / d**0.35
    pa = {"E": 1.7, "A": np.log(300.0), "alpha": 0.3, "B": np.log(2000.0), "beta": 0.35, "C": c, "gamma": gamma}
    x = Inputs.from_arrays(np.full(30, n), np.full(30, d), H)
    np.testing.assert_allclose(
        additive.predict(pa, x), mixture.predict({"E": 1.7 + scale, "C": c, "gamma": gamma}, X), rtol=1e-13
    )
    assert not (mixture.uses_n or mixture.uses_d)


def test_implicit_law_is_ye_et_als_softmax_form_and_m1_is_mixing_exp():
    """L = sum_m s_m [c_m + k_m exp(t_m . h)], s = softmax(w), equals c + sum_m K_m exp(t_m . h) with c = sum s_m c_m
    and K_m = s_m k_m."""
    m = 3
    law = mj.implicit_mixing_law(m)
    w, c_m, k_m, t = rng.normal(size=m), rng.uniform(1, 3, m), rng.uniform(0.1, 2, m), rng.normal(size=(m, K))
    s = np.exp(w) / np.exp(w).sum()
    original = np.sum(s * (c_m + k_m * np.exp(H @ t.T)), axis=1)
    params = {"c": s @ c_m, **{f"K_{i + 1}": np.log(s[i] * k_m[i]) for i in range(m)}}
    params.update({f"t_{i + 1}": t[i] for i in range(m)})
    np.testing.assert_allclose(law.predict(params, X), original, rtol=1e-13)
    one = mj.implicit_mixing_law(1).predict({"c": 2.0, "K_1": -0.5, "t_1": t[0]}, X)
    np.testing.assert_allclose(one, mj.get_law("mixing_exp").predict({"c": 2.0, "k": -0.5, "t": t[0]}, X), rtol=1e-14)
    assert law.n_params(K) == 1 + m * (K + 1)


def test_implicit_mixing_law_builds_any_m_once_and_refuses_a_bad_m():
    law = mj.implicit_mixing_law(7)
    assert law.name == "mixing_exp_implicit_M7" and mj.implicit_mixing_law(7) is law
    assert mj.get_law("mixing_exp_implicit_M7") is law and "mixing_exp_implicit_M7" in mj.available_laws()
    assert mj.get_law("mixing_exp_implicit_M11").name == "mixing_exp_implicit_M11"  # by name, e.g. in load_fit
    assert mj.get_law("mixing_exp_implicit").n_params(K) == mj.implicit_mixing_law(4).n_params(K)
    for bad, message in ((0, "must be >= 1, not 0"), (-2, ">= 1"), (2.5, "whole number"), (True, "whole number")):
        with pytest.raises(mj.MixlawError, match=message):
            mj.implicit_mixing_law(bad)
    with pytest.raises(mj.MixlawError, match="unknown law 'mixing_exp_implicit_M0'"):
        mj.get_law("mixing_exp_implicit_M0")


def test_too_few_mixtures_for_the_implicit_law_names_the_largest_m_that_fits():
    """Ye et al.'s 5-domain experiment fits 20 mixtures: the default M = 4 has 25 parameters, M = 3 has 19."""
    frame = pd.DataFrame(H[:20], columns=[f"w_{i}" for i in range(K)]).assign(loss=3.0 + 0.1 * H[:20, 0])
    runs = mj.load_runs(frame, weights="w_*", targets=["loss"], warn=False)
    with pytest.raises(mj.MixlawError, match=r"implicit_mixing_law\(3\) \(law 'mixing_exp_implicit_M3', 19 param"):
        mj.fit(runs, "mixing_exp_implicit", search=LIGHT)
    assert mj.fit(runs, "mixing_exp_implicit_M3", search=LIGHT).objective[0] < 1e-6
    with pytest.raises(mj.MixlawError, match=r"even M = 1 latent domain needs 7"):
        mj.fit(mj.load_runs(frame.iloc[:5], weights="w_*", targets=["loss"], warn=False), "mixing_exp_implicit_M1")
    with pytest.raises(mj.MixlawError, match=r"parameters of law 'additive_mixture'$"):  # no hint for other laws
        mj.fit(mj.load_runs(frame.iloc[:5], weights="w_*", targets=["loss"], warn=False), "additive_mixture")


def test_bimix_is_ge_et_als_form_in_tokens():
    """A / r^alpha (B / s^beta + C) with s = D / b steps is the fitted form with B' = A B b^beta, C' = A C."""
    a, alpha, b, beta, c, tokens_per_step = 1.3, 0.12, 40.0, 0.4, 2.1, 4e6
    steps = TOKENS / tokens_per_step
    paper = a / H[:, 2] ** alpha * (b / steps**beta + c)
    law = mj.bimix_law(2)
    params = {"C": np.log(a * c), "alpha": alpha, "B": np.log(a * b * tokens_per_step**beta), "beta": beta}
    np.testing.assert_allclose(law.predict(params, X), paper, rtol=1e-12)
    assert law.name == "bimix_d2" and mj.get_law("bimix_d2") is law and law.uses_d and not law.uses_n
    with pytest.raises(mj.MixlawError, match="BiMix domain index must be >= 0"):
        mj.bimix_law(-1)


def test_bimix_refuses_a_domain_the_table_lacks_and_a_zero_proportion():
    frame, _ = truth_frame("bimix", 0)
    runs = mj.load_runs(frame, weights="weight_*", D="D", targets="loss", warn=False)
    with pytest.raises(mj.MixlawError, match="reads the proportion of domain 7 .* k = 5 weight columns"):
        mj.fit(runs, mj.bimix_law(7), search=LIGHT)
    frame.loc[0, ["weight_0", "weight_1"]] = [0.0, frame.loc[0, "weight_0"] + frame.loc[0, "weight_1"]]
    zero = mj.load_runs(frame, weights="weight_*", D="D", targets="loss", warn=False)
    with pytest.raises(mj.MixlawError, match="every start failed"):
        mj.fit(zero, "bimix", search=LIGHT)


def truth_frame(kind: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    runs, u = truth.truth_table(kind, seed)
    return runs.frame.copy(), u


@pytest.mark.parametrize("kind", ["implicit", "additive_mixture", "bimix"])
def test_known_truth_tables_are_refitted_to_the_truths_objective(kind):
    """Issue 22 asks for 19 of 20 seeds each: benchmarks/mixture_only_truth.py, with the default search (on file,
    checked below); here one seed with a lighter search. The implicit law's M! permutations of a basin must not
    split its count."""
    row = truth.measure(kind, 0, mj.Search(4096, ((64, 30), (8, 100))))
    assert row["reached"], row
    assert row["n_in_basin"] >= row["n_final"] // 2, row


def test_the_twenty_seed_run_on_file_reaches_the_truth_in_at_least_19_each():
    import json

    result = json.loads((ROOT / "benchmarks" / "results" / "mixture_only_truth.json").read_text())
    assert result["seeds"] == 20 and set(result["laws"]) == {"implicit", "additive_mixture", "bimix"}
    for entry in result["laws"].values():
        rows = entry["rows"]
        assert [r["seed"] for r in rows] == list(range(20))
        assert all(r["reached"] == (r["objective"] <= r["at_truth"] * (1 + result["rtol"])) for r in rows)
        assert entry["reached"] == sum(r["reached"] for r in rows) >= 19


@pytest.mark.parametrize("name", ["additive_mixture", "mixing_exp_implicit_M2"])
def test_a_mixture_only_law_ignores_the_tables_n_and_d(name):
    """The same mixtures and losses with and without N and D columns (here varying): the same fit, no error."""
    frame, _ = truth_frame("additive_mixture", 4)
    plain = mj.load_runs(frame.drop(columns="D"), weights="weight_*", targets="loss", warn=False)
    frame["N"] = np.geomspace(1e7, 1e9, len(frame))
    frame["D"] = np.geomspace(1e9, 1e11, len(frame))
    scaled = mj.load_runs(frame, weights="weight_*", N="N", D="D", targets="loss", warn=False)
    a, b = mj.fit(plain, name, search=LIGHT), mj.fit(scaled, name, search=LIGHT)
    np.testing.assert_array_equal(a.coordinates, b.coordinates)
    assert a.objective[0] == b.objective[0]
    np.testing.assert_array_equal(a.predict(plain).to_numpy(), b.predict(scaled).to_numpy())


@pytest.fixture(scope="module")
def continual_fit():
    """mixing_exp fitted to continual-pretraining runs of two domains, original and new: the loss on the original
    data rises with the new domain's share p, as in Ye et al.'s sec. 5."""
    p = np.linspace(0.05, 0.95, 12)
    h = np.stack([1 - p, p], axis=1)
    law = mj.get_law("mixing_exp")
    loss = simulate(law, np.array([2.2, np.log(0.3), 0.0, 1.6]), np.ones(12), np.ones(12), h, noise=1e-4)
    frame = pd.DataFrame({"weight_original": h[:, 0], "weight_new": h[:, 1], "original_loss": loss})
    return mj.fit(mj.load_runs(frame, weights="weight_*", targets="original_loss", warn=False), law, search=LIGHT)


def test_critical_proportion_matches_a_brute_force_grid(continual_fit):
    threshold = 2.8
    result = mj.critical_proportion(continual_fit, new_domain="weight_new", threshold=threshold)
    grid = np.linspace(0, 1, 200001)
    loss = continual_fit.predict_arrays(None, None, np.stack([1 - grid, grid], axis=1))[:, 0]
    brute = grid[np.flatnonzero(loss <= threshold)[-1]]
    assert brute <= result.proportion < brute + 1e-5
    assert result.loss == pytest.approx(threshold, abs=1e-9)
    assert result.mixture == pytest.approx({"weight_original": 1 - result.proportion, "weight_new": result.proportion})
    assert result.loss_without_new_domain == pytest.approx(loss[0])
    everything = mj.critical_proportion(continual_fit, new_domain="weight_new", threshold=10.0)
    assert everything.proportion == 1.0


def test_critical_proportion_names_the_best_reachable_loss_when_no_proportion_meets_the_threshold(continual_fit):
    best = continual_fit.predict_arrays(None, None, np.array([[1.0, 0.0]]))[0, 0]
    expected = rf"lowest loss reachable along the path is {best:.6g}, at 'weight_new' = 0"
    with pytest.raises(mj.MixlawError, match=expected):
        mj.critical_proportion(continual_fit, new_domain="weight_new", threshold=2.0)
    for kwargs, message in (
        ({"new_domain": "weight_x", "threshold": 2.8}, "unknown new_domain 'weight_x'"),
        ({"new_domain": "weight_new", "threshold": -1.0}, "threshold must be > 0"),
        ({"new_domain": "weight_new", "threshold": 2.8, "target": "x"}, "unknown target 'x'"),
        ({"new_domain": "weight_new", "threshold": 2.8, "base": {"weight_original": 0.9}}, "sum to 0.9"),
        ({"new_domain": "weight_new", "threshold": 2.8, "base": {"weight_new": 1.0}}, "holds none of the new"),
    ):
        with pytest.raises(mj.MixlawError, match=message):
            mj.critical_proportion(continual_fit, **kwargs)


def test_critical_proportion_of_a_three_domain_fit_needs_the_original_mixture():
    h = random_mixtures(30, 3, seed=2)
    law = mj.get_law("additive_mixture")
    u = np.array([1.8, 0.5, -0.2, 0.1, 0.6, 0.4, 0.8])
    frame = pd.DataFrame(h, columns=["weight_a", "weight_b", "weight_c"])
    frame["a_loss"] = simulate(law, u, np.ones(30), np.ones(30), h)
    fit = mj.fit(mj.load_runs(frame, weights="weight_*", targets="a_loss", warn=False), law, search=LIGHT)
    with pytest.raises(mj.MixlawError, match="pass base=..."):
        mj.critical_proportion(fit, new_domain="weight_c", threshold=2.5)
    base = {"weight_a": 0.7, "weight_b": 0.3}
    result = mj.critical_proportion(fit, new_domain="weight_c", threshold=2.5, base=base)
    path = np.linspace(0, 1, 100001)
    h_path = np.outer(1 - path, [0.7, 0.3, 0.0]) + np.outer(path, [0.0, 0.0, 1.0])
    loss = fit.predict_arrays(None, None, h_path)[:, 0]
    assert loss[0] < 2.5 < loss[-1]
    assert path[np.flatnonzero(loss <= 2.5)[-1]] == pytest.approx(result.proportion, abs=2e-5)
