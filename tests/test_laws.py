import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixlaw_jax as mj
from mixlaw_jax.engine.space import make_space
from mixlaw_jax.laws import Inputs, Law, Param
from mixlaw_jax.laws.mixture import log_power_mean

K = 5
rng = np.random.default_rng(0)
H = rng.dirichlet(np.ones(K), 40)
H[0] = [1.0, 0, 0, 0, 0]  # a pure mixture: h_i = 0 must be safe
X = Inputs.from_arrays(10 ** rng.uniform(7, 10, 40), 10 ** rng.uniform(9, 11, 40), H)


@pytest.mark.parametrize("name", ["chinchilla", "additive", "joint", "full", "simple", "mixing_exp"])
@pytest.mark.parametrize("loss_space", ["raw", "log"])
def test_every_law_is_finite_with_finite_gradients_over_its_init_box(name, loss_space):
    law = mj.get_law(name)
    space = make_space(law, K, loss_space, None)
    z = space.sample(jax.random.PRNGKey(1), 512)
    corners = jnp.asarray(space.from_law(np.stack([space.init_lo, space.init_hi])))
    z = jnp.concatenate([z, corners])

    def pred(zz):
        p = space.law_coordinates(zz)
        return law.log_predict(p, X) if loss_space == "log" else law.predict(p, X)

    values = jax.vmap(pred)(z)
    grads = jax.vmap(jax.jacfwd(lambda zz: jnp.sum(pred(zz))))(z)
    assert values.shape == (514, 40)
    assert np.isfinite(np.asarray(values)).all()
    assert np.isfinite(np.asarray(grads)).all()


@pytest.mark.parametrize("name", ["chinchilla", "additive", "joint", "full", "simple", "mixing_exp"])
def test_declared_term_levels_scale_their_term_and_no_other(name):
    """Law.term_scales: adding sign * log s to a term's level coordinates multiplies that term by s."""
    law = mj.get_law(name)
    space = make_space(law, K, "raw", None)
    assert len(space.term_scales) == len(law.term_scales) and all(s is not None for s in space.term_scales)
    z = space.sample(jax.random.PRNGKey(2), 16)
    _, before = jax.vmap(lambda zz: law.terms(space.law_coordinates(zz), X))(z)
    for m in range(len(space.term_scales)):
        log_s = jnp.zeros((16, len(space.term_scales))).at[:, m].set(jnp.linspace(-3.0, 2.0, 16))
        _, after = jax.vmap(lambda zz: law.terms(space.law_coordinates(zz), X))(space.scale_terms(z, log_s))
        np.testing.assert_allclose(after - before, np.broadcast_to(log_s[:, :, None], after.shape), atol=1e-9)


def test_a_bounded_level_is_not_profiled():
    space = make_space(mj.get_law("additive"), K, "raw", {"A": (1.0, 1e6)})
    assert space.term_scales[1] is None and space.term_scales[0] is not None and space.term_scales[2] is not None


def test_joint_reduces_to_additive():
    """gamma_A = gamma_B = 1, C_A_i = A, C_B_i = B gives back the additive law (SPEC.md section 1)."""
    additive, joint = mj.get_law("additive"), mj.get_law("joint")
    c, gamma = np.log(rng.uniform(0.5, 2, K)), rng.uniform(0.2, 1.5, K)
    E, A, alpha, B, beta = 1.7, 300.0, 0.3, 2000.0, 0.35
    pa = {"E": E, "A": np.log(A), "alpha": alpha, "B": np.log(B), "beta": beta, "C": c, "gamma": gamma}
    # tau = 1/gamma = 1 and P_i = C_i^(1/tau) = A
    pj = {
        "E": E,
        "C": c,
        "gamma": gamma,
        "A_pure": np.full(K, np.log(A)),
        "tau_A": 1.0,
        "alpha": alpha,
        "B_pure": np.full(K, np.log(B)),
        "tau_B": 1.0,
        "beta": beta,
    }
    np.testing.assert_allclose(additive.predict(pa, X), joint.predict(pj, X), rtol=1e-13)


