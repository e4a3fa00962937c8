"""Tables without mixtures: ``load_runs(weights=None)`` gives a RunTable with k = 0 weight columns, to which laws that
do not use h (Chinchilla: Hoffmann et al. 2022, refitted by Besiroglu et al. 2024) are fitted, and which they predict
and score; a law that needs mixture weights refuses such a table (issue 21)."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj

#: Besiroglu et al. 2024's refit (as tests/test_chinchilla.py); a light search reaches it on this 5-parameter law.
EPOCH = {"A": 477.84, "B": 2143.86, "E": 1.8172, "alpha": 0.34731, "beta": 0.36718}
HOFFMANN = mj.Objective(loss_space="log", huber_delta=1e-3, reduction="sum")
LIGHT = mj.Search(n_starts=256, schedule=((16, 100), (4, 200)))


def scale_frame() -> pd.DataFrame:
    """Three model sizes with three checkpoints each, losses from a Chinchilla law; no weight columns."""
    n, d = np.meshgrid([1e8, 2e8, 4e8], [1e9, 2e9, 4e9], indexing="ij")
    n, d = n.ravel(), d.ravel()
    return pd.DataFrame({"N": n, "D": d, "loss": 1.8 + 400 / n**0.34 + 2000 / d**0.37})


def load(frame, **kwargs):
    return mj.load_runs(frame, **{"weights": None, "N": "N", "D": "D", "targets": ["loss"], **kwargs})


def test_a_table_loaded_without_weights_has_no_weight_columns_and_a_run_per_model_size():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: no weights to renormalise or to hold constant
        runs = load(scale_frame())
    assert runs.k == 0 and runs.h.shape == (9, 0) and runs.weight_columns == ()
    assert runs.n_runs == 3 and runs.run_id.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert runs.constant_domains() == {}
    assert load(scale_frame(), k=0).k == 0
    assert load(scale_frame().assign(run=list("aabbccdde")), run_id="run").n_runs == 5
    assert mj.load_runs(scale_frame(), weights=None, targets=["loss"]).n_runs == 1  # neither h nor N: one run
    with pytest.warns(mj.MixlawWarning, match="kept 3 groups of rows that repeat a checkpoint"):
        one_run = mj.load_runs(scale_frame(), weights=None, D="D", targets=["loss"])  # so equal D repeat one
    assert one_run.n_runs == 1


def test_run_table_methods_work_with_no_weight_columns():
    runs = load(scale_frame())
    assert runs.hash() == load(scale_frame()).hash()
    assert runs.hash() != load(scale_frame().assign(loss=lambda f: f.loss + 1e-9)).hash()
    assert (
        runs.hash() != mj.load_runs(scale_frame().assign(h=1.0), weights=["h"], N="N", D="D", targets=["loss"]).hash()
    )
    picked = runs.subset([0, 4, 8])
    assert picked.h.shape == (3, 0) and picked.n_runs == 3
    larger = runs.query("N > 1e8")
    assert larger.h.shape == (6, 0) and larger.n_runs == 2 and larger.k == 0
    later = runs.drop_first_checkpoints(1)
    assert later.n_rows == 6 and later.d.min() == 2e9 and later.h.shape == (6, 0)


def test_repeated_checkpoints_are_found_merged_and_refused_without_weights():
    frame = pd.concat([scale_frame(), scale_frame().iloc[[1]].assign(D=2.001e9, loss=lambda f: f.loss + 0.01)])
    frame = frame.reset_index(drop=True)
    with pytest.warns(mj.MixlawWarning, match=r"kept 1 group of rows .* rows 1, 9"):
        kept = load(frame)
    assert kept.n_rows == 10 and kept.duplicate_report()[0]["rows"] == [1, 9]
    merged = load(frame, duplicates="merge")
    assert merged.n_rows == 9 and merged.h.shape == (9, 0)
    np.testing.assert_allclose(merged.d[1], 2.0005e9)
    with pytest.raises(mj.MixlawError, match="1 group of rows repeat a checkpoint"):
        load(frame, duplicates="error")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"renormalize": True}, "renormalize=True rescales mixture weights, but weights=None loads a table without"),
        ({"k": 2}, "weights=None gives no weight columns, but k = 2 domains are expected"),
        ({"weights": []}, "no weight columns given; pass weights=None for a table without mixtures"),
        ({"weights": 3}, "weight columns must be a name, a glob or a list of names (or None for a table without"),
    ],
)
def test_weight_options_that_need_weights_are_refused_clearly(kwargs, message):
    with pytest.raises(mj.MixlawError, match=re.escape(message)):
        load(scale_frame(), **kwargs)


def test_a_law_that_needs_mixture_weights_refuses_a_table_loaded_without_them():
    runs = load(scale_frame())
    for law in ("additive", "joint", "mixing_exp"):
        with pytest.raises(mj.MixlawError, match=rf"law '{law}' needs mixture weights.*weights=None"):
            mj.fit(runs, law, search=LIGHT)


@pytest.fixture(scope="module")
def chinchilla_runs(chinchilla_frame):
    """Epoch's 240 Chinchilla points, loaded without a weight column (the frame's constant ``h`` is not named); the
    digitised points hold two pairs of near-equal checkpoints, kept (as tests/test_chinchilla.py keeps them)."""
    with pytest.warns(mj.MixlawWarning, match="kept 2 groups of rows that repeat a checkpoint"):
        return mj.load_runs(chinchilla_frame, weights=None, N="Model Size", D="D", targets=["loss"])


@pytest.fixture(scope="module")
def chinchilla_fit(chinchilla_runs):
    return mj.fit(chinchilla_runs, "chinchilla", objective=HOFFMANN, parameter_bounds=None, search=LIGHT)


def test_chinchilla_fits_a_table_loaded_without_weights(chinchilla_runs, chinchilla_fit, chinchilla_frame):
    assert chinchilla_runs.n_rows == 240 and chinchilla_runs.k == 0
    assert chinchilla_fit.k == 0 and chinchilla_fit.weight_columns == ()
    params = chinchilla_fit.params["loss"]
    for name, value in EPOCH.items():
        assert params[name] == pytest.approx(value, rel=5e-3), name
    assert chinchilla_fit.objective[0] <= 1.01828e-3
    # the same fit as on the table with a constant one-domain weight column
    with_h = mj.load_runs(chinchilla_frame, weights=["h"], N="Model Size", D="D", targets=["loss"], warn=False)
    same = mj.fit(with_h, "chinchilla", objective=HOFFMANN, parameter_bounds=None, search=LIGHT)
    np.testing.assert_allclose(same.coordinates, chinchilla_fit.coordinates, rtol=1e-9)


def test_a_fit_without_weights_predicts_and_scores_tables_and_frames(chinchilla_runs, chinchilla_fit, chinchilla_frame):
    predicted = chinchilla_fit.predict(chinchilla_runs)
    assert predicted.columns.tolist() == ["loss"] and len(predicted) == 240
    from_frame = chinchilla_fit.predict(chinchilla_frame.drop(columns=["h", "loss"]))  # weights, targets not needed
    np.testing.assert_array_equal(from_frame["loss"].to_numpy(), predicted["loss"].to_numpy())
    mre = chinchilla_fit.mre(chinchilla_runs)["loss"]
    assert 0 < mre < 5
    assert chinchilla_fit.mre(chinchilla_frame)["loss"] == mre


def test_a_fit_without_weights_is_saved_and_loaded(chinchilla_runs, chinchilla_fit, tmp_path):
    chinchilla_fit.save(tmp_path / "fit.json")
    loaded = mj.load_fit(tmp_path / "fit.json")
    assert loaded.k == 0 and loaded.weight_columns == ()
    np.testing.assert_array_equal(loaded.coordinates, chinchilla_fit.coordinates)
    pd.testing.assert_frame_equal(loaded.predict(chinchilla_runs), chinchilla_fit.predict(chinchilla_runs))


def test_an_optimal_mixture_of_a_fit_without_weights_is_refused(chinchilla_fit):
    with pytest.raises(mj.MixlawError, match="'chinchilla' does not depend on the mixture"):
        mj.optimal_mixture(chinchilla_fit, N=7e9, D=1.4e11)


def test_one_runs_learning_curve_fits_a_law_of_d_alone_and_needs_as_many_distinct_d_as_parameters():
    """A law of D alone (the nested pipeline's step law) is identified by one run's checkpoints; N and h, which would
    need several runs, do not enter it."""
    d = np.array([1e9, 2e9, 4e9, 8e9, 1.6e10, 3.2e10])
    curve = pd.DataFrame({"n_tokens": d, "x_loss": 2.0 + 300.0 / d**0.3})
    fit = mj.fit(mj.load_runs(curve, weights=None, D="n_tokens", targets=["x_loss"]), "token_power")
    assert fit.params["x_loss"]["beta"] == pytest.approx(0.3, rel=1e-6)
    flat = curve.assign(n_tokens=[1e9, 1e9, 1e9, 2e9, 2e9, 2e9])  # six rows, two checkpoints
    with pytest.raises(mj.MixlawError, match="observed at 2 distinct D, fewer than the 3 parameters"):
        mj.fit(mj.load_runs(flat, weights=None, D="n_tokens", targets=["x_loss"], warn=False), "token_power")
