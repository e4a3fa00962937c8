"""The grouped linearisation (rows sharing a mixture) against the row-by-row one, its layout and its plan."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixlaw_jax as mj
from mixlaw_jax.engine import grouped, multistart, solvers
from mixlaw_jax.engine.space import make_space
from mixlaw_jax.laws import Inputs, Param
from mixlaw_jax.objective import prediction

K = 3
rng = np.random.default_rng(7)
MIXTURES = rng.dirichlet(np.ones(K), 6)
MIXTURES[0] = [0.5, 0.5, 0.0]  # a domain left out: h_i = 0 must stay harmless
COUNTS = np.array([9, 7, 1, 12, 4, 7])
H = np.repeat(MIXTURES, COUNTS, axis=0)[rng.permutation(COUNTS.sum())]
N, D = 10 ** rng.uniform(7, 9, len(H)), 10 ** rng.uniform(9, 11, len(H))
X = Inputs.from_arrays(N, D, H)
FEATURE_LAWS = ("additive", "joint", "full", "simple")


def _shared_features(p, x):
    """Features that share coordinates: log_C feeds two of them, the row parameter alpha the third."""
    mean = jnp.sum(jnp.exp(p["log_C"]) * x.h, axis=-1)
    second = jnp.sum(jnp.exp(p["log_C"]) * x.h**2, axis=-1)
    return jnp.stack([jnp.log(mean), p["tau"] * second, p["alpha"] * jnp.log(jnp.sum(x.h**2, axis=-1))])


def _shared_combine(q, phi, x):
    return q["E"] * jnp.ones_like(x.log_n), jnp.stack(
        [phi[0] - q["alpha"] * x.log_n, phi[1] - 0.3 * x.log_d, phi[2] - x.log_d]
    )


#: A user law whose features overlap, so the grouped path needs two colours and two pieces for some coordinates.
SHARED = mj.Law.from_features(
    "shared",
    (
        Param("E", init=(1.0, 2.0)),
        Param("alpha", init=(0.1, 0.6)),
        Param("log_C", shape="domain", init=(-1.0, 1.0)),
        Param("tau", init=(-1.0, 1.0)),
    ),
    _shared_features,
    _shared_combine,
    row_params=("E", "alpha"),
)


def _law(name):
    return SHARED if name == "shared" else mj.get_law(name)


def _rows(space, truth, seed):
    """Noisy targets (some residuals outside the Huber band) with a few rows weighted 0, one mixture entirely."""
    noise = np.random.default_rng(seed).normal(0.0, 0.01, len(H))
    y = np.asarray(prediction(space.law, space.law_coordinates(truth), X, space.loss_space)) + noise
    w = np.ones(len(H))
    w[:3] = 0.0
    w[np.all(H == MIXTURES[4], axis=1)] = 0.0
    return solvers.Rows(jax.numpy.asarray(y), jax.numpy.asarray(w), jax.numpy.asarray(1.0 / w.sum()))


@pytest.mark.parametrize("loss_space", ["raw", "log"])
@pytest.mark.parametrize("law_name", FEATURE_LAWS + ("shared",))
def test_grouped_linearisation_equals_the_row_by_row_one(law_name, loss_space):
    space = make_space(_law(law_name), K, loss_space, "default")
    centre = float(np.mean(np.log(N))), float(np.mean(np.log(D)))
    truth, *points = space.sample(jax.random.PRNGKey(0), 4, *centre)
    rows = _rows(space, truth, 1)
    row_path = partial(solvers.linearise, multistart.model_and_jacobian(space, X), rows, 1e-3)
    for size in (1, 4, 12):
        slots, real = grouped.layout(H, size)
        x_g = jax.tree.map(lambda a: a[slots], X)
        rows_g = solvers.Rows(np.where(real, rows.y[slots], 0.0), np.where(real, rows.w[slots], 0.0), rows.c)
        lin = jax.jit(grouped.linearise(space, x_g, size, rows_g, 1e-3))
        for z in points:
            want, got = row_path(z), lin(z)
            assert np.isfinite(want.f) and np.all(np.isfinite(got.gram))
            np.testing.assert_allclose(got.f, want.f, rtol=1e-12)
            np.testing.assert_allclose(got.g, want.g, rtol=1e-9, atol=1e-12 * np.abs(want.g).max())
            np.testing.assert_allclose(got.gram, want.gram, rtol=1e-9, atol=1e-12 * np.abs(want.gram).max())


def test_structure_finds_which_coordinates_feed_which_quantity():
    joint = grouped.structure(mj.get_law("joint"), K)
    assert joint.colours.shape == (1, 3)  # no coordinate feeds two features: one pass
    assert joint.param_pieces.shape[1] == 1 and sorted(joint.piece_param) == list(
        range(mj.get_law("joint").n_params(K))
    )
    shared = grouped.structure(SHARED, K)
    names = SHARED.names(K)
    assert shared.colours.tolist() == [[1, 0, 1], [0, 1, 0]]  # phi0 and phi1 share log_C; phi2 shares only alpha
    pieces = {names[p]: sorted(shared.piece_quantity[shared.piece_param == p].tolist()) for p in range(len(names))}
    # quantities: q = (E, alpha), then phi0, phi1, phi2
    assert pieces == {"E": [0], "alpha": [1, 4], "log_C[0]": [2, 3], "log_C[1]": [2, 3], "log_C[2]": [2, 3], "tau": [3]}


def test_layout_puts_each_row_once_in_groups_of_one_mixture():
    for size in (1, 3, 5, 12):
        slots, real = grouped.layout(H, size)
        assert len(slots) % size == 0
        assert sorted(slots[real]) == list(range(len(H)))
        groups = H[slots].reshape(-1, size, K)
        assert np.all(groups == groups[:, :1])  # padding copies its group's mixture
        assert np.all(real.reshape(-1, size).sum(axis=1) > 0)  # no group is padding only


def test_plan_groups_repeated_mixtures_and_keeps_rows_when_each_mixture_is_one_row():
    joint = make_space(mj.get_law("joint"), K, "raw", None)
    assert grouped.plan(joint, np.repeat(MIXTURES, 40, axis=0)) is not None
    assert grouped.plan(joint, rng.dirichlet(np.ones(K), 200)) is None
    assert grouped.plan(make_space(mj.get_law("chinchilla"), K, "raw", None), np.repeat(MIXTURES, 40, axis=0)) is None


def test_a_fit_through_mixture_groups_reaches_the_row_by_row_optimum(monkeypatch):
    law = mj.get_law("joint")
    space = make_space(law, K, "raw", "default")
    truth = space.sample(jax.random.PRNGKey(3), 1, float(np.mean(np.log(N))), float(np.mean(np.log(D))))[0]
    y = np.asarray(law.predict(space.law_coordinates(truth), X))
    y = (y * (1 + np.random.default_rng(2).normal(0, 0.003, len(H))))[None]
    problems = multistart.make_problems(y, np.ones_like(y), "raw", "mean")
    search = mj.Search(256, ((16, 60), (4, 200)))
    kwargs = dict(delta=1e-3, key=jax.random.PRNGKey(0))
    monkeypatch.setattr(grouped, "plan", lambda space, h: 12)
    by_group = multistart.solve(space, X, problems, search, **kwargs)
    monkeypatch.setattr(grouped, "plan", lambda space, h: None)
    by_row = multistart.solve(space, X, problems, search, **kwargs)
    np.testing.assert_allclose(by_group.objective, by_row.objective, rtol=1e-9)
    at_truth = solvers.objective(
        multistart.model(space, X), solvers.Rows(problems.y[0], problems.w[0], problems.c[0]), 1e-3, truth
    )
    assert by_group.objective[0] <= float(at_truth)
