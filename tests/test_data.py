import re
import warnings

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax.errors import MixlawWarning

constant_design = pytest.mark.filterwarnings("ignore::mixlaw_jax.errors.MixlawWarning")


def frame(rows=6):
    rng = np.random.default_rng(0)
    h = rng.dirichlet(np.ones(3), rows)
    return pd.DataFrame(
        {
            "w_a": h[:, 0],
            "w_b": h[:, 1],
            "w_c": h[:, 2],
            "N": 1e8,
            "D": np.arange(1, rows + 1) * 1e9,
            "loss_x": rng.uniform(2, 3, rows),
            "loss_y": rng.uniform(2, 3, rows),
        }
    )


def load(f, **kwargs):
    return mj.load_runs(f, weights="w_*", N="N", D="D", targets="loss_*", **kwargs)


def checkpoints():
    """Two runs (mixtures) of three checkpoints each; row 6 repeats row 2 exactly, row 7 is run 1's 3e9
    checkpoint logged again at 3.002e9 tokens with another loss."""
    f = pd.DataFrame(
        {
            "w_a": [0.2] * 3 + [0.6] * 3,
            "w_b": [0.8] * 3 + [0.4] * 3,
            "N": 1e8,
            "D": [1e9, 2e9, 3e9] * 2,
            "loss": [3.0, 2.8, 2.7, 3.1, 2.9, 2.75],
        }
    )
    extra = pd.DataFrame({"w_a": [0.2, 0.6], "w_b": [0.8, 0.4], "N": 1e8, "D": [2e9, 3.002e9], "loss": [2.8, 2.65]})
    return pd.concat([f, extra], ignore_index=True)


def load_checkpoints(f, **kwargs):
    return mj.load_runs(f, weights="w_*", N="N", D="D", targets=["loss"], **kwargs)


def test_globs_resolve_in_column_order():
    runs = load(frame())
    assert runs.weight_columns == ("w_a", "w_b", "w_c")
    assert runs.targets == ("loss_x", "loss_y")
    assert runs.h.shape == (6, 3) and runs.losses.shape == (6, 2)


@constant_design
def test_runs_are_distinct_mixture_and_size_pairs_unless_a_column_is_given():
    f = frame()
    f.loc[:, ["w_a", "w_b", "w_c"]] = [0.2, 0.3, 0.5]
    f["N"] = [1e8, 1e8, 1e8, 2e8, 2e8, 2e8]
    assert load(f).n_runs == 2
    f["run"] = list("abcdef")
    assert load(f, run_id="run").n_runs == 6


def test_missing_losses_are_excluded_per_target_and_reported():
    f = frame()
    f.loc[2, "loss_y"] = np.nan
    runs = load(f)
    assert runs.missing_report() == {"loss_y": [2]}
    assert runs.observed.sum(axis=0).tolist() == [6, 5]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.drop(columns="N"), "unknown size column 'N'"),
        (lambda f: f.assign(N=["x"] + [1e8] * 5), "column 'N', row 0: non-numeric value 'x'"),
        (lambda f: f.assign(N=[1e8, True] + [1e8] * 4), "column 'N', row 1: non-numeric value True"),
        (
            lambda f: f.assign(N=pd.Series([1e8, 1e8, 1 + 2j] + [1e8] * 3, dtype=object)),
            "column 'N', row 2: non-numeric value (1+2j)",
        ),
        (lambda f: f.assign(N=[1e8, None] + [1e8] * 4), "column 'N', row 1: missing value"),
        (lambda f: f.assign(w_b=[np.nan] + list(f.w_b[1:])), "column 'w_b', row 0: missing value"),
        (lambda f: f.assign(D=[0.0] + [1e9] * 5), "column 'D', row 0: value 0.0 must be > 0"),
        (lambda f: f.assign(w_a=f.w_a + 0.1), "row 0: weights sum to"),
        (lambda f: f.assign(w_a=0.0, w_b=0.0, w_c=0.0), "row 0: every weight is 0"),
        (lambda f: f.assign(w_a=-f.w_a), "negative weight"),
        (lambda f: f.assign(N=[np.inf] + [1e8] * 5), "row 0: value inf is not finite"),
        (lambda f: f.assign(loss_x=[2.0, -np.inf] + [2.0] * 4), "column 'loss_x', row 1: value -inf is not finite"),
        (lambda f: f.assign(loss_y=np.nan), "target column 'loss_y' has no values"),
        (lambda f: f.iloc[:0], "empty"),
    ],
)
def test_bad_input_names_the_column_row_and_value(edit, message):
    with pytest.raises(mj.MixlawError, match=re.escape(message)):
        load(edit(frame()))


