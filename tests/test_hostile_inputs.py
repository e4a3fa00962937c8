"""Hostile and careless inputs (issue 26): no code runs through a selection, no input is overwritten, nothing but a
regular file is replaced, and bad values get one clear MixlawError (exit code 2) instead of a result or a traceback.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import two_domain_frame as frame
from test_cli import FAST

import mixlaw_jax as mj
from mixlaw_jax import _io
from mixlaw_jax.cli import main
from mixlaw_jax.errors import MixlawWarning
from mixlaw_jax.report import split_holdout

TABLE = {"weights": "weight_*", "N": "model_size", "D": "n_tokens", "targets": "*_loss"}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder holding runs.csv; the test runs inside it."""
    monkeypatch.chdir(tmp_path)
    frame().to_csv("runs.csv", index=False)
    return tmp_path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(folder, runs.csv, fit.json of chinchilla, fit.json of additive)."""
    where = tmp_path_factory.mktemp("hostile")
    table = where / "runs.csv"
    frame().to_csv(table, index=False)
    for law in ("chinchilla", "additive"):
        assert main(["fit", str(table), "--law", law, *FAST, "--out", str(where / f"{law}.json")]) == 0
    return where, table, where / "chinchilla.json", where / "additive.json"


def snapshot(path) -> dict:
    """Every file under ``path`` with its bytes."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def one_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mixlaw"), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# 1-2: selections are parsed, never executed, and must be comparisons


@pytest.mark.parametrize(
    "selection",
    [
        'model_size > 0 and @os.system("touch MARKER") == 0',
        "model_size > 0 and __import__('os').system('touch MARKER') == 0",
        "model_size.__class__.__init__ == 0",
        "(lambda: __import__('os').system('touch MARKER'))() == 0",
    ],
)
@pytest.mark.parametrize("option", ["--where", "--holdout"])
def test_a_selection_that_tries_to_run_code_runs_nothing_and_exits_2(folder, capsys, selection, option):
    before = snapshot(folder)
    if option == "--where":
        code = main(["fit", "runs.csv", "--law", "chinchilla", *FAST, "--where", selection, "--out", "fit.json"])
    else:
        code = main(["report", "runs.csv", "--law", "additive", *FAST, "--holdout", selection, "--out", "r"])
    one_error(capsys, code, "not allowed")
    assert not (folder / "MARKER").exists()
    assert snapshot(folder) == before


def test_the_api_selection_runs_no_code_either(folder):
    runs = mj.load_runs("runs.csv", **TABLE)
    with pytest.raises(mj.MixlawError, match="not allowed"):
        runs.query('model_size > 0 and @os.system("touch MARKER") == 0')
    with pytest.raises(mj.MixlawError, match="not allowed"):
        split_holdout(runs, "__import__('os').system('touch MARKER') == 0")
    assert not (folder / "MARKER").exists()


@pytest.mark.parametrize(
    "selection, needle",
    [
        ("n_tokens", "bare column"),
        ("model_size * 2", "not allowed"),
        ("model_size = 122000000", "use =="),
        ("1", "comparison"),
    ],
)
def test_a_selection_that_is_not_a_comparison_is_refused(folder, capsys, selection, needle):
    code = main(["fit", "runs.csv", "--law", "chinchilla", *FAST, "--where", selection, "--out", "fit.json"])
    one_error(capsys, code, needle)
    with pytest.raises(mj.MixlawError, match=needle):
        mj.load_runs("runs.csv", **TABLE).query(selection)


def test_a_selection_selects_the_rows_a_comparison_names(folder):
    runs = mj.load_runs("runs.csv", **TABLE)
    chosen = runs.query("model_size > 2e8 and not (weight_a == 0.5 or n_tokens < 3e9)")
    f = frame()
    expected = (f.model_size > 2e8) & ~((f.weight_a == 0.5) | (f.n_tokens < 3e9))
    assert chosen.frame.index.tolist() == f.index[expected].tolist()


