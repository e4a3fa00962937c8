import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj


def frame(rows=6):
    rng = np.random.default_rng(0)
    h = rng.dirichlet(np.ones(3), rows)
    return pd.DataFrame({"w_a": h[:, 0], "w_b": h[:, 1], "w_c": h[:, 2], "N": 1e8, "D": np.arange(1, rows + 1) * 1e9,
                         "loss_x": rng.uniform(2, 3, rows), "loss_y": rng.uniform(2, 3, rows)})


def test_globs_resolve_in_column_order():
    runs = mj.load_runs(frame(), weights="w_*", N="N", D="D", targets="loss_*")
    assert runs.weight_columns == ("w_a", "w_b", "w_c")
    assert runs.targets == ("loss_x", "loss_y")
    assert runs.h.shape == (6, 3) and runs.losses.shape == (6, 2)


def test_runs_are_distinct_mixture_and_size_pairs_unless_a_column_is_given():
    f = frame()
    f.loc[:, ["w_a", "w_b", "w_c"]] = [0.2, 0.3, 0.5]
    f["N"] = [1e8, 1e8, 1e8, 2e8, 2e8, 2e8]
    assert mj.load_runs(f, weights="w_*", N="N", D="D", targets="loss_*").n_runs == 2
    f["run"] = list("abcdef")
    assert mj.load_runs(f, weights="w_*", N="N", D="D", targets="loss_*", run_id="run").n_runs == 6


def test_missing_losses_are_excluded_per_target_and_reported():
    f = frame()
    f.loc[2, "loss_y"] = np.nan
    runs = mj.load_runs(f, weights="w_*", N="N", D="D", targets="loss_*")
    assert runs.missing_report() == {"loss_y": [2]}
    assert runs.observed.sum(axis=0).tolist() == [6, 5]


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.drop(columns="N"), "unknown size column 'N'"),
    (lambda f: f.assign(N=["x"] + [1e8] * 5), "column 'N', row 0: non-numeric value 'x'"),
    (lambda f: f.assign(D=[0.0] + [1e9] * 5), "column 'D', row 0: value 0.0 must be > 0"),
    (lambda f: f.assign(w_a=f.w_a + 0.1), "row 0: weights sum to"),
    (lambda f: f.assign(w_a=-f.w_a), "negative weight"),
    (lambda f: f.assign(N=[np.inf] + [1e8] * 5), "row 0: value inf is not finite"),
    (lambda f: f.iloc[:0], "empty"),
])
def test_bad_input_names_the_column_row_and_value(edit, message):
    with pytest.raises(mj.MixlawError, match=message.replace("(", r"\(")):
        mj.load_runs(edit(frame()), weights="w_*", N="N", D="D", targets="loss_*")


def test_misspelt_column_gets_a_suggestion():
    with pytest.raises(mj.MixlawError, match="did you mean 'loss_x'"):
        mj.load_runs(frame(), weights="w_*", N="N", D="D", targets=["lossx"])


def test_drop_first_checkpoints_drops_each_runs_smallest_token_counts():
    f = pd.concat([frame(), frame().assign(N=2e8)], ignore_index=True)
    f.loc[:, ["w_a", "w_b", "w_c"]] = [0.2, 0.3, 0.5]
    runs = mj.load_runs(f, weights="w_*", N="N", D="D", targets="loss_*")
    kept = runs.drop_first_checkpoints(2)
    assert kept.n_rows == 8 and kept.n_runs == 2
    assert kept.d.min() == 3e9