def test_rows_are_named_by_their_labels():
    f = frame().set_axis([f"run{i}" for i in range(6)])
    f.loc["run4", "D"] = -1.0
    with pytest.raises(mj.MixlawError, match="column 'D', row run4: value -1.0 must be > 0"):
        load(f)


def test_long_cells_are_shortened_in_messages():
    f = frame().astype({"N": object})
    f.loc[3, "N"] = "x" * 500
    with pytest.raises(mj.MixlawError, match=r"column 'N', row 3: non-numeric value 'x{56}\.\.\.$"):
        load(f)


def test_misspelt_column_gets_a_suggestion():
    with pytest.raises(mj.MixlawError, match="did you mean 'loss_x'"):
        mj.load_runs(frame(), weights="w_*", N="N", D="D", targets=["lossx"])
    with pytest.raises(mj.MixlawError, match="unknown token column 'd'; did you mean 'D'"):
        mj.load_runs(frame(), weights="w_*", N="N", D="d", targets="loss_*")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"N": "loss_x"}, "column 'loss_x' is used both as a target and as N"),
        ({"D": "w_a"}, "column 'w_a' is used both as a weight and as D"),
        ({"N": "[ND]"}, "the size column '\\[ND\\]' matches 2 columns \\(N, D\\)"),
        ({"weights": ["w_a", "w_b", "w_c", "w_a"]}, "weight column 'w_a' is named more than once"),
        ({"targets": 3}, "target columns must be a name, a glob or a list of names, not 3"),
        ({"k": 2}, "weights 'w_\\*' resolve to 3 columns \\(w_a, w_b, w_c\\), but k = 2 domains are expected"),
        ({"duplicates": "drop"}, "duplicates must be 'keep', 'merge' or 'error', not 'drop'"),
    ],
)
def test_column_roles_and_options_are_checked(kwargs, message):
    spec = {"weights": "w_*", "N": "N", "D": "D", "targets": "loss_*", **kwargs}
    with pytest.raises(mj.MixlawError, match=message):
        mj.load_runs(frame(), **spec)


def test_a_column_name_repeated_in_the_table_is_an_error_and_other_names_are_read_as_text():
    doubled = pd.concat([frame(), frame()[["N"]]], axis=1)
    with pytest.raises(mj.MixlawError, match="column 'N' appears 2 times in the run table"):
        load(doubled)
    numbered = frame().set_axis(range(7), axis=1)
    runs = mj.load_runs(numbered, weights=["0", "1", "2"], N="3", D="4", targets=["5"])
    assert runs.weight_columns == ("0", "1", "2") and runs.n_column == "3"


