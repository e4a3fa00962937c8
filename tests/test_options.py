"""Typed options (issue 21): option objects validated where they are made, entry points that take only them, the
bootstrap taking its objective from the full fit, and typed diagnostics with a status that survive a file."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import two_domain_frame as frame

import mixlaw_jax as mj
from mixlaw_jax.cli import main

TINY = mj.Search(64, ((8, 20), (2, 40)))


@pytest.fixture(scope="module")
def runs():
    return mj.load_runs(frame(), weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")


@pytest.fixture(scope="module")
def chinchilla_fit(runs):
    return mj.fit(runs, "chinchilla", objective=mj.Objective(huber_delta=1e-2), search=TINY)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: mj.Search(n_starts=0), "n_starts must be >= 1"),
        (lambda: mj.Search(64, ((128, 10),)), "first stage keeps 128 starts"),
        (lambda: mj.Search(64, ((8, 10), (16, 10))), "keeps 16 starts after one that kept 8"),
        (lambda: mj.Search(seed=-1), "seed must be in"),
        (lambda: mj.Stage(4, 10, 1.5), "row fraction must lie in"),
        (lambda: mj.Objective(loss_space="ln"), "loss_space must be 'raw' or 'log'"),
        (lambda: mj.Objective(huber_delta=0), "huber_delta must be > 0"),
        (lambda: mj.Resources(devices=0), "devices must be >= 1"),
        (lambda: mj.Resources(devices="gpu"), "devices must be None, a count or a list"),
        (lambda: mj.Resources(memory_bytes=-1.0), "memory_bytes must be > 0"),
    ],
)
def test_an_option_object_refuses_a_bad_value_where_it_is_made_naming_the_field(make, needle):
    with pytest.raises(mj.MixlawError, match=needle):
        make()


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda r: mj.fit(r, "chinchilla", search={"n_starts": 64}), "search must be a mixlaw_jax.Search, not dict"),
        (lambda r: mj.fit(r, "chinchilla", objective="log"), "objective must be a mixlaw_jax.Objective, not str"),
        (lambda r: mj.fit(r, "chinchilla", search=TINY, resources=2), "resources must be a mixlaw_jax.Resources"),
        (lambda r: mj.bootstrap(r, "chinchilla", search=64), "search must be a mixlaw_jax.Search, not int"),
    ],
)
def test_an_entry_point_given_something_else_than_an_option_object_says_how_to_make_one(runs, call, needle):
    with pytest.raises(mj.MixlawError, match=needle):
        call(runs)


def test_a_bootstrap_around_a_full_fit_takes_its_objective_and_bounds(runs, chinchilla_fit):
    boot = mj.bootstrap(runs, "chinchilla", full_fit=chinchilla_fit, n_replicates=2, search=mj.Search(8, ((2, 10),)))
    assert boot.settings["huber_delta"] == 0.01 and boot.settings["bounds"] == "default"
    with pytest.raises(mj.MixlawError, match="parameter_bounds: full fit 'default', bootstrap None"):
        mj.bootstrap(runs, "chinchilla", full_fit=chinchilla_fit, n_replicates=2, parameter_bounds=None)


def test_fit_settings_and_diagnostics_are_typed_and_survive_a_file(tmp_path, chinchilla_fit):
    settings, diagnostics = chinchilla_fit.settings, chinchilla_fit.diagnostics["x_loss"]
    assert settings.objective == mj.Objective(huber_delta=1e-2) and settings.search == TINY
    assert isinstance(diagnostics, mj.Diagnostics) and isinstance(diagnostics.status, mj.Status)
    assert diagnostics.converged == (diagnostics.status in (mj.Status.CONVERGED, mj.Status.STALLED))
    chinchilla_fit.save(tmp_path / "fit.json")
    loaded = mj.load_fit(tmp_path / "fit.json")
    assert loaded.settings == settings and loaded.diagnostics == chinchilla_fit.diagnostics


def test_a_fit_file_written_before_the_status_existed_still_loads(tmp_path, chinchilla_fit):
    payload = chinchilla_fit.to_dict()
    for d in payload["diagnostics"].values():
        d["converged"] = d.pop("status") in ("converged", "stalled")
    (tmp_path / "old.json").write_text(json.dumps(payload))
    loaded = mj.load_fit(tmp_path / "old.json").diagnostics["x_loss"]
    assert loaded.converged == chinchilla_fit.diagnostics["x_loss"].converged


def test_a_status_is_named_in_the_summary_and_on_the_command_line(tmp_path, chinchilla_fit, capsys):
    assert chinchilla_fit.summary().loc["x_loss", "status"] == chinchilla_fit.diagnostics["x_loss"].status.label
    frame().to_csv(tmp_path / "runs.csv", index=False)
    args = ["fit", str(tmp_path / "runs.csv"), "--law", "chinchilla", "--starts", "64", "--schedule", "8x20,2x40"]
    assert main([*args, "--quiet", "--out", str(tmp_path / "fit.json")]) == 0
    status = mj.load_fit(tmp_path / "fit.json").diagnostics["x_loss"].status.label
    assert status in capsys.readouterr().out


def test_a_table_without_weights_is_fitted_from_the_command_line(tmp_path):
    sizes = pd.DataFrame(
        {"model_size": np.repeat(np.geomspace(1e7, 1e9, 6), 3), "n_tokens": np.tile([2e9, 5e9, 1e10], 6)}
    )
    sizes["x_loss"] = 1.8 + 400 / sizes.model_size**0.3 + 400 / sizes.n_tokens**0.3
    sizes.to_csv(tmp_path / "runs.csv", index=False)
    table = [str(tmp_path / "runs.csv"), "--weights", "none", "--starts", "64", "--schedule", "8x20,2x40", "--quiet"]
    assert main(["fit", *table, "--law", "chinchilla", "--out", str(tmp_path / "fit.json")]) == 0
    assert mj.load_fit(tmp_path / "fit.json").k == 0
    assert main(["fit", *table, "--law", "additive", "--out", str(tmp_path / "additive.json")]) == 2
    assert not (tmp_path / "additive.json").exists()


def test_a_run_tables_inputs_read_a_missing_scale_column_as_one(runs):
    no_d = mj.load_runs(frame().iloc[::4], weights="weight_*", N="model_size", targets="x_loss")
    x = no_d.inputs()
    assert np.all(np.asarray(x.log_d) == 0.0) and np.allclose(np.exp(np.asarray(x.log_n)), no_d.n)
    assert np.array_equal(np.asarray(runs.inputs().h), runs.h)