# 3-4: outputs are never an input, and only regular files are replaced


@pytest.mark.parametrize(
    "command",
    [
        lambda t, fit, boot: ["fit", t, "--law", "chinchilla", *FAST, "--out", t],
        lambda t, fit, boot: ["bootstrap", t, "--law", "chinchilla", *FAST, "--replicates", "2", "--out", t],
        lambda t, fit, boot: ["predict", fit, t, "--out", fit],
        lambda t, fit, boot: ["predict", fit, t, "--out", t],
        lambda t, fit, boot: ["optimize", fit, "--N", "1e9", "--D", "2e10", "--out", fit],
        lambda t, fit, boot: ["predict", boot, t, "--out", boot],
        lambda t, fit, boot: [
            "optimize",
            fit,
            "--N",
            "1e9",
            "--D",
            "2e10",
            "--out",
            os.path.join(".", "sub", "..", fit),
        ],
    ],
    ids=[
        "fit",
        "bootstrap",
        "predict over the fit",
        "predict over the table",
        "optimize",
        "predict over a bootstrap",
        "another spelling",
    ],
)
def test_an_output_that_names_an_input_exits_2_and_leaves_the_input_byte_identical(
    fitted, capsys, command, monkeypatch
):
    where, table, _, additive = fitted
    monkeypatch.chdir(where)
    os.makedirs("sub", exist_ok=True)
    boot = where / "boot.json"
    if not boot.exists():
        assert (
            main(
                [
                    "bootstrap",
                    "runs.csv",
                    "--law",
                    "additive",
                    *FAST,
                    "--replicates",
                    "2",
                    "--replicate-starts",
                    "4",
                    "--replicate-schedule",
                    "2x10",
                    "--out",
                    str(boot),
                ]
            )
            == 0
        )
        capsys.readouterr()
    before = snapshot(where)
    code = main(command("runs.csv", additive.name, boot.name))
    one_error(capsys, code, "is an input of this command")
    assert snapshot(where) == before


def test_a_hard_link_to_an_input_counts_as_the_input(folder, capsys):
    os.link("runs.csv", "alias.csv")
    before = snapshot(folder)
    code = main(["fit", "runs.csv", "--law", "chinchilla", *FAST, "--out", "alias.csv"])
    one_error(capsys, code, "is an input")
    assert snapshot(folder) == before


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder", "device"])
def test_only_a_regular_file_is_replaced_at_the_output_path(folder, capsys, kind):
    target = folder / "out.json"
    if kind == "symlink":
        (folder / "elsewhere.json").write_text("keep me")
        target.symlink_to(folder / "elsewhere.json")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:  # a device node of its own (c 1 3, as /dev/null): a buggy run must not replace the system's
        try:
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs root (CI runs as root)")
    before = os.lstat(target)
    code = main(["fit", "runs.csv", "--law", "chinchilla", *FAST, "--out", str(target)])
    one_error(capsys, code, "not a regular file")
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    if kind == "symlink":
        assert (folder / "elsewhere.json").read_text() == "keep me"
    with pytest.raises(mj.MixlawError, match="not a regular file"):
        _io.atomic_write_json(target, {"kind": "fit"})


# 5-6, 8: losses, headers, file formats and column types


@pytest.mark.parametrize("loss", [-1.0, 0.0])
def test_a_loss_that_is_not_positive_exits_2_naming_the_column_and_row(folder, capsys, loss):
    f = frame()
    f.loc[4, "x_loss"] = loss
    f.to_csv("runs.csv", index=False)
    code = main(["fit", "runs.csv", "--law", "chinchilla", *FAST, "--out", "fit.json"])
    one_error(capsys, code, "column 'x_loss', row 4", "must be > 0")
    assert not (folder / "fit.json").exists()


def test_an_implausibly_large_loss_is_warned_about():
    f = frame()
    f.loc[2, "x_loss"] = 1e300
    with pytest.warns(MixlawWarning, match="column 'x_loss', row 2: loss 1e\\+300 is above 100"):
        mj.load_runs(f, **TABLE)