def test_power_mean_coordinates_match_the_spec_form_and_its_limit():
    v, tau = jnp.asarray(rng.normal(size=K)), 0.37
    direct = np.log(np.sum(np.exp(tau * np.asarray(v)) * np.asarray(X.h), axis=1)) / tau  # (1/tau) log sum C_i h_i
    np.testing.assert_allclose(log_power_mean(v, jnp.asarray(tau), X), direct, rtol=1e-12)
    linear = np.asarray(X.h) @ np.asarray(v)
    np.testing.assert_allclose(log_power_mean(v, jnp.asarray(0.0), X), linear, rtol=1e-12)
    for t in (3e-6, 2e-5):  # both sides of the series / logsumexp switch agree with the exact value
        exact = linear + np.log(np.sum(np.asarray(X.h) * np.exp(t * (np.asarray(v) - linear[:, None])), axis=1)) / t
        np.testing.assert_allclose(log_power_mean(v, jnp.asarray(t), X), exact, rtol=1e-9, atol=1e-10)


def test_reported_parameters_use_spec_names():
    law = mj.get_law("joint")
    u = np.zeros(law.n_params(K))
    names = law.parameter_values(law.unflatten(u + 0.5, K)).keys()
    assert {"E", "C", "gamma", "C_A", "gamma_A", "alpha", "C_B", "gamma_B", "beta"} == set(names)
    values = law.parameter_values(law.unflatten(u + 0.5, K))
    assert values["gamma_A"] == pytest.approx(2.0)  # gamma = 1 / tau
    assert values["C_A"] == pytest.approx([np.exp(0.25)] * K)  # C = P^tau


def test_registry_accepts_a_user_law_without_touching_the_engine(tmp_path):
    def predict(p, x):
        return p["E"] + jnp.exp(p["a"]) * jnp.exp(-p["b"] * x.log_n)

    law = Law.from_predict(
        "test_user_power",
        [Param("E", init=(1, 2)), Param("a", init=(0, 3)), Param("b", init=(0.1, 1))],
        predict,
        uses_d=False,
    )
    mj.register_law(law, overwrite=True)
    assert "test_user_power" in mj.available_laws()
    n = np.geomspace(1e6, 1e9, 30)
    loss = 2.0 + 50.0 * n**-0.3
    import pandas as pd

    runs = mj.load_runs(pd.DataFrame({"h": 1.0, "N": n, "loss": loss}), weights=["h"], N="N", targets=["loss"])
    result = mj.fit(runs, "test_user_power", search=mj.Search(256, ((16, 60),)))
    params = result.params["loss"]
    assert params["E"] == pytest.approx(2.0, rel=1e-6)
    assert params["b"] == pytest.approx(0.3, rel=1e-6)
    with pytest.raises(mj.MixlawError, match="already registered"):
        mj.register_law(law)


def test_a_law_object_passed_to_fit_is_registered_so_its_result_predicts_and_loads(tmp_path):
    def predict(p, x):
        return p["E"] + jnp.exp(p["a"]) * jnp.exp(-p["b"] * x.log_n)

    params = [Param("E", init=(1, 2)), Param("a", init=(0, 3)), Param("b", init=(0.1, 1))]
    law = Law.from_predict("test_unregistered_power", params, predict, uses_d=False)
    n = np.geomspace(1e6, 1e9, 30)
    import pandas as pd

    runs = mj.load_runs(
        pd.DataFrame({"h": 1.0, "N": n, "loss": 2.0 + 50.0 * n**-0.3}), weights=["h"], N="N", targets=["loss"]
    )
    result = mj.fit(runs, law, search=mj.Search(256, ((16, 60),)))
    assert "test_unregistered_power" in mj.available_laws()
    np.testing.assert_allclose(result.predict(runs)["loss"], 2.0 + 50.0 * n**-0.3, rtol=1e-6)
    result.save(tmp_path / "fit.json")
    np.testing.assert_array_equal(mj.load_fit(tmp_path / "fit.json").coordinates, result.coordinates)
    other = Law.from_predict("test_unregistered_power", params, lambda p, x: p["E"] + 0 * x.log_n, uses_d=False)
    with pytest.raises(mj.MixlawError, match="another law is registered as 'test_unregistered_power'"):
        mj.fit(runs, other, search=mj.Search(64, ((4, 10),)))


def test_unknown_law_names_the_available_ones():
    with pytest.raises(mj.MixlawError, match="available: .*additive"):
        mj.get_law("addative")
