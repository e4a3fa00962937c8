"""The `mixlaw` command end to end on small data, in process: output files, printed results, exit codes and
one-line errors for each class of bad input."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax import datasets
from mixlaw_jax.cli import main
from mixlaw_jax.simulate import design, random_mixtures, simulate

#: tiny settings shared by every test file of the command line, figures and report (same compiled programs).
FAST = ["--starts", "64", "--schedule", "16x20,4x40", "--quiet"]
FAST_BOOT = ["--replicates", "3", "--replicate-starts", "8", "--replicate-schedule", "2x20"]
HOLDOUT = "model_size > 1.3e9"
TRAIN = "model_size <= 1.3e9"
TRUTH = np.array([1.5, 8.0, 0.3, 9.0, 0.3, 0.1, 0.2, 0.0, 0.5, 0.7, 0.9])


def small_table(path):
    """k = 3, 10 mixtures x 5 model sizes x 3 checkpoints of the additive law with 0.2% noise; the largest size
    (2e9) is held out by HOLDOUT, as in the bundled example table."""
    h = random_mixtures(10, 3, seed=3)
    frame = design(h, [5e7, 1e8, 2e8, 4e8, 2e9], [2e9, 5e9, 1e10]).rename(columns={"N": "model_size", "D": "n_tokens"})
    frame["x_loss"] = simulate(
        "additive", TRUTH, frame.model_size, frame.n_tokens, frame.filter(like="weight_").to_numpy(), noise=0.002
    )
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return small_table(tmp_path_factory.mktemp("cli") / "runs.csv")


def run(capsys, *args):
    """(exit code, stdout, stderr) of `mixlaw ARGS` run in this process."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def fit_json(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "fit.json"
    assert main(["fit", str(table), "--law", "additive", "--where", TRAIN, *FAST, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def boot_json(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("boot") / "boot.json"
    assert (
        main(["bootstrap", str(table), "--law", "additive", "--where", TRAIN, *FAST, *FAST_BOOT, "--out", str(out)])
        == 0
    )
    return out


# ------------------------------------------------------------------------------------------- every subcommand


def test_fit_writes_a_loadable_fit_and_prints_scores(table, tmp_path, capsys):
    out = tmp_path / "fit.json"
    code, stdout, _ = run(capsys, "fit", table, "--law", "additive", "--where", TRAIN, *FAST, "--out", out)
    assert code == 0
    fit = mj.load_fit(out)
    assert fit.law == "additive" and fit.targets == ("x_loss",) and fit.settings.search.n_starts == 64
    assert "x_loss" in stdout and "train MRE" in stdout and f"wrote {out}" in stdout
    train = mj.load_runs(table, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")
    train_mre = fit.mre(train.query(TRAIN))["x_loss"]
    assert train_mre < 1.0 and f"train MRE {train_mre:.3f}%" in stdout


def test_predict_writes_predictions_and_scores_held_out_runs(table, fit_json, tmp_path, capsys):
    held = tmp_path / "held.csv"
    pd.read_csv(table).query(HOLDOUT).to_csv(held, index=False)
    out = tmp_path / "pred.csv"
    code, stdout, _ = run(capsys, "predict", fit_json, held, "--out", out)
    assert code == 0
    written = pd.read_csv(out)
    expected = mj.load_fit(fit_json).predict(pd.read_csv(held))["x_loss"].to_numpy()
    np.testing.assert_allclose(written["predicted_x_loss"], expected)
    assert len(written) == 30 and "x_loss" in written.columns
    mre = mj.load_fit(fit_json).mre(pd.read_csv(held))["x_loss"]
    assert 0 < mre < 5 and f"MRE {mre:.3f}%" in stdout


def test_predict_new_runs_without_losses_prints_them(table, fit_json, tmp_path, capsys):
    new = tmp_path / "new.csv"
    pd.read_csv(table).drop(columns="x_loss").iloc[::30].to_csv(new, index=False)
    code, stdout, _ = run(capsys, "predict", fit_json, new)
    assert code == 0
    assert "predicted_x_loss" in stdout and "MRE" not in stdout and len(stdout.strip().splitlines()) == 6


def test_predict_from_a_bootstrap_gives_intervals_as_json(table, boot_json, tmp_path, capsys):
    out = tmp_path / "pred.json"
    code, _, _ = run(capsys, "predict", boot_json, table, "--out", out)
    assert code == 0
    payload = json.loads(out.read_text())
    rows = pd.DataFrame(payload["rows"])
    assert len(rows) == 150
    assert (rows["predicted_x_loss_lo"] <= rows["predicted_x_loss_hi"]).all()
    assert np.isfinite(rows[["predicted_x_loss", "predicted_x_loss_lo", "predicted_x_loss_hi"]].to_numpy()).all()
    bagged = rows["predicted_x_loss_bagged"]  # the replicates' median: inside their interval, not the full fit's
    assert (rows["predicted_x_loss_lo"] <= bagged).all() and (bagged <= rows["predicted_x_loss_hi"]).all()
    assert not np.array_equal(bagged, rows["predicted_x_loss"])


def test_optimize_writes_a_mixture_for_each_budget(fit_json, tmp_path, capsys):
    out = tmp_path / "mixture.json"
    code, stdout, _ = run(
        capsys, "optimize", fit_json, "--N", "1e9,7e9", "--D", "2e10,1.5e11", "--bounds", "simplex", "--out", out
    )
    assert code == 0
    mixture = mj.load_mixture(out)
    assert mixture.h.shape == (2, 2, 3)
    np.testing.assert_allclose(mixture.h.sum(axis=-1), 1.0, atol=1e-9)
    direct = mj.optimal_mixture(mj.load_fit(fit_json), N=[1e9, 7e9], D=[2e10, 1.5e11], weight_bounds="simplex")
    np.testing.assert_allclose(mixture.h, direct.h, atol=1e-6)
    assert stdout.count("weight_0") == 2 and "predicted loss" in stdout


def test_optimize_respects_bounds_and_fixed_domains(fit_json, capsys):
    code, stdout, _ = run(
        capsys,
        "optimize",
        fit_json,
        "--N",
        "1e9",
        "--D",
        "2e10",
        "--bounds",
        "weight_0=0:0.2",
        "--fixed",
        "weight_1=0.3",
    )
    assert code == 0
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.strip().startswith("weight_")}
    assert float(lines["weight_0"].split()[1]) <= 0.2 + 1e-9
    assert float(lines["weight_1"].split()[1]) == pytest.approx(0.3) and "(fixed)" in lines["weight_1"]


def test_optimize_from_a_bootstrap_prints_intervals(boot_json, capsys):
    code, stdout, _ = run(capsys, "optimize", boot_json, "--N", "1e9", "--D", "2e10")
    assert code == 0
    rows = [line.split() for line in stdout.splitlines() if line.strip().startswith("weight_")]
    assert len(rows) == 3
    for row in rows:
        lo, hi = float(row[2].strip("[,")), float(row[3].strip("]"))
        assert 0 <= lo <= hi <= 1
    assert "bootstrap percentile, 3 replicates" in stdout


def test_bootstrap_writes_replicates_and_prints_intervals(boot_json, table, capsys):
    boot = mj.load_bootstrap(boot_json)
    assert boot.n_replicates == 3 and boot.fit.law == "additive"
    intervals = boot.intervals()["x_loss"]
    lo, hi = intervals["E"]
    assert lo <= hi
    code, stdout, _ = run(
        capsys, "bootstrap", table, "--law", "additive", "--where", TRAIN, *FAST, *FAST_BOOT, "--out", boot_json
    )
    assert code == 0
    assert "3 replicates (runs resampled)" in stdout and "se" in stdout and stdout.count("gamma[weight_") == 3


def test_demo_writes_the_report(table, tmp_path, monkeypatch, capsys):
    """The demo's pipeline, with the small table standing in for the bundled one (the notebooks fit that one)."""
    monkeypatch.setattr(
        datasets,
        "load_example",
        lambda: mj.load_runs(table, weights="weight_*", N="model_size", D="n_tokens", targets="*_loss"),
    )
    out = tmp_path / "demo"
    code, stdout, _ = run(capsys, "demo", "--law", "additive", *FAST, *FAST_BOOT, "--out", out)
    assert code == 0
    assert (out / "index.html").exists() and (out / "figures" / "optimal_mixture.png").exists()
    fit = mj.load_fit(out / "fit_additive.json")
    assert fit.k == 3 and fit.settings.search.n_starts == 64
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["holdout"] == HOLDOUT and summary["settings"]["N"] == 7e9
    assert "30 held-out rows" in stdout and f"wrote {out}/index.html" in stdout


def test_help_of_every_subcommand_has_examples(capsys):
    code, stdout, _ = run(capsys, "--help")
    assert code == 0
    for command in ["demo", "fit", "predict", "optimize", "bootstrap", "report"]:
        assert command in stdout
        code, text, _ = run(capsys, command, "--help")
        assert code == 0 and "example" in text and f"mixlaw {command}" in text
    assert "1024 random starts" in run(capsys, "demo", "--help")[1]


def test_a_repeated_command_loads_its_programs_from_the_compilation_cache(table, tmp_path):
    cache = tmp_path / "xla"

    def fit(name, setting):
        out = tmp_path / name
        env = {**os.environ, "MIXLAW_COMPILE_CACHE": setting, "JAX_PLATFORMS": "cpu"}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mixlaw_jax",
                "fit",
                str(table),
                "--law",
                "additive",
                "--where",
                TRAIN,
                *FAST,
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return mj.load_fit(out)

    first = fit("first.json", str(cache))
    entries = sorted(p.name for p in cache.iterdir())
    assert any(name.startswith("jit__map_pairs") for name in entries)  # the LM programs were kept
    kept = {name.rsplit("-", 2)[0] for name in entries}  # programs, e.g. jit__map_pairs
    second = fit("second.json", str(cache))
    added = sorted(set(p.name for p in cache.iterdir()) - set(entries))
    # every kept program was found, not compiled again under a new key (a program whose compile time straddles the
    # cache's 0.2 s threshold may be kept by the second command only)
    assert not [name for name in added if name.rsplit("-", 2)[0] in kept], added
    np.testing.assert_array_equal(second.coordinates, first.coordinates)
    entries = sorted(p.name for p in cache.iterdir())
    off = fit("off.json", "off")
    np.testing.assert_array_equal(off.coordinates, first.coordinates)
    assert sorted(p.name for p in cache.iterdir()) == entries


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "mixlaw_jax", "fit", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "mixlaw fit" in proc.stdout


# ---------------------------------------------------------------------------------------------------- bad input


def bad_tables(folder, table):
    """name -> (path, expected message) for each class of bad table."""
    good = pd.read_csv(table)
    out = {"missing file": (folder / "nope.csv", "no such file")}
    out["missing column"] = (folder / "no_n.csv", "unknown size column 'model_size'")
    good.drop(columns="model_size").to_csv(out["missing column"][0], index=False)
    frame = good.astype({"x_loss": object})
    frame.loc[4, "x_loss"] = "oops"
    out["non-numeric value"] = (folder / "text.csv", "column 'x_loss', row 4: non-numeric value 'oops'")
    frame.to_csv(out["non-numeric value"][0], index=False)
    frame = good.copy()
    frame.loc[7, "weight_0"] += 0.5
    out["weights not summing to 1"] = (folder / "sum.csv", "row 7: weights sum to")
    frame.to_csv(out["weights not summing to 1"][0], index=False)
    out["empty table"] = (folder / "empty.csv", "the run table is empty")
    good.head(0).to_csv(out["empty table"][0], index=False)
    return out


BAD = ["missing file", "missing column", "non-numeric value", "weights not summing to 1", "empty table"]


@pytest.fixture(scope="module")
def bad(table, tmp_path_factory):
    return bad_tables(tmp_path_factory.mktemp("bad"), table)


def assert_one_line_error(code, stderr, message):
    assert code == 2
    assert message in stderr
    assert stderr.startswith("mixlaw: error: ") and len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("command", ["fit", "bootstrap", "report", "predict"])
def test_bad_table_is_one_line_on_stderr_with_exit_code_2(command, kind, bad, fit_json, tmp_path, capsys):
    path, message = bad[kind]
    out = tmp_path / "out"
    if command == "predict":
        args = ["predict", fit_json, path, "--out", out]
    else:
        args = [command, path, "--law", "additive", "--out", out, "--quiet"]
    code, _, stderr = run(capsys, *args)
    assert_one_line_error(code, stderr, message)
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["fit", "{table}", "--law", "additive", "--targets", "y_loss", "--out", "f.json"],
            "unknown target column 'y_loss'",
        ),
        (["fit", "{table}", "--law", "nonsense", "--out", "f.json"], "unknown law 'nonsense'"),
        (["report", "{table}", "--law", "additive", "--law", "nonsense", "--quiet"], "unknown law 'nonsense'"),
        (["report", "{table}", "--law", "additive", "--holdout", "model_size > 1e12", "--quiet"], "selects no row"),
        (["report", "{table}", "--law", "additive", "--holdout", "model_size >", "--quiet"], "cannot parse"),
        (["report", "{table}", "--law", "additive", "--budget", "7e9"], "--budget takes two numbers"),
        (["report", "{table}", "--law", "additive", "--jobs", "0", "--quiet"], "jobs must be >= 1"),
        (["report", "{table}", "--law", "additive", "--law", "additive", "--quiet"], "named more than once"),
        (["bootstrap", "{table}", "--law", "additive", "--level", "1.5", "--out", "b.json"], "level must be"),
        (["optimize", "missing.json", "--N", "1e9", "--D", "2e10"], "no such file: missing.json"),
        (["optimize", "{table}", "--N", "1e9", "--D", "2e10"], "is not a valid result file"),
        (["optimize", "{fit}", "--N", "1e9", "--D", "2e10", "--bounds", "weight_0=0.6:1,weight_1=0.6:1"], "weight_"),
        (["optimize", "{fit}", "--N", "1e9", "--D", "2e10", "--target-weights", "y_loss=1"], "unknown target"),
        (["optimize", "{fit}", "--D", "2e10"], "needs N"),
        (["predict", "{fit}", "missing.csv"], "no such file: missing.csv"),
    ],
)
def test_bad_request_is_one_line_on_stderr_with_exit_code_2(
    table, fit_json, tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run(capsys, *[a.format(table=table, fit=fit_json) for a in args])
    assert_one_line_error(code, stderr, message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["optimize", "{fit}", "--N", "abc", "--D", "2e10"], "argument --N: invalid number list 'abc'"),
        (["optimize", "{fit}", "--N", "-1", "--D", "2e10"], "every number must be finite and > 0"),
        (["optimize", "{fit}", "--N", "1e9", "--D", "2e10", "--bounds", "weight_0=x"], "expected LO:HI"),
        (["optimize", "{fit}", "--N", "1e9", "--D", "2e10", "--fixed", "weight_0"], "expected NAME=VALUE"),
        (["fit", "{table}", "--law", "additive", "--out", "f.json", "--starts", "many"], "invalid int value: 'many'"),
        (["fit", "{table}", "--law", "additive", "--out", "f.json", "--schedule", "16-20"], "invalid schedule '16-20'"),
        (["fit", "{table}", "--out", "f.json"], "the following arguments are required: --law"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_option_value_is_one_line_with_exit_code_2(table, fit_json, capsys, args, message):
    code, _, stderr = run(capsys, *[a.format(table=table, fit=fit_json) for a in args])
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert stderr.startswith("mixlaw") and "--help" in stderr


def test_propose_prints_and_writes_the_runs_to_train_next(table, boot_json, tmp_path, capsys):
    out = tmp_path / "next.csv"
    args = ["propose", table, "--where", TRAIN, "--law", "additive", "--budget", "4e9,8e10"]
    code, text, _ = run(capsys, *args, "--candidates", "60", "--n", "3", "--quiet", "--out", out)
    assert code == 0
    assert "3 runs to train next at N = 4e+09, D = 8e+10" in text and "pins_down" in text
    assert "uncertainty: the Laplace approximation around the fit (22 sigma points)" in text
    assert re.search(r"loss at h\* now: \d+\.\d+ ± \d", text), text
    proposed = pd.read_csv(out)
    assert len(proposed) == 3
    assert {"weight_0", "weight_1", "weight_2", "model_size", "n_tokens", "score", "pins_down"} <= set(proposed)
    assert proposed["model_size"].max() <= 8e8  # the table's sizes up to 4e8, and one size up
    code, _, err = run(capsys, "propose", table, "--where", TRAIN, "--bootstrap", boot_json, "--budget", "4e9,8e10")
    assert code == 2 and "the bootstrap has 3 replicates" in err


def test_the_program_freezes_its_objects_before_exiting_with_the_command_code(monkeypatch):
    """``mixlaw`` skips the interpreter's last walk over JAX's objects (gc.freeze) and exits with main's code."""
    import gc

    from mixlaw_jax import cli

    frozen = []
    monkeypatch.setattr(cli, "main", lambda: 2)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)
    with pytest.raises(SystemExit) as done:
        cli.run()
    assert done.value.code == 2 and frozen == [True]
