"""The engine: the screen (random starts scored with their linear parameters profiled), the LM step's solve, and
the threads that run a CPU fit's blocks."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax.engine import grouped, multistart, solvers
from mixlaw_jax.engine.space import make_space
from mixlaw_jax.laws import Inputs
from mixlaw_jax.objective import huber

K = 3
rng = np.random.default_rng(3)
H = rng.dirichlet(np.ones(K), 48)
N, D = 10 ** rng.uniform(7, 9, 48), 10 ** rng.uniform(9, 11, 48)
X = Inputs.from_arrays(N, D, H)


def test_profiled_starts_sit_at_the_least_squares_levels_and_are_scored_at_the_point_returned():
    law = mj.get_law("additive")
    space = make_space(law, K, "raw", None)
    truth = space.sample(jax.random.PRNGKey(0), 1, float(np.mean(np.log(N))), float(np.mean(np.log(D))))[0]
    y = np.asarray(law.predict(space.law_coordinates(truth), X))[None] + np.array([[0.0], [0.05]])  # two problems
    w = np.ones_like(y)
    w[1, :5] = 0.0  # missing cells of the second problem
    problems = multistart.make_problems(y, w, "raw", "mean")
    starts = space.sample(jax.random.PRNGKey(1), 32, float(np.mean(np.log(N))), float(np.mean(np.log(D))))
    f, z = multistart.score(space, X, problems, starts, 1e-3)
    assert z.shape == (2, 32, space.size) and np.isfinite(np.asarray(f)).all()
    for b in range(2):
        pred = jax.vmap(lambda zz: law.predict(space.law_coordinates(zz), X))(z[b])  # (32, n)
        r = np.where(w[b] > 0, y[b] - np.asarray(pred), 0.0)
        np.testing.assert_allclose(np.asarray(f[b]), np.sum(w[b] * huber(r, 1e-3), axis=1) / w[b].sum(), rtol=1e-9)
        # least squares: the weighted residual is orthogonal to 1 and to every term at a positive level
        _, log_terms = jax.vmap(lambda zz: law.terms(space.law_coordinates(zz), X))(z[b])
        design = np.concatenate([np.ones((32, 1, 48)), np.exp(np.asarray(log_terms))], axis=1)
        normal = np.einsum("cmn,cn->cm", design, w[b] * r) / np.linalg.norm(design, axis=2)
        assert np.all(np.abs(normal[:, 0]) < 1e-9)
        # and, where every level came out positive (so all moved), to every term
        levels = [scale[0][0] for scale in space.term_scales]
        moved = np.all(np.abs(np.asarray(z[b] - starts)[:, levels]) > 1e-12, axis=1)
        assert np.all(np.abs(normal[moved]) < 1e-8) and moved.mean() > 0.2
    # the true shape is found: the start at the truth's exponents scores the noise-free problem near zero
    f_truth, _ = multistart.score(space, X, problems, truth[None] + jnp.zeros((1, space.size)), 1e-3)
    assert float(f_truth[0, 0]) < 1e-20


def test_the_one_system_at_a_time_cholesky_solves_like_the_batched_one_under_nested_vmap():
    rng_ = np.random.default_rng(0)
    m = rng_.normal(size=(3, 5, 33, 40))
    a, b = jnp.asarray(m @ np.swapaxes(m, -1, -2)), jnp.asarray(rng_.normal(size=(3, 5, 33)))
    batched = jax.vmap(jax.vmap(solvers.cholesky_solve))(a, b)
    sequential = jax.jit(jax.vmap(jax.vmap(solvers.sequential_cholesky_solve)))(a, b)
    np.testing.assert_allclose(sequential, batched, rtol=1e-12, atol=0)
    np.testing.assert_allclose(jnp.einsum("ijkl,ijl->ijk", a, sequential), b, atol=1e-8)
    # one matrix shared by every right-hand side (an unbatched argument)
    np.testing.assert_allclose(
        jax.vmap(solvers.sequential_cholesky_solve, in_axes=(None, 0))(a[0, 0], b[0]),
        jax.vmap(solvers.cholesky_solve, in_axes=(None, 0))(a[0, 0], b[0]),
        rtol=1e-12,
    )


class _InOrder:
    """A stand-in for the CPU thread pool that runs every block in the calling thread, in order."""

    def map(self, fn, items):
        return [fn(item) for item in items]


def test_blocks_run_from_threads_give_the_bits_of_blocks_run_in_order(monkeypatch):
    law = mj.get_law("additive")
    space = make_space(law, K, "raw", None)
    truth = space.sample(jax.random.PRNGKey(0), 1, float(np.mean(np.log(N))), float(np.mean(np.log(D))))[0]
    y = np.asarray(law.predict(space.law_coordinates(truth), X))[None] * np.array([[1.0], [1.01], [0.99]])
    problems = multistart.make_problems(y, np.ones_like(y), "raw", "mean")
    search = mj.Search(256, ((24, 10), (8, 20)))
    settings = dict(delta=1e-3, key=jax.random.PRNGKey(0), resources=mj.Resources(devices=1))
    assert multistart.CPU_THREADS >= 1 and 3 * 24 > multistart.lm_batch_size(48, space.size, K, 2e9)  # several blocks
    threaded = multistart.solve(space, X, problems, search, **settings)
    monkeypatch.setattr(multistart, "cpu_pool", lambda: _InOrder())
    in_order = multistart.solve(space, X, problems, search, **settings)
    np.testing.assert_array_equal(threaded.z, in_order.z)
    np.testing.assert_array_equal(threaded.objective, in_order.objective)
    np.testing.assert_array_equal(threaded.iterations, in_order.iterations)


def test_the_reported_objective_and_gradient_norm_are_those_of_the_returned_point():
    """They come from the LM program's last linearisation (grouped rows, or a last stage on a row subset that is then
    scored on every row); autodiff of the objective on every row, row by row, must agree."""
    law = mj.get_law("joint")
    space = make_space(law, K, "raw", None)
    n_rows = 48 * 8  # 48 mixtures x 8 rows: grouped layout
    h = np.repeat(rng.dirichlet(np.ones(K), 48), 8, axis=0)
    x = Inputs.from_arrays(10 ** rng.uniform(7, 9, n_rows), 10 ** rng.uniform(9, 11, n_rows), h)
    truth = space.sample(jax.random.PRNGKey(3), 1, float(np.mean(x.log_n)), float(np.mean(x.log_d)))[0]
    y = np.asarray(law.predict(space.law_coordinates(truth), x))[None] * (1 + 0.01 * rng.normal(size=(2, n_rows)))
    problems = multistart.make_problems(y, np.ones_like(y), "raw", "mean")
    model = multistart.model(space, x)
    assert multistart.row_subset(n_rows, 0.5, space.size, jax.random.PRNGKey(0)) is not None
    for schedule in (((8, 10), (2, 20)), ((8, 10), (2, 20, 0.5))):
        solution = multistart.solve(
            space,
            x,
            problems,
            mj.Search(64, schedule),
            delta=1e-3,
            key=jax.random.PRNGKey(0),
            resources=mj.Resources(devices=1),
        )
        for b in range(2):
            rows = solvers.Rows(problems.y[b], problems.w[b], problems.c[b])
            z = jnp.asarray(solution.z[b])
            f, g = jax.value_and_grad(lambda v: solvers.objective(model, rows, 1e-3, v))(z)
            np.testing.assert_allclose(solution.objective[b], f, rtol=1e-10)
            np.testing.assert_allclose(solution.gradient_norm[b], np.linalg.norm(g), rtol=1e-6)
            assert solution.gradient_norm[b] > 0


def test_the_screen_scores_a_random_subset_of_the_first_stages_rows_on_large_tables_only():
    key = jax.random.PRNGKey(0)
    some = np.arange(0, 2000, 3)
    assert multistart.screen_subset(None, 240, 20, key) is None  # small tables: every row
    assert multistart.screen_subset(some, 2000, 20, key) is some  # the first stage's subset, small enough
    for rows, n_rows, n_params in ((None, 3072, 261), (np.arange(0, 6000, 2), 6000, 20)):
        subset = multistart.screen_subset(rows, n_rows, n_params, key)
        size = max(multistart.SCREEN_ROWS, multistart.SCREEN_ROWS_PER_PARAM * n_params)
        available = np.arange(n_rows) if rows is None else rows
        assert len(subset) == size and np.all(np.diff(subset) > 0) and np.isin(subset, available).all()
        np.testing.assert_array_equal(subset, multistart.screen_subset(rows, n_rows, n_params, key))
        assert not np.array_equal(subset, multistart.screen_subset(rows, n_rows, n_params, jax.random.PRNGKey(1)))


def test_screening_a_subset_of_a_large_tables_rows_finds_the_same_optimum(monkeypatch):
    draw = np.random.default_rng(13)  # its own data, whichever tests ran before it
    law = mj.get_law("joint")
    space = make_space(law, K, "raw", None)
    n_rows = 160 * 8  # above SCREEN_ROWS: the screen sees a subset
    h = np.repeat(draw.dirichlet(np.ones(K), 160), 8, axis=0)
    x = Inputs.from_arrays(10 ** draw.uniform(7, 9, n_rows), 10 ** draw.uniform(9, 11, n_rows), h)
    truth = space.sample(jax.random.PRNGKey(5), 1, float(np.mean(x.log_n)), float(np.mean(x.log_d)))[0]
    y = np.asarray(law.predict(space.law_coordinates(truth), x))[None] * (1 + 1e-3 * draw.normal(size=(1, n_rows)))
    problems = multistart.make_problems(y, np.ones_like(y), "raw", "mean")
    settings = dict(delta=1e-3, key=jax.random.PRNGKey(0), resources=mj.Resources(devices=1))
    search = mj.Search(512, ((16, 40), (4, 200)))
    assert multistart.screen_subset(None, n_rows, space.size, settings["key"]) is not None
    capped = multistart.solve(space, x, problems, search, **settings)
    monkeypatch.setattr(multistart, "SCREEN_ROWS", 10 * n_rows)
    every_row = multistart.solve(space, x, problems, search, **settings)
    np.testing.assert_allclose(capped.objective, every_row.objective, rtol=1e-6)


@pytest.mark.parametrize("rows_per_mixture", [8, 1])  # grouped layout, row by row
def test_linearising_only_accepted_steps_changes_no_result(monkeypatch, rows_per_mixture):
    """Above LAZY_FROM_PARAMS a CPU block is one pair whose LM evaluates a trial point's f before linearising it;
    forced on for a small law, its converged fits must end at the objectives of the vmapped blocks (acceptance tests
    decided by rounding near the floor can send a run along another path to the same floor)."""
    draw = np.random.default_rng(11)
    law = mj.get_law("joint")
    space = make_space(law, K, "raw", None)
    n_rows = 64 * rows_per_mixture
    h = np.repeat(draw.dirichlet(np.ones(K), 64), rows_per_mixture, axis=0)
    x = Inputs.from_arrays(10 ** draw.uniform(7, 9, n_rows), 10 ** draw.uniform(9, 11, n_rows), h)
    truth = space.sample(jax.random.PRNGKey(7), 1, float(np.mean(x.log_n)), float(np.mean(x.log_d)))[0]
    y = np.asarray(law.predict(space.law_coordinates(truth), x))[None] * (1 + 1e-3 * draw.normal(size=(2, n_rows)))
    problems = multistart.make_problems(y, np.ones_like(y), "raw", "mean")
    settings = dict(delta=1e-3, key=jax.random.PRNGKey(0), resources=mj.Resources(devices=1))
    search = mj.Search(256, ((8, 30), (4, 400)), confirm=mj.Confirmation(rounds=0))
    assert space.size < multistart.LAZY_FROM_PARAMS
    assert multistart.lm_batch_size(n_rows, space.size, K, 2e9) > 1
    eager = multistart.solve(space, x, problems, search, **settings)
    monkeypatch.setattr(multistart, "LAZY_FROM_PARAMS", 1)
    assert multistart.lm_batch_size(n_rows, space.size, K, 2e9) == 1
    lazy = multistart.solve(space, x, problems, search, **settings)
    converged = (solvers.Status.CONVERGED, solvers.Status.STALLED)
    assert np.isin(lazy.status, converged).all() and np.isin(eager.status, converged).all()
    np.testing.assert_allclose(lazy.objective, eager.objective, rtol=1e-7)


def test_row_buckets_have_four_significant_bits_and_pad_whole_groups_with_weight_zero_rows():
    sizes = (1, 15, 16, 17, 31, 33, 233, 240, 241, 2408)
    assert [multistart.row_bucket(n) for n in sizes] == [1, 15, 16, 18, 32, 36, 240, 240, 256, 2560]

    def problems_of(n_rows):
        y = np.arange(2 * n_rows, dtype=float).reshape(2, n_rows) + 1.0
        return multistart.make_problems(y, np.ones_like(y), "raw", "mean"), jax.tree.map(lambda a: a[:n_rows], X)

    problems, x = problems_of(17)
    x_pad, p_pad = multistart.pad_rows(x, problems)
    assert p_pad.y.shape == (2, 18) and np.all(np.asarray(p_pad.w)[:, 17:] == 0) and np.all(p_pad.y[:, 17:] == 0)
    np.testing.assert_array_equal(np.asarray(p_pad.c), np.asarray(problems.c))  # the real rows' normaliser
    np.testing.assert_array_equal(np.asarray(x_pad.h)[17], H[0])  # a copy of the first row: finite inputs
    # in groups of 2 rows the count of groups is bucketed: 18 groups is a bucket, 17 pad to 18 with a copy of the
    # first group
    problems, x = problems_of(36)
    assert multistart.pad_rows(x, problems, group_size=2)[1].y.shape == (2, 36)
    problems, x = problems_of(34)
    x_pad, p_pad = multistart.pad_rows(x, problems, group_size=2)
    assert p_pad.y.shape == (2, 36) and np.all(np.asarray(p_pad.w)[:, 34:] == 0)
    np.testing.assert_array_equal(np.asarray(x_pad.h)[34:], H[:2])


def fit_both_ways(monkeypatch, runs, law, **kwargs):
    """The same fit with the rows padded to their bucket (the default) and without padding."""
    monkeypatch.setattr(multistart, "ROW_BUCKET_BITS", None)
    plain = mj.fit(runs, law, **kwargs)
    monkeypatch.undo()
    return mj.fit(runs, law, **kwargs), plain


def test_padding_rows_to_their_bucket_leaves_every_fit_unchanged(monkeypatch):
    from benchmarks.common import synthetic_table

    # row by row: a Chinchilla table of 230 rows (bucket 240), log-space residuals, summed; the first stage on a
    # random quarter of the rows (58: bucket 60)
    rng_ = np.random.default_rng(5)
    n, d = 10 ** rng_.uniform(7, 9, 230), 10 ** rng_.uniform(9, 11, 230)
    loss = (1.7 + 400 * n**-0.34 + 410 * d**-0.28) * np.exp(rng_.normal(0, 0.01, 230))
    frame = pd.DataFrame({"N": n, "D": d, "loss": loss})
    table = mj.load_runs(frame, weights=None, N="N", D="D", targets="loss")
    objective = mj.Objective(loss_space="log", reduction="sum")
    search = mj.Search(256, ((32, 30, 0.25), (8, 100, 1.0)))
    padded, plain = fit_both_ways(monkeypatch, table, "chinchilla", objective=objective, search=search)
    np.testing.assert_allclose(padded.objective, plain.objective, rtol=1e-12, atol=0)
    np.testing.assert_allclose(padded.coordinates, plain.coordinates, rtol=1e-6)
    assert padded.settings.rows == plain.settings.rows == 230
    # mixture groups (the grouped LM step): 167 of the 170 rows of a synthetic table of 17 mixtures, in groups of
    # rows sharing a mixture whose count is padded in whole groups (17 -> 18)
    runs, _ = synthetic_table(1, n_mixtures=17, sizes=(6e7, 1.5e8))
    runs = runs.subset(np.delete(np.arange(runs.n_rows), [0, 11, 30]))
    size = grouped.plan(make_space(mj.get_law("additive"), runs.k, "raw", "default"), runs.h)
    groups = len(grouped.layout(runs.h, size)[0]) // size
    assert multistart.row_bucket(groups) > groups
    padded, plain = fit_both_ways(monkeypatch, runs, "additive", search=mj.Search(256, ((16, 100, 1.0),)))
    np.testing.assert_allclose(padded.objective, plain.objective, rtol=1e-12, atol=0)
    np.testing.assert_allclose(padded.coordinates, plain.coordinates, rtol=1e-6)
    assert padded.diagnostics["loss"].iterations == plain.diagnostics["loss"].iterations


def test_padding_problems_to_a_power_of_two_leaves_fits_unchanged_and_shares_the_lm_programs(monkeypatch, caplog):
    rng_ = np.random.default_rng(8)
    n, d = 10 ** rng_.uniform(7, 9, 230), 10 ** rng_.uniform(9, 11, 230)
    clean = 1.7 + 400 * n**-0.34 + 410 * d**-0.28
    frame = pd.DataFrame({"N": n, "D": d} | {f"loss_{t}": clean * np.exp(rng_.normal(0, 0.01, 230)) for t in range(4)})
    three = mj.load_runs(frame, weights=None, N="N", D="D", targets=["loss_0", "loss_1", "loss_2"])
    four = mj.load_runs(frame, weights=None, N="N", D="D", targets="loss_*")
    search = mj.Search(256, ((32, 30, 0.25), (8, 100, 1.0)))
    padded = multistart.pad_problems(make_problems_of(three))
    assert padded.y.shape == (4, 230) and np.all(np.asarray(padded.w)[3] == 0) and np.asarray(padded.c)[3] == 1
    monkeypatch.setattr(multistart, "PROBLEM_BUCKETS", False)
    plain = mj.fit(three, "chinchilla", search=search)
    monkeypatch.undo()
    fit = mj.fit(three, "chinchilla", search=search)
    np.testing.assert_allclose(fit.objective, plain.objective, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fit.coordinates, plain.coordinates, rtol=1e-6)
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        assert mj.fit(four, "chinchilla", search=search).objective.shape == (4,)
    compiled = " ".join(record.getMessage() for record in caplog.records)
    assert "jit(score)" in compiled  # the screen's program is per problem count ...
    assert "_map_pairs" not in compiled  # ... the LM programs are not: 3 and 4 problems share a bucket


def make_problems_of(runs) -> multistart.Problems:
    return multistart.make_problems(runs.losses.T, np.ones_like(runs.losses.T), "raw", "mean")


def test_domain_tied_starts_share_each_per_domain_parameter_up_to_the_jitter():
    """Search.tied_starts: every other start draws each per-domain parameter once for all k domains (plus a jitter
    of TIED_JITTER of its init width); the others stay independent, and an untied draw is the library's old one."""
    from mixlaw_jax.engine.space import TIED_JITTER

    k = 20
    space = make_space(mj.get_law("joint"), k, "raw", "default")
    key = jax.random.PRNGKey(3)
    u = np.asarray(space.to_law(space.sample(key, 64, 18.0, 22.0, tied=True)))
    names = mj.get_law("joint").unflatten(np.arange(space.size), k)
    for name in ("C", "gamma", "A_pure", "B_pure"):
        at = np.asarray(names[name])
        width = float(space.init_hi[at[0]] - space.init_lo[at[0]])
        spread = np.ptp(u[:, at], axis=1)
        assert np.all(spread[0::2] <= TIED_JITTER * width * (1 + 1e-9)), name
        assert np.all(spread[1::2] > 3 * TIED_JITTER * width), name
    untied = space.sample(key, 64, 18.0, 22.0)
    assert np.array_equal(np.asarray(untied), np.asarray(space.sample(key, 64, 18.0, 22.0, tied=False)))


def test_search_ties_starts_from_sixteen_domains_unless_told():
    from mixlaw_jax.options import TIED_STARTS_FROM_K

    assert not mj.Search().ties(TIED_STARTS_FROM_K - 1) and mj.Search().ties(TIED_STARTS_FROM_K)
    assert mj.Search(tied_starts=True).ties(3) and not mj.Search(tied_starts=False).ties(64)
    with pytest.raises(mj.MixlawError, match="tied_starts"):
        mj.Search(tied_starts="yes")