def test_a_duplicated_header_exits_2_naming_it(folder, capsys):
    text = (folder / "runs.csv").read_text().replace("weight_b", "weight_a", 1)
    (folder / "runs.csv").write_text(text)
    code = main(["fit", "runs.csv", "--law", "chinchilla", *FAST, "--out", "fit.json"])
    one_error(capsys, code, "column 'weight_a' appears 2 times")


def test_parquet_tables_are_read(folder):
    frame().to_parquet("runs.parquet")
    runs = mj.load_runs("runs.parquet", **TABLE)
    np.testing.assert_array_equal(runs.losses[:, 0], frame().x_loss.to_numpy())


@pytest.mark.parametrize(
    "column, values",
    [
        ("model_size", pd.to_datetime(np.arange(20) + 1, unit="D")),
        ("n_tokens", pd.to_timedelta(np.arange(20) + 1, unit="s")),
    ],
)
def test_dates_and_durations_are_not_numbers(column, values):
    with pytest.raises(mj.MixlawError, match=f"column '{column}' holds (dates|durations)"):
        mj.load_runs(frame().assign(**{column: values}), **TABLE)


@pytest.mark.parametrize("encoding, sep", [("utf-16", ","), ("utf-8-sig", ";"), ("utf-8", "\t"), ("utf-32", ";")])
def test_tables_in_utf16_or_separated_by_semicolons_or_tabs_are_read(tmp_path, encoding, sep):
    path = tmp_path / "runs.csv"
    path.write_bytes(frame().to_csv(index=False, sep=sep).encode(encoding))
    runs = mj.load_runs(path, **TABLE)
    np.testing.assert_allclose(runs.losses[:, 0], frame().x_loss.to_numpy(), rtol=1e-15)


