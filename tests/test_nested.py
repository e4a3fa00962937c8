"""Ye et al.'s nested pipeline (mixlaw_jax.nested): known truth, one engine call per stage, bad input, bootstrap
coverage, the compare_laws candidate and the `mixlaw nested` command.

The synthetic truth, per target t (Chinchilla-like, with the mixture in the size term):

    L_t(N, D, h) = c_t + a_t exp(tau_t . h) / N^alpha_t + B_t / D^beta_t,

so each run (N, h) follows the step law E + B / D^beta exactly, each mixture at D* the size law E + A / N^alpha, and
at (N*, D*) the losses follow Ye et al.'s mixing_exp law c + k exp(t . h) with c = c_t + B_t / D*^beta_t,
k = a_t / N*^alpha_t, t = tau_t: the pipeline can recover the truth exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax import cli, nested
from mixlaw_jax.simulate import random_mixtures

K = 3
SIZES = (5e7, 1e8, 2e8, 4e8)
TOKENS = (1e9, 2e9, 3e9, 5e9, 8e9)
N_STAR, D_STAR = 1.6e9, 3.2e10
#: The largest size is checkpointed at these multiples of TOKENS.
LATER = 1.3
#: per target: c, a, alpha, B, beta, tau
TRUTH = {
    "x_loss": (1.8, 60.0, 0.25, 400.0, 0.3, np.array([-1.0, 0.5, 0.8])),
    "y_loss": (2.2, 40.0, 0.22, 300.0, 0.28, np.array([0.6, -1.2, 0.3])),
}
#: Agreement with the truth expected from tables with ``point_noise`` 2e-6 (extrapolated 4x in N and D).
RTOL = 2e-4
#: Bootstrap replicates of the tests that draw them (the same shapes: the compiled programs are shared).
REPLICATES = 25
#: A law of nothing at all (neither N, D nor h): not a mixing law.
CONSTANT = mj.Law.from_predict(
    "test_nested_constant", (mj.Param("E"),), lambda p, x: p["E"] + 0.0 * x.log_n, uses_n=False, uses_d=False
)
#: Small searches; no extra confirmation rounds (each would compile programs for its own number of problems).
SEARCH = mj.NestedSearch(
    step=mj.Search(64, ((8, 40), (4, 100)), confirm=mj.Confirmation(rounds=0)),
    size=mj.Search(64, ((8, 40), (4, 100)), confirm=mj.Confirmation(rounds=0)),
    mixing=mj.Search(256, ((16, 40), (4, 150)), confirm=mj.Confirmation(rounds=0)),
)


def true_loss(target: str, n, d, h) -> np.ndarray:
    c, a, alpha, b, beta, tau = TRUTH[target]
    return c + a * np.exp(np.asarray(h) @ tau) / np.asarray(n) ** alpha + b / np.asarray(d) ** beta


def synthetic_frame(
    n_mixtures=12, *, run_noise=0.0, point_noise=2e-6, seed=0, sizes=SIZES, tokens=TOKENS
) -> pd.DataFrame:
    """Every mixture at every size and checkpoint (the largest size's checkpoints at LATER x the others', so that the
    step stage's rows are the union of two grids); ``run_noise``: a relative offset per run and target,
    ``point_noise``: relative noise per loss (a little, so that no fit ends at an objective of 0, where no two starts
    agree to a relative tolerance and the engine's confirmation rounds would run for nothing)."""
    h = random_mixtures(n_mixtures, K, min_weight=0.05, seed=seed)
    rng = np.random.default_rng(seed + 1)
    rows = []
    for hm in h:
        for n in sizes:
            offset = {t: run_noise * rng.standard_normal() for t in TRUTH}
            for d in np.asarray(tokens) * (LATER if n == SIZES[-1] else 1.0):
                row = {f"weight_{i}": w for i, w in enumerate(hm)} | {"N": n, "D": d}
                noise = {t: point_noise * rng.standard_normal() for t in TRUTH}
                rows.append(row | {t: true_loss(t, n, d, hm) * (1 + offset[t] + noise[t]) for t in TRUTH})
    return pd.DataFrame(rows)


def load(frame: pd.DataFrame) -> mj.RunTable:
    return mj.load_runs(frame, weights="weight_*", N="N", D="D", targets="*_loss")


def new_mixtures(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame(random_mixtures(n, K, min_weight=0.05, seed=99), columns=[f"weight_{i}" for i in range(K)])


@pytest.fixture(scope="module")
def exact():
    """The pipeline on the noise-free table, with the engine calls it made (problems per call)."""
    calls = []

    def counting(space, x, problems, search, **kw):
        calls.append(problems.y.shape)
        return solve(space, x, problems, search, **kw)

    solve = nested.solve
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nested, "solve", counting)
        result = mj.nested_pipeline(load(synthetic_frame()), N=N_STAR, D=D_STAR, n_replicates=REPLICATES, search=SEARCH)
    return result, calls


def test_the_pipeline_recovers_the_truths_predictions_at_the_target_scale(exact):
    result, _ = exact
    frame = new_mixtures()
    predicted = result.predict(frame)
    for t in TRUTH:
        truth = true_loss(t, N_STAR, D_STAR, frame.to_numpy())
        np.testing.assert_allclose(predicted[t].to_numpy(), truth, rtol=RTOL)
    # each stage's own predictions: every run at D*, every mixture at (N*, D*)
    step = result.step.problems
    runs = load(synthetic_frame())
    first = [np.flatnonzero(runs.run_id == r)[0] for r in range(runs.n_runs)]
    for label, row in step.iterrows():
        r = int(label.split(":")[0].removeprefix("run "))
        i = first[r]
        expected = true_loss(row["target"], runs.n[i], D_STAR, runs.h[i])
        assert row["prediction"] == pytest.approx(expected, rel=RTOL), label
    size = result.size.problems
    for label, row in size.iterrows():
        m = int(label.split(":")[0].removeprefix("mixture "))
        expected = true_loss(row["target"], N_STAR, D_STAR, result.mixtures.iloc[m, :K].to_numpy(float))
        assert row["prediction"] == pytest.approx(expected, rel=RTOL), label
    assert result.excluded.empty


def test_h_star_at_the_target_scale_is_the_truths(exact):
    result, _ = exact
    best = result.optimal_mixture(targets=["x_loss"], weight_bounds="simplex", n_starts=32)
    h = best.mixture("x_loss").to_numpy()[0]
    # the truth's x_loss decreases in h_0 (tau = -1.0, the smallest): h* puts all weight on domain 0
    np.testing.assert_allclose(h, [1.0, 0.0, 0.0], atol=1e-6)


def test_every_stage_is_one_engine_call_over_all_its_problems(exact):
    result, calls = exact
    n_runs, n_mixtures, n_targets, replicates = 12 * len(SIZES), 12, len(TRUTH), REPLICATES
    # stage (a): (run, target) problems on the distinct D; (b): (mixture, target) x (point + replicates) on the
    # distinct N; (c): target x (point + replicates) on the mixtures
    assert calls == [
        (n_runs * n_targets, 2 * len(TOKENS)),  # the union of the two checkpoint grids
        (n_mixtures * n_targets * (1 + replicates), len(SIZES)),
        (n_targets * (1 + replicates), n_mixtures),
    ]
    summary = result.summary()
    assert summary["engine_problems"].tolist() == [c[0] for c in calls]
    assert summary["problems"].tolist() == [n_runs * n_targets, n_mixtures * n_targets, n_targets]
    assert (summary["converged"] == 1.0).all()
    assert result.bootstrap.n_replicates == replicates


def test_bootstrap_intervals_hold_the_truth():
    frame = synthetic_frame(12, run_noise=0.003, seed=3)
    result = mj.nested_pipeline(load(frame), N=N_STAR, D=D_STAR, n_replicates=REPLICATES, level=0.9, search=SEARCH)
    grid = new_mixtures()
    interval = result.predict_interval(grid)
    for t in TRUTH:
        truth = true_loss(t, N_STAR, D_STAR, grid.to_numpy())
        inside = (interval[f"{t}_lo"] <= truth) & (truth <= interval[f"{t}_hi"])
        assert inside.mean() >= 0.8, (t, inside.mean())
        assert (interval[f"{t}_hi"] > interval[f"{t}_lo"]).all()
    h = result.mixture_interval(n_starts=8)
    assert ((h["lo"] <= h["h_star"] + 1e-9) & (h["h_star"] <= h["hi"] + 1e-9)).all()


def test_mixtures_at_too_few_sizes_and_runs_with_too_few_checkpoints_are_named_and_left_out():
    frame = synthetic_frame()
    first = frame[[f"weight_{i}" for i in range(K)]].iloc[0]
    mixture0 = (frame[first.index] == first).all(axis=1)
    frame = frame[~(mixture0 & frame["N"].isin(SIZES[:2]))].reset_index(drop=True)  # mixture 0: 2 sizes only
    # rows 10-14 and 15-19: mixture 1 at the two smallest sizes
    frame.loc[12:14, "x_loss"] = np.nan  # the first run keeps 2 of its 5 x_loss checkpoints: too few
    frame.loc[18:19, "x_loss"] = np.nan  # the second keeps 3: enough
    with pytest.warns(mj.MixlawWarning) as caught:
        result = mj.nested_pipeline(load(frame), N=N_STAR, D=D_STAR, search=SEARCH)
    messages = " | ".join(str(w.message) for w in caught)
    assert "1 (run, target) pairs have fewer checkpoints than the step law's 3 parameters" in messages
    assert "fewer model sizes than the size law's 3 parameters" in messages
    step = result.excluded.query("stage == 'step'")
    assert step["target"].tolist() == ["x_loss"] and step["unit"].iloc[0].endswith("(row 10, N = 5e+07)")
    assert step["reason"].iloc[0].startswith("2 checkpoints")
    size = result.excluded.query("stage == 'size'")
    assert len(size) == len(TRUTH) and size["unit"].str.startswith("mixture 0").all()
    assert "2 model sizes (2e+08, 4e+08)" in size["reason"].iloc[0]
    assert result.mixing.n_rows == 11
    assert "mixture 0: x_loss" not in result.size.problems.index
    assert result.mixtures["fitted"].tolist() == [False] + [True] * 11  # mixture 0 is predicted, not fitted


def test_the_command_prints_the_mixtures_left_out_of_the_mixing_fit_apart(tmp_path, capsys):
    frame = synthetic_frame()
    first = frame[[f"weight_{i}" for i in range(K)]].iloc[0]
    frame = frame[~((frame[first.index] == first).all(axis=1) & frame["N"].isin(SIZES[:2]))]  # mixture 0: 2 sizes
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    arguments = ["nested", str(path), "--N", "N", "--D", "D", "--budget", f"{N_STAR},{D_STAR}", "--quiet"]
    assert cli.main(arguments + ["--starts", "256", "--schedule", "16x40,4x150"]) == 0
    printed = capsys.readouterr().out
    fitted, _, other = printed.partition("for the table's other mixtures (seen at fewer than 3 sizes: extrapolations)")
    assert "for the fitted mixtures" in fitted and other
    assert [line.split()[0] for line in other.strip().splitlines()[3:]] == ["0"]  # below ":", the columns, "mixture"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"N": 0}, r"N \(the target model size\) must be > 0, not 0.0"),
        ({"D": -1e9}, r"D \(the target training tokens\) must be > 0"),
        ({"D": float("nan")}, "D must be finite"),
        ({"mixing_law": "joint"}, "mixing law must be a mixture-only law.*'joint' uses N and D"),
        ({"mixing_law": CONSTANT}, "must depend on the mixture; law 'test_nested_constant' does not"),
        ({"n_replicates": 1}, "n_replicates must be 0"),
        ({"search": 5}, "search must be a mixlaw_jax.NestedSearch"),
    ],
)
def test_bad_options_are_errors_naming_them(options, message):
    with pytest.raises(mj.MixlawError, match=message):
        mj.nested_pipeline(load(synthetic_frame(4)), **({"N": N_STAR, "D": D_STAR} | options))


