"""A fit that checks itself (issue 27): a best point counts as found only when several final starts agree on it;
an unconfirmed one gets extra rounds of search, and one still unconfirmed is flagged, warned about and reported."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import two_domain_frame as frame

import mixlaw_jax as mj
from mixlaw_jax.simulate import random_mixtures, simulate

TINY = mj.Search(64, ((8, 20), (4, 40)))


@pytest.fixture(scope="module")
def runs():
    return mj.load_runs(frame(), weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")


@pytest.fixture(scope="module")
def rugged():
    """A joint-law table with 5 domains fitted with far too little search to agree on anything."""
    law = mj.get_law("joint")
    rng = np.random.default_rng(3)
    u = np.concatenate(
        [
            [1.5],
            rng.uniform(-1, 1, 5),
            rng.uniform(0.2, 1, 5),
            rng.uniform(6, 8, 5),
            [0.8, 0.3],
            rng.uniform(7, 9, 5),
            [0.8, 0.3],
        ]
    )
    h = np.repeat(random_mixtures(16, 5, seed=3), 6, axis=0)
    n = np.tile(np.repeat([1e8, 4e8], 3), 16)
    d = np.tile([2e9, 5e9, 1e10], 32)
    loss = simulate(law, u, n, d, h, noise=3e-3, seed=3)
    table = {f"w{i}": h[:, i] for i in range(5)} | {"N": n, "D": d, "loss": loss}
    return mj.load_runs(pd.DataFrame(table), weights="w*", N="N", D="D", targets="loss")


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: mj.Confirmation(starts=0), "confirmation starts must be >= 1"),
        (lambda: mj.Confirmation(rtol=1.0), r"confirmation rtol must lie in \[0, 1\)"),
        (lambda: mj.Confirmation(rounds=-1), "confirmation rounds must be >= 0"),
        (lambda: mj.Search(64, ((8, 20), (2, 40)), confirm=mj.Confirmation(starts=3)), "final stage keeps 2"),
        (lambda: mj.Search(confirm={"starts": 3}), "confirm must be a mixlaw_jax.Confirmation, not dict"),
    ],
)
def test_a_confirmation_rule_refuses_a_bad_value_where_it_is_made(make, needle):
    with pytest.raises(mj.MixlawError, match=needle):
        make()


def test_agreement_counts_the_final_starts_within_rtol_of_the_best():
    rule = mj.Confirmation(starts=2, rtol=1e-3)
    f = np.array([[1.0, 1.0005, 1.01], [2.0, 3.0, np.inf], [np.inf, np.inf, np.inf]])
    assert rule.agreeing(f).tolist() == [2, 1, 0]
    assert rule.confirmed(f).tolist() == [True, False, False]
    # starts that fit exactly agree, whatever the ratio of their rounding-level objectives
    assert rule.agreeing(np.array([[1e-32, 5e-31, 1e-3]])).tolist() == [2]
    # by default three must agree, or every final start where the final stage keeps fewer
    assert mj.Confirmation().needed(16) == 3 and mj.Confirmation().needed(2) == 2


def test_a_confirmed_target_costs_nothing_more(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", mj.MixlawWarning)
        checked = mj.fit(runs, "chinchilla", search=TINY)
    d = checked.diagnostics["x_loss"]
    assert d.confirmed and d.extra_rounds == 0 and d.n_in_basin >= 3
    reported = mj.fit(runs, "chinchilla", search=mj.Search(64, TINY.schedule, confirm=mj.Confirmation(rounds=0)))
    np.testing.assert_array_equal(checked.coordinates, reported.coordinates)
    assert checked.objective[0] == reported.objective[0]


def test_an_unconfirmed_target_searches_more_then_is_flagged_warned_and_summarised(rugged):
    search = mj.Search(32, ((4, 5),), confirm=mj.Confirmation(starts=4, rtol=0.0, rounds=2))
    with pytest.warns(mj.MixlawWarning, match="'loss' is not confirmed"):
        checked = mj.fit(rugged, "joint", search=search)
    d = checked.diagnostics["loss"]
    assert d.confirmed is False and d.extra_rounds == 2
    assert any("best point not confirmed" in flag and "after 2 extra round(s)" in flag for flag in d.flags)
    assert not checked.summary().loc["loss", "confirmed"]
    with pytest.warns(mj.MixlawWarning, match="'loss' is not confirmed"):
        only_reported = mj.fit(
            rugged, "joint", search=mj.Search(32, ((4, 5),), confirm=mj.Confirmation(starts=4, rtol=0.0, rounds=0))
        )
    assert only_reported.diagnostics["loss"].extra_rounds == 0
    # the extra rounds only add starts: the best point never gets worse
    assert checked.objective[0] <= only_reported.objective[0]


def test_the_confirmation_rule_and_outcome_survive_a_file(runs, tmp_path):
    rule = mj.Confirmation(starts=2, rtol=1e-3, rounds=1)
    result = mj.fit(runs, "chinchilla", search=mj.Search(64, TINY.schedule, confirm=rule))
    result.save(tmp_path / "fit.json")
    loaded = mj.load_fit(tmp_path / "fit.json")
    assert loaded.settings.search.confirm == rule
    assert loaded.diagnostics == result.diagnostics


def test_a_bootstrap_reports_the_replicates_left_unconfirmed(runs, tmp_path):
    full = mj.fit(runs, "chinchilla", search=TINY)
    search = mj.Search(64, ((8, 20), (2, 40)), warm_starts=1)
    boot = mj.bootstrap(runs, "chinchilla", n_replicates=6, search=search, full_fit=full)
    assert boot.confirmed.shape == (6, 1)
    fraction = boot.fraction_unconfirmed["x_loss"]
    assert fraction == pytest.approx(np.mean(~boot.confirmed[:, 0]))
    boot.save(tmp_path / "boot.json")
    np.testing.assert_array_equal(mj.load_bootstrap(tmp_path / "boot.json").confirmed, boot.confirmed)