def test_a_table_in_another_encoding_or_with_decimal_commas_gets_a_hint(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_bytes(frame().to_csv(index=False).replace("weight_a", "weight_\u00e4").encode("latin-1"))
    with pytest.raises(mj.MixlawError, match="not UTF-8 text, byte 0xe4 .*save the table as UTF-8"):
        mj.load_runs(path, **TABLE)
    path.write_text(frame().to_csv(index=False, sep=";", decimal=","))
    with pytest.raises(mj.MixlawError, match="decimal comma"):
        mj.load_runs(path, **TABLE)


# 9: results without meaning


def test_a_law_without_the_mixture_has_no_optimal_mixture(fitted, capsys):
    _, _, chinchilla, _ = fitted
    code = main(["optimize", str(chinchilla), "--N", "1e9", "--D", "2e10"])
    one_error(capsys, code, "does not depend on the mixture")
    with pytest.raises(mj.MixlawError, match="does not depend on the mixture"):
        mj.optimal_mixture(mj.load_fit(chinchilla), N=1e9, D=2e10)


@pytest.mark.parametrize("column, value", [("model_size", 1e3), ("n_tokens", 1e15)])
def test_predictions_far_outside_the_fitted_range_are_warned_about(fitted, capsys, tmp_path, column, value):
    _, _, _, additive = fitted
    f = frame()
    f[column] = value
    f.to_csv(tmp_path / "far.csv", index=False)
    assert main(["predict", str(additive), str(tmp_path / "far.csv")]) == 0
    out = capsys.readouterr()
    name = "N" if column == "model_size" else "D"
    assert f"20 rows have {name} more than 1000x outside the fitted range" in out.err
    with pytest.warns(MixlawWarning, match=f"rows have {name} more than 1000x outside"):
        mj.load_fit(additive).predict(f)


def test_predictions_at_mixtures_far_outside_the_fitted_ones_are_warned_about():
    f = frame()
    inner = f[f.weight_a.between(0.25, 0.75)]  # weight_a in [0.3, 0.7]
    fit = mj.fit(mj.load_runs(inner, **TABLE), "mixing_exp", search=mj.Search(256, ((8, 50), (2, 100))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.predict(f[f.weight_a.between(0.25, 0.75)].assign(weight_a=0.79, weight_b=0.21))  # 0.09 beyond: silent
    with pytest.warns(
        MixlawWarning, match=r"4 rows have a mixture weight more than 0.1 outside .*weight_a = 0.9, "
    ) as got:
        fit.predict(f[f.weight_a > 0.8])
    assert got[0].filename == __file__  # attributed to the line that asked for the prediction, not the package's
    with pytest.warns(MixlawWarning, match=r"weight_a = 0.1, fitted \[0.3, 0.7\]"):
        fit.predict(f[f.weight_a < 0.2])


def test_absurd_predicted_losses_are_warned_about_and_the_fitted_losses_travel_with_the_fit(fitted, tmp_path):
    import json

    _, _, _, additive = fitted
    fit = mj.load_fit(additive)
    largest = frame()["x_loss"].max()
    assert fit.loss_range == {"x_loss": [pytest.approx(frame()["x_loss"].min()), pytest.approx(largest)]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.predict(frame())  # the fitted rows: nothing absurd
    payload = json.loads(additive.read_text())
    payload["coordinates"][0][0] = 12 * largest  # E: every prediction above 10x the largest fitted loss
    (tmp_path / "absurd.json").write_text(json.dumps(payload))
    with pytest.warns(MixlawWarning, match=r"20 predictions of 'x_loss' are absurd for a loss: above 10x the largest"):
        mj.load_fit(tmp_path / "absurd.json").predict(frame())
    del payload["loss_range"]  # a file from an earlier version: no range, no warning
    (tmp_path / "old.json").write_text(json.dumps(payload))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mj.load_fit(tmp_path / "old.json").predict(frame())
    payload["loss_range"] = {"x_loss": [1.0]}
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    with pytest.raises(mj.MixlawError, match="is not a valid fit file: loss_range must give every target"):
        mj.load_fit(tmp_path / "bad.json")


@pytest.mark.parametrize("column, value", [("model_size", 1e-30), ("n_tokens", 1e-300)])
def test_absurd_budgets_print_no_huge_numbers_nor_inf(fitted, capsys, tmp_path, column, value):
    _, _, _, additive = fitted
    f = frame()
    f[column] = value
    f.to_csv(tmp_path / "far.csv", index=False)
    code = main(["predict", str(additive), str(tmp_path / "far.csv")])
    out = capsys.readouterr()
    assert code in (0, 2) and "Traceback" not in out.err
    assert all(len(word) < 40 for word in out.out.split()), out.out
    assert "inf" not in out.out.lower() and "nan" not in out.out.lower()


def test_a_huge_mre_is_printed_in_a_few_digits(fitted, capsys, tmp_path):
    import json

    _, table, _, additive = fitted
    payload = json.loads(additive.read_text())
    payload["coordinates"][0][0] = 1e170  # E (the first coordinate, not log-scaled): an MRE of ~1e171 %
    (tmp_path / "huge.json").write_text(json.dumps(payload))
    assert main(["predict", str(tmp_path / "huge.json"), str(table)]) == 0
    mre = capsys.readouterr().out.splitlines()[0].split()
    assert mre[:2] == ["x_loss", "MRE"] and mre[2].endswith("%") and "e+17" in mre[2] and len(mre[2]) < 12, mre


def test_a_corrupt_fit_file_never_prints_inf(fitted, capsys, tmp_path):
    import json

    _, table, _, additive = fitted
    payload = json.loads(additive.read_text())
    payload["coordinates"][0][0] = 1e308
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    code = main(["predict", str(tmp_path / "bad.json"), str(table)])
    out = capsys.readouterr()
    assert code == 2 and "inf" not in out.out.lower() and "nan" not in out.out.lower()
    warning, error = out.err.strip().splitlines()  # the absurd predictions, then the error: no traceback
    assert warning.startswith("mixlaw: warning: 20 predictions of 'x_loss' are absurd") and error.startswith("mixlaw:")


# 10 (the TeX-named report) is in tests/test_report_safety.py

# 11: the API names the argument


@pytest.fixture(scope="module")
def runs():
    return mj.load_runs(frame(), **TABLE)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda r: mj.fit(frame(), "chinchilla"), "runs must be a RunTable, not DataFrame"),
        (lambda r: mj.fit("runs.csv", "chinchilla"), "runs must be a RunTable, not str"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(n_starts=256.5)), "n_starts must be a whole number"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(n_starts="256")), "n_starts must be a whole number"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(seed=None)), "seed must be a whole number"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(seed=2**70)), "seed must be in"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(schedule=())), "schedule must be a non-empty"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(schedule=((0, 0),))), "starts kept must be >= 1"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(64, ((16, 10, -0.5),))), "row fraction must lie in"),
        (lambda r: mj.fit(r, "chinchilla", search=mj.Search(4, ((512, 10),))), "keeps 512 starts, but only 4"),
        (
            lambda r: mj.fit(r, "chinchilla", objective=mj.Objective(huber_delta=float("nan"))),
            "huber_delta must be finite",
        ),
        (
            lambda r: mj.fit(r, "chinchilla", parameter_bounds={"alpha": (float("nan"), 1.0)}),
            "bounds for 'alpha': the low bound",
        ),
        (lambda r: mj.bootstrap(r, "chinchilla", n_replicates=2.5), "n_replicates must be a whole number"),
        (lambda r: r.subset([0, 10000]), "row position 10000 is out of range"),
        (lambda r: r.subset(np.ones(3, dtype=bool)), "one entry per row"),
        (lambda r: r.query("a = 3"), "use =="),
        (
            lambda r: mj.load_runs(frame(), **{**TABLE, "weights": ["weight_a", "weight_b"]}, k="2"),
            "k must be a whole number",
        ),
    ],
)
def test_bad_api_arguments_raise_mixlaw_error_naming_them(runs, call, needle):
    with pytest.raises(mj.MixlawError, match=needle.replace("(", r"\(").replace("*", r"\*")):
        call(runs)