def test_weight_sums_off_by_more_than_the_tolerance_are_an_error_unless_renormalised():
    f = frame()
    f.loc[4, ["w_a", "w_b", "w_c"]] = [0.5, 0.4, 0.3]
    with pytest.raises(mj.MixlawError, match=r"row 4: weights sum to 1.2, not 1 \(tolerance 0.005.*renormalize=True"):
        load(f)
    with pytest.warns(
        MixlawWarning,
        match="renormalised the weights of 1 row onto the simplex; largest correction "
        "at row 4: the weights summed to 1.2 \\(off by 0.2\\)",
    ):
        runs = load(f, renormalize=True)
    np.testing.assert_allclose(runs.h.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(runs.h[4], [0.5 / 1.2, 0.4 / 1.2, 0.3 / 1.2])


def test_weight_sums_within_the_tolerance_are_used_as_given():
    f = frame()
    f["w_a"] += 0.004
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runs = load(f)
    np.testing.assert_array_equal(runs.h[:, 0], f.w_a.to_numpy())


def test_a_domain_whose_weight_never_varies_is_warned_about_and_only_when_asked():
    f = frame()
    f["w_c"] = 0.0
    f["w_b"] = 1.0 - f.w_a
    with pytest.warns(
        MixlawWarning, match="weights that never vary: column 'w_c' is 0 in every row; .* not identifiable"
    ):
        load(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(f, warn=False)
        mj.load_runs(f.assign(h=1.0), weights=["h"], N="N", D="D", targets="loss_*")  # k = 1: nothing to vary


def test_duplicate_rows_and_near_duplicate_checkpoints_are_reported_and_kept_by_default():
    with pytest.warns(
        MixlawWarning,
        match=r"kept 2 groups of rows that repeat a checkpoint of the same run \(D within "
        r"relative 0.001\): rows 1, 6 \(identical\); rows 5, 7 \(column 'D': "
        r"3e\+09, 3.002e\+09\)",
    ):
        runs = load_checkpoints(checkpoints())
    assert runs.n_rows == 8
    assert runs.duplicate_report() == [
        {"rows": [1, 6], "D": [2e9, 2e9], "identical": True},
        {"rows": [5, 7], "D": [3e9, 3.002e9], "identical": False},
    ]
    assert load_checkpoints(checkpoints(), duplicate_rtol=1e-4, warn=False).duplicate_report() == [
        {"rows": [1, 6], "D": [2e9, 2e9], "identical": True}
    ]


def test_duplicates_can_be_merged_into_one_row_per_checkpoint():
    f = checkpoints()
    f.loc[5, "loss"] = np.nan
    runs = load_checkpoints(f, duplicates="merge")
    assert runs.n_rows == 6 and runs.duplicate_report() == []
    assert runs.frame.index.tolist() == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(runs.d[5], 3.001e9)
    assert runs.losses[5, 0] == 2.65  # the mean of the observed losses only
    assert runs.frame.loc[5, "D"] == runs.d[5] and runs.frame.loc[5, "loss"] == 2.65
    assert runs.n_runs == 2 and runs.query("D > 2.5e9").n_rows == 2


def test_duplicates_can_be_refused():
    with pytest.raises(
        mj.MixlawError,
        match=r"2 groups of rows repeat a checkpoint of the same run .* rows 1, 6 "
        r"\(identical\); rows 5, 7 \(column 'D': 3e\+09, 3.002e\+09\)",
    ):
        load_checkpoints(checkpoints(), duplicates="error")
    distinct = checkpoints().iloc[:6]
    assert load_checkpoints(distinct, duplicates="error").n_rows == 6


def test_without_a_token_column_only_identical_rows_are_duplicates():
    f = pd.DataFrame({"w_a": [0.3, 0.3, 0.3, 0.7], "w_b": [0.7, 0.7, 0.7, 0.3], "loss": [2.0, 2.1, 2.0, 2.2]})
    runs = mj.load_runs(f, weights="w_*", targets=["loss"], warn=False)
    assert runs.duplicate_report() == [{"rows": [0, 2], "D": None, "identical": True}]


def test_table_hash_changes_with_any_value_and_not_with_a_copy():
    f = frame()
    base = load(f).hash()
    assert load(f.copy()).hash() == base
    g = f.copy()
    g.loc[3, "loss_y"] = np.nextafter(g.loc[3, "loss_y"], 10)
    assert load(g).hash() != base


@constant_design
def test_drop_first_checkpoints_drops_each_runs_smallest_token_counts():
    f = pd.concat([frame(), frame().assign(N=2e8)], ignore_index=True)
    f.loc[:, ["w_a", "w_b", "w_c"]] = [0.2, 0.3, 0.5]
    runs = load(f)
    kept = runs.drop_first_checkpoints(2)
    assert kept.n_rows == 8 and kept.n_runs == 2
    assert kept.d.min() == 3e9
    with pytest.raises(mj.MixlawError, match="whole number >= 0, not -1"):
        runs.drop_first_checkpoints(-1)
