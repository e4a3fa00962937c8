import json

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax.simulate import design, random_mixtures, simulate


@pytest.fixture(scope="module")
def small_fit():
    h = random_mixtures(12, 3, seed=1)
    table = design(h, [1e8, 3e8], [2e9, 5e9, 1e10])
    law = mj.get_law("additive")
    truth = np.array([1.5, 8.0, 0.3, 9.0, 0.3, 0.1, 0.2, 0.0, 0.5, 0.7, 0.9])
    table["loss"] = simulate(law, truth, table.N, table.D, table.filter(like="weight_").to_numpy(), noise=0.002)
    runs = mj.load_runs(table, weights="weight_*", N="N", D="D", targets=["loss"])
    return runs, mj.fit(runs, "additive", search=mj.Search(1024, ((32, 30), (8, 100))))


def test_save_load_round_trip_predicts_identically(small_fit, tmp_path):
    runs, result = small_fit
    path = tmp_path / "fit.json"
    result.save(path)
    loaded = mj.load_fit(path)
    pd.testing.assert_frame_equal(result.predict(runs), loaded.predict(runs), check_exact=True)
    assert loaded.params == result.params
    assert json.loads(path.read_text())["provenance"]["table_hash"] == runs.hash()


def test_predict_accepts_a_dataframe_without_targets(small_fit):
    runs, result = small_fit
    new = runs.frame.drop(columns="loss").head(4)
    out = result.predict(new)
    assert list(out.columns) == ["loss"] and len(out) == 4
    assert np.isfinite(out.to_numpy()).all()


def test_other_schema_version_and_corrupt_files_get_clear_errors(small_fit, tmp_path):
    _, result = small_fit
    payload = result.to_dict()
    payload["schema_version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(payload))
    with pytest.raises(mj.MixlawError, match="schema version 99"):
        mj.load_fit(tmp_path / "v99.json")
    result.save(tmp_path / "ok.json")
    text = (tmp_path / "ok.json").read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(mj.MixlawError, match="corrupt or truncated"):
        mj.load_fit(tmp_path / "cut.json")


def test_same_seed_is_bit_identical_and_fit_reports_diagnostics(small_fit):
    runs, result = small_fit
    again = mj.fit(runs, "additive", search=mj.Search(1024, ((32, 30), (8, 100))))
    assert np.array_equal(again.coordinates, result.coordinates)
    d = result.diagnostics["loss"]
    assert d.n_in_basin >= 1 and d.iterations > 0 and np.isfinite(d.gradient_norm)
    assert result.mre(runs)["loss"] < 0.5


def test_a_target_whose_every_start_fails_is_left_out_with_a_warning_the_others_are_fitted():
    """Law NaN at N >= 1e12: target x is observed there (every start fails), target y is not (fits)."""
    law = mj.Law.from_predict(
        "nan_above_1e12",
        [mj.Param("E"), mj.Param("A", positive=True, init=(0.0, 3.0)), mj.Param("alpha", init=(0.1, 0.5))],
        lambda p, x: jnp.where(x.log_n < np.log(1e12), p["E"] + jnp.exp(p["A"] - p["alpha"] * x.log_n), jnp.nan),
        uses_d=False,
    )
    n = np.array([1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9, 1e13])
    frame = pd.DataFrame(
        {"h": 1.0, "N": n, "x_loss": 2.0 + 5 * n**-0.2, "y_loss": np.r_[2.5 + 5 * n[:-1] ** -0.2, np.nan]}
    )
    runs = mj.load_runs(frame, weights=["h"], N="N", D=None, targets=["x_loss", "y_loss"])
    with pytest.warns(mj.errors.MixlawWarning, match=r"every start failed .*\['x_loss'\]"):
        result = mj.fit(runs, law, search=mj.Search(64, ((8, 20), (2, 40))))
    assert result.targets == ("y_loss",) and result.settings.failed_targets == ["x_loss"]
    assert np.isfinite(result.coordinates).all() and result.objective[0] < 1e-3


def test_a_fit_records_whether_its_starts_were_domain_tied():
    from mixlaw_jax.results import FitSettings

    search = mj.Search(64, ((4, 10),), tied_starts=True)
    settings = FitSettings(mj.Objective(), "default", search, 10)
    assert FitSettings.from_dict(json.loads(json.dumps(settings.to_dict()))).search.tied_starts is True
    payload = settings.to_dict()
    del payload["tied_starts"]  # a file from before the option: automatic
    assert FitSettings.from_dict(payload).search.tied_starts is None