def test_tables_that_cannot_feed_a_stage_are_errors_before_any_fit(monkeypatch):
    monkeypatch.setattr(nested, "solve", None)  # found before any engine call
    two_sizes = synthetic_frame(6, sizes=SIZES[:2])
    with pytest.raises(mj.MixlawError, match=r"no mixture is seen at 3 or more model sizes"):
        mj.nested_pipeline(load(two_sizes), N=N_STAR, D=D_STAR, search=SEARCH)
    two_checkpoints = synthetic_frame(6, tokens=TOKENS[:2])
    with pytest.raises(mj.MixlawError, match=r"no run has 3 or more checkpoints"):
        mj.nested_pipeline(load(two_checkpoints), N=N_STAR, D=D_STAR, search=SEARCH)
    few_mixtures = synthetic_frame(4)  # mixing_exp with k = 3 has 5 parameters
    with pytest.raises(
        mj.MixlawError, match=r"'x_loss' has 4 mixtures seen at 3 or more model sizes, fewer than the 5"
    ):
        mj.nested_pipeline(load(few_mixtures), N=N_STAR, D=D_STAR, search=SEARCH)
    no_d = mj.load_runs(synthetic_frame(4), weights="weight_*", N="N", targets="*_loss")
    with pytest.raises(mj.MixlawError, match=r"needs D \(training tokens\)"):
        mj.nested_pipeline(no_d, N=N_STAR, D=D_STAR)


