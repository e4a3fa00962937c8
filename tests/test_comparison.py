"""Choosing a law (mixlaw_jax.comparison): splits, metrics, the candidate protocol, the result file, the figure,
the report section, `mixlaw compare`, and small comparisons on SlimPajama and RegMix."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file
from test_cli import FAST, HOLDOUT, TRAIN, small_table

import mixlaw_jax as mj
from mixlaw_jax import figures
from mixlaw_jax.cli import main
from mixlaw_jax.comparison import ALL, mixture_ids, weighted_metrics
from mixlaw_jax.report import build_report

#: tiny fits (the settings of test_cli's FAST)
TINY = mj.Search(64, ((16, 20), (4, 40)))


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return small_table(tmp_path_factory.mktemp("compare") / "runs.csv")


@pytest.fixture(scope="module")
def runs(csv):
    return mj.load_runs(csv, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")


# ------------------------------------------------------------------------------------------------------------ splits


def test_k_fold_partitions_the_mixtures(runs):
    folds = mj.KFold(3, seed=1).folds(runs)
    mixture = mixture_ids(runs)
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(runs.n_rows))  # every row held out exactly once
    owners = [set(mixture[f.test]) for f in folds]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1 :])  # a mixture in one fold only
    assert sorted(len(o) for o in owners) == [3, 3, 4]  # 10 mixtures dealt as evenly as possible
    for f in folds:
        assert np.array_equal(np.sort(np.concatenate([f.train, f.test])), np.arange(runs.n_rows))
    again = mj.KFold(3, seed=1).folds(runs)
    other = mj.KFold(3, seed=2).folds(runs)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_leave_one_scale_out_holds_out_each_size(runs):
    folds = mj.LeaveOneScaleOut().folds(runs)
    assert [f.label for f in folds] == ["N = 5e+07", "N = 1e+08", "N = 2e+08", "N = 4e+08", "N = 2e+09"]
    for f, n in zip(folds, [5e7, 1e8, 2e8, 4e8, 2e9]):
        assert (runs.n[f.test] == n).all() and (runs.n[f.train] != n).all()
    (largest,) = mj.LeaveOneScaleOut(largest_only=True).folds(runs)
    assert largest.label == "N = 2e+09" and largest.test.size == 30


@pytest.mark.parametrize(
    "split, message",
    [
        (mj.HeldOut("model_size > 1e12"), r"test fold 'model_size > 1e12' is empty"),
        (mj.HeldOut("model_size > 0"), r"training fold of 'model_size > 0' is empty \(every one of the 150 rows"),
        (mj.KFold(11), r"needs at least 11 distinct mixtures, one per fold; the table has 10"),
    ],
)
def test_a_split_that_empties_a_fold_is_an_error(runs, split, message):
    with pytest.raises(mj.MixlawError, match=message):
        split.folds(runs)


def test_leave_one_scale_out_needs_two_sizes(runs):
    one_size = runs.query("model_size == 1e8")
    with pytest.raises(mj.MixlawError, match=r"training fold is empty: the table has one model size \(N = 1e\+08\)"):
        mj.compare_laws(one_size, ["additive"], split=mj.LeaveOneScaleOut(), search=TINY)
    no_n = mj.load_runs(runs.frame, weights="weight_*", N=None, D="n_tokens", targets="x_loss", warn=False)
    with pytest.raises(mj.MixlawError, match=r"needs a model-size \(N\) column"):
        mj.LeaveOneScaleOut().folds(no_n)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: mj.KFold(1), r"KFold's k must be >= 2, not 1"),
        (lambda: mj.KFold(2.5), r"KFold's k must be a whole number, not 2.5"),
        (lambda: mj.KFold(3, seed=-1), r"KFold's seed must be in \[0, "),
        (lambda: mj.HeldOut(""), r"HeldOut's query must be a non-empty selection string"),
        (lambda: mj.LeaveOneScaleOut(largest_only="yes"), r"largest_only must be True or False, not 'yes'"),
    ],
)
def test_split_options_are_validated_where_made(make, message):
    with pytest.raises(mj.MixlawError, match=message):
        make()


def test_a_fold_with_one_distinct_held_out_loss_is_an_error(runs):
    first = runs.weight_columns[0]
    one_row = f"model_size > 1e9 and n_tokens > 5e9 and {first} == {float(runs.frame[first].iloc[-1])!r}"
    with pytest.raises(mj.MixlawError, match=r"hold 1 distinct observed 'x_loss' loss; R² and Spearman's rho need"):
        mj.compare_laws(runs, ["additive"], split=mj.HeldOut(one_row), search=TINY)


# ----------------------------------------------------------------------------------------------------------- metrics


def test_metrics_match_hand_computed_values():
    observed = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.1, 3.0, 3.0, 3.6])
    m = weighted_metrics(observed, predicted, np.ones(4))
    # MRE = 100/4 (0.1/1 + 1/2 + 0 + 0.4/4); R² = 1 - (0.01 + 1 + 0 + 0.16) / 5
    assert m["mre"][0] == pytest.approx(25 * (0.1 + 0.5 + 0.1))
    assert m["r2"][0] == pytest.approx(1 - 1.17 / 5)
    # ranks of the predictions 1, 2.5, 2.5, 4 against 1, 2, 3, 4: rho = 4.5 / sqrt(4.5 * 5)
    assert m["spearman"][0] == pytest.approx(4.5 / np.sqrt(22.5))
    # counts (2, 0, 1, 1): the multiset L = 1, 1, 3, 4 and L̂ = 1.1, 1.1, 3, 3.6
    w = weighted_metrics(observed, predicted, np.array([[2.0, 0.0, 1.0, 1.0]]))
    assert w["mre"][0] == pytest.approx(25 * (0.1 + 0.1 + 0 + 0.1))
    spread = 2 * (1 - 2.25) ** 2 + (3 - 2.25) ** 2 + (4 - 2.25) ** 2
    assert w["r2"][0] == pytest.approx(1 - (2 * 0.01 + 0 + 0.16) / spread)
    assert w["spearman"][0] == pytest.approx(1.0)  # both multisets have ranks 1.5, 1.5, 3, 4
    constant = weighted_metrics(observed, np.full(4, 2.0), np.ones(4))
    assert constant["spearman"][0] == 0.0  # constant predictions rank nothing
    assert np.isnan(weighted_metrics(observed, predicted, np.array([[0.0, 3.0, 0.0, 0.0]]))["r2"][0])


# -------------------------------------------------------------------------------------------------------- candidates


class Oracle:
    """A candidate outside the law machinery: predicts the table's losses times ``factor``, looked up by the held-out
    rows' labels; records what it was shown."""

    def __init__(self, name, table, factor):
        self.name, self.table, self.factor, self.shown = name, table, factor, []

    def fit(self, train):
        return self

    def predict(self, test):
        self.shown.append(test)
        losses = self.table.frame.loc[test.frame.index, list(self.table.targets)]
        return losses * self.factor