def test_a_single_target_may_be_named_as_a_string(runs):
    result = mj.fit(runs, "chinchilla", targets="x_loss", search=mj.Search(64, ((4, 10),)))
    assert result.targets == ("x_loss",)


def test_a_bootstrap_around_a_fit_with_another_objective_is_refused(runs):
    full = mj.fit(runs, "chinchilla", search=mj.Search(64, ((4, 10),)), objective=mj.Objective(huber_delta=1e-2))
    with pytest.raises(mj.MixlawError, match="huber_delta: full fit 0.01, bootstrap 0.001"):
        mj.bootstrap(
            runs, "chinchilla", full_fit=full, n_replicates=2, objective=mj.Objective(), search=mj.Search(8, ((2, 10),))
        )


# 12: Ctrl-C while the process shuts down


def test_ctrl_c_while_exiting_after_the_file_is_written_is_quiet(tmp_path):
    """SIGINT arrives from an exit handler that runs before JAX's own: no traceback, exit code 130; the test's own
    process keeps the handler it had (the default one, or SIG_IGN when started in the background)."""
    handler = signal.getsignal(signal.SIGINT)
    frame().to_csv(tmp_path / "runs.csv", index=False)
    script = textwrap.dedent("""
        import atexit, os, signal, sys, time
        sys.argv = ["mixlaw", "fit", "runs.csv", "--law", "chinchilla", "--starts", "64", "--schedule", "4x10",
                    "--quiet", "--out", "fit.json"]
        from mixlaw_jax.cli import run
        atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(2)))
        run()
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MIXLAW_COMPILE_CACHE": "off"},
    )
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "mixlaw: interrupted"
    assert mj.load_fit(tmp_path / "fit.json").law == "chinchilla"
    assert signal.getsignal(signal.SIGINT) is handler


# 13: clear messages


def test_the_constant_domain_warning_is_printed_once(folder, capsys):
    f = frame()
    f.insert(2, "weight_c", 0.0)
    f.to_csv("runs.csv", index=False)
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        assert main(["fit", "runs.csv", "--law", "simple", *FAST, "--out", "fit.json"]) == 0
    assert not raw, [str(w.message) for w in raw]  # every warning is the command's own line
    err = capsys.readouterr().err
    assert sum("weight_c" in line for line in err.splitlines()) == 1, err
    assert "warnings.warn" not in err and "MixlawWarning" not in err


@pytest.mark.parametrize("schedule", ["16x30x0", "16x30x2", "16x30x-0.5", "0x30", "16"])
def test_invalid_schedules_exit_2(folder, capsys, schedule):
    code = main(
        [
            "fit",
            "runs.csv",
            "--law",
            "chinchilla",
            "--starts",
            "64",
            "--schedule",
            schedule,
            "--quiet",
            "--out",
            "fit.json",
        ]
    )
    one_error(capsys, code, "invalid schedule")


def test_more_starts_kept_than_screened_exits_2(folder, capsys):
    code = main(["fit", "runs.csv", "--law", "chinchilla", "--starts", "4", "--quiet", "--out", "fit.json"])
    one_error(capsys, code, "keeps 512 starts, but only 4 are screened")


def test_messages_say_what_is_wrong_in_the_users_terms(fitted, runs, tmp_path, capsys):
    _, table, _, additive = fitted
    with pytest.raises(mj.MixlawError, match="bounds for 'alpha': the low bound must be a number"):
        mj.fit(runs, "chinchilla", parameter_bounds={"alpha": (float("nan"), 1)})
    with pytest.raises(mj.MixlawError, match="k must be a whole number, not '7'"):
        mj.load_runs(frame(), **TABLE, k="7")
    with pytest.raises(mj.MixlawError) as err:
        mj.load_fit(tmp_path / "missing.json")
    assert "MixlawError(" not in str(err.value)
    other = frame().rename(columns={"weight_a": "weight_x", "weight_b": "weight_y"})
    with pytest.raises(
        mj.MixlawError,
        match="unknown weight column 'weight_a' \\(and 1 more\\): the table has no such column, and this fit was made",
    ) as err:
        mj.load_fit(additive).predict(other)
    assert "did you mean" not in str(err.value)
    no_n = frame().drop(columns="model_size")
    with pytest.raises(mj.MixlawError, match="needs N \\(model size\\), and the run table has no such column") as err:
        mj.fit(mj.load_runs(no_n, **{**TABLE, "N": None}), "chinchilla")
    assert "load_runs" not in str(err.value)
    one = frame().assign(weight_a=1.0).drop(columns="weight_b")
    with pytest.raises(mj.MixlawError, match="fits mixtures of two or more domains; the run table has 1 weight"):
        mj.fit(mj.load_runs(one, **TABLE, warn=False), "additive")
    code = main(["optimize", str(additive), "--N", "-7e9", "--D", "1e10"])
    one_error(capsys, code, "invalid value '-7e9'")


def test_a_fit_file_error_is_not_wrapped_twice(fitted, tmp_path):
    import json

    _, _, _, additive = fitted
    payload = json.loads(additive.read_text())
    payload["coordinates"] = [[1.0, 2.0]]
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    with pytest.raises(mj.MixlawError) as err:
        mj.load_fit(tmp_path / "bad.json")
    assert "MixlawError(" not in str(err.value) and "coordinates have shape (1, 2)" in str(err.value)


def test_the_api_warns_once_about_a_constant_domain():
    f = frame()
    f.insert(2, "weight_c", 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = mj.load_runs(f, **TABLE)
        mj.fit(runs, "simple", search=mj.Search(64, ((4, 10),)))
    assert sum("weight_c" in str(w.message) for w in caught) == 1, [str(w.message) for w in caught]