def test_the_pipeline_is_a_compare_laws_candidate_predicting_each_held_out_point():
    runs = load(synthetic_frame())
    candidate = mj.NestedCandidate(search=SEARCH)
    assert isinstance(candidate, mj.Candidate) and candidate.name == "nested mixing_exp"
    # the largest model's last two checkpoints: two (N, D) points, one pipeline each, from every other row
    held_out = mj.HeldOut(f"N > 3e8 and D > {TOKENS[-3] * LATER}")
    comparison = mj.compare_laws(runs, [candidate], split=held_out, n_replicates=20)
    assert comparison.folds["test_rows"].tolist() == [2 * 12]
    mre = comparison.scores.query("metric == 'mre'").set_index("target")["value"]
    assert (mre < 0.02).all(), mre  # %


def test_the_command_prints_predictions_and_h_star(exact, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    synthetic_frame().to_csv(path, index=False)
    out = tmp_path / "nested.json"
    arguments = ["nested", str(path), "--N", "N", "--D", "D", "--budget", f"{N_STAR},{D_STAR}", "--quiet"]
    assert cli.main(arguments + ["--starts", "256", "--schedule", "16x40,4x150", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "h* at N = 1.6e+09, D = 3.2e+10 (mean of x_loss, y_loss)" in printed
    best = exact[0].optimal_mixture()  # the truth's h*: the same from any search that recovers it
    for domain, value in zip(best.domains, best.h[0, -1]):
        assert f"{domain:28s} {value:.4f}" in printed
    assert "predicted losses at N* = 1.6e+09, D* = 3.2e+10 for the fitted mixtures" in printed
    assert mj.load_runs(path, weights="weight_*", N="N", D="D", targets="*_loss").n_runs == 48
    assert out.exists()
    assert cli.main(arguments[:-3] + ["--budget", "1e9"]) == 2
    assert "--budget takes two numbers N,D, not 1" in capsys.readouterr().err