def test_candidates_follow_one_protocol_and_the_best_one_wins(runs):
    close, far = Oracle("close", runs, 1.001), Oracle("far", runs, 1.05)
    c = mj.compare_laws(runs, [close, far], split=mj.KFold(4, seed=0), n_replicates=200)
    assert all(np.isnan(t.losses).all() and t.frame["x_loss"].isna().all() for t in close.shown)  # blinded
    assert c.candidates == ("close", "far") and list(c.folds["fold"]) == [f"fold {i}/4" for i in range(1, 5)]
    pooled = c.scores[c.scores["fold"] == ALL].set_index(["candidate", "metric"])
    assert pooled.loc[("close", "mre"), "value"] == pytest.approx(0.1)
    assert pooled.loc[("far", "mre"), "value"] == pytest.approx(5.0)
    assert (c.scores["low"] <= c.scores["high"]).all()
    assert np.isfinite(c.scores[["value", "low", "high"]].to_numpy()).all()
    winner = c.winners("mre").loc["x_loss"]
    assert winner["winner"] == "close" and winner["runner_up"] == "far"
    assert not winner["intervals_overlap"] and winner["fraction_better"] == 1.0
    assert c.winners("spearman").loc["x_loss", "intervals_overlap"]  # a constant factor keeps the ranking


def test_a_law_is_a_candidate_whose_fit_is_a_predictor(runs):
    law = mj.LawCandidate("additive", search=TINY)
    fitted = law.fit(runs.query(TRAIN))  # the training rows of the largest-size split: the CLI test's shapes
    assert law.name == "additive" and isinstance(law, mj.Candidate)
    assert isinstance(fitted, mj.FitResult) and isinstance(fitted, mj.Predictor)


@pytest.mark.parametrize(
    "candidates, message",
    [
        (["additive", "additive"], r"candidate 'additive' is named more than once"),
        ([], r"candidates must be a non-empty list"),
        ([object()], r"a candidate must be a law name, a mixlaw_jax.Law or an object with a name and fit"),
        (["nonsense"], r"unknown law 'nonsense'"),
    ],
)
def test_bad_candidates_are_errors(runs, candidates, message):
    with pytest.raises(mj.MixlawError, match=message):
        mj.compare_laws(runs, candidates, search=TINY)


def test_malformed_predictions_are_errors(runs):
    class Short(Oracle):
        def predict(self, test):
            return super().predict(test).iloc[:-1]

    with pytest.raises(mj.MixlawError, match=r"candidate 'short', fold 'fold 1/2': \d+ predicted rows for \d+ test"):
        mj.compare_laws(runs, [Short("short", runs, 1.0)], split=mj.KFold(2))


def test_a_comparison_saves_loads_and_draws(runs, tmp_path):
    c = mj.compare_laws(runs, [Oracle("a", runs, 1.01), Oracle("b", runs, 0.98)], split=mj.LeaveOneScaleOut())
    c.save(tmp_path / "c.json")
    back = mj.load_comparison(tmp_path / "c.json")
    assert back.split == mj.LeaveOneScaleOut() and back.candidates == ("a", "b")
    pd.testing.assert_frame_equal(back.scores, c.scores)
    assert back.winners("mre").loc["x_loss", "winner"] == "a"
    assert json.loads((tmp_path / "c.json").read_text())["kind"] == "comparison"
    assert c.table("r2", fold="N = 5e+07").shape == (1, 2)
    per_fold = c.per_fold("mre")
    assert per_fold.shape == (5, 2) and per_fold.loc[("N = 2e+09", "x_loss"), "a"] == pytest.approx(1.0)
    fig = figures.law_comparison(c)
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000 and len(fig.axes) == 3


# ------------------------------------------------------------------------------------------------------ real tables


def test_compare_laws_on_slimpajama(slimpajama):
    c = mj.compare_laws(
        slimpajama,
        ["additive", "joint"],
        split=mj.LeaveOneScaleOut(largest_only=True),
        targets=["arxiv_loss"],
        search=TINY,
        n_replicates=200,
    )
    assert c.folds.loc[0, "test_rows"] == 44 and c.folds.loc[0, "test_mixtures"] == 4
    pooled = c.scores.set_index(["candidate", "metric"])
    for law in ("additive", "joint"):  # the 2.7e9 runs, extrapolated from the sizes up to 1.2e9
        assert 0.5 < pooled.loc[(law, "mre"), "value"] < 6
        assert pooled.loc[(law, "spearman"), "value"] > 0.9
    assert c.winners().loc["arxiv_loss", "winner"] in ("additive", "joint")


def test_compare_laws_on_regmix():
    from benchmarks import regmix  # registers additive_mixture when the package does not yet

    tables = regmix.load_tables(shared_file("regmix/train_mixture_1m.csv").parent)
    frame = pd.concat([tables["train"].iloc[:128].assign(part="train"), tables["1m"].iloc[:64].assign(part="test")])
    table = mj.load_runs(
        frame, weights=regmix.weight_columns(frame), N=None, D=None, targets=[regmix.PRIMARY], warn=False
    )
    c = mj.compare_laws(
        table, ["mixing_exp", "additive_mixture"], split=mj.HeldOut("part == 'test'"), search=TINY, n_replicates=200
    )
    pooled = c.scores.set_index(["candidate", "metric"])
    for law in ("mixing_exp", "additive_mixture"):
        assert pooled.loc[(law, "spearman"), "value"] > 0.7
        assert pooled.loc[(law, "mre"), "value"] < 3
    assert c.resampled == "mixtures" and c.folds.loc[0, "test_mixtures"] == 64


# ------------------------------------------------------------------------------------------ command line and report


def test_mixlaw_compare_help_names_the_splits(capsys):
    assert main(["compare", "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "mixlaw compare runs.csv" in text
    assert all(s in text for s in ("kfold", "scale", "largest", "--holdout", "--criterion"))


def test_mixlaw_compare(csv, tmp_path, capsys):
    out, png = tmp_path / "c.json", tmp_path / "c.png"
    code = main(
        ["compare", str(csv), "--law", "additive", "--law", "chinchilla", "--split", "largest"]
        + [*FAST, "--replicates", "100", "--out", str(out), "--figure", str(png)]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "the largest model size held out: 1 fold(s), 30 held-out rows" in text and "held-out Spearman rho" in text
    c = mj.load_comparison(out)
    assert c.candidates == ("additive", "chinchilla") and c.n_replicates == 100
    mre = c.scores.set_index(["candidate", "metric"])["value"]
    assert f"{mre[('additive', 'mre')]:.3f} [" in text and f"{mre[('chinchilla', 'mre')]:.3f} [" in text
    assert re.search(rf"^x_loss +{c.winners().loc['x_loss', 'winner']} ", text, re.MULTILINE)  # the winner row
    assert png.stat().st_size > 1000
    code = main(["compare", str(csv), "--law", "additive", "--holdout", "model_size > 1e12", *FAST])
    assert code == 2 and "test fold 'model_size > 1e12' is empty" in capsys.readouterr().err
    code = main(["compare", str(csv), "--law", "additive", "--holdout", HOLDOUT, "--split", "scale", *FAST])
    assert code == 2 and "--holdout and --split scale are two splits" in capsys.readouterr().err


def test_report_section_choosing_a_law(runs, tmp_path):
    quiet = dict(search=TINY, replicates=0, jobs=1, log=lambda line: None)
    result = build_report(runs, ["additive", "chinchilla"], tmp_path / "r", holdout=HOLDOUT, **quiet)
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<h2>Choosing a law</h2>" in page and "law_comparison" in result.figures
    saved = mj.load_comparison(tmp_path / "r" / "comparison.json")
    assert saved.split == mj.HeldOut(HOLDOUT)
    # the default section scores the report's own fits: the same held-out MRE as the score table
    mre = saved.scores.set_index(["candidate", "metric"])["value"]
    for r in result.laws:
        assert mre[(r.law, "mre")] == pytest.approx(r.held_out_mre["x_loss"])
    # asked for a split, it refits every law on each fold (here the rows of the held-out selection; one law: a
    # comparison needs no second law, and Chinchilla's fits are the cheapest)
    largest = mj.LeaveOneScaleOut(largest_only=True)
    refitted = build_report(runs, ["chinchilla"], tmp_path / "k", comparison=largest, **quiet).comparison
    assert refitted.split == largest and list(refitted.folds["fold"]) == ["N = 2e+09"]
    assert refitted.winners().loc["x_loss", "runner_up"] is None
    refit_mre = refitted.scores.set_index(["candidate", "metric"]).loc[("chinchilla", "mre"), "value"]
    assert refit_mre == pytest.approx(mre[("chinchilla", "mre")])
