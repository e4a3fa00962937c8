"""Hostile inputs, numerical safety, reproducibility and crash-safe result files (issue 8).

Every class of bad input is checked through the Python API and through the ``mixlaw`` command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax import _io
from mixlaw_jax.cli import main
from mixlaw_jax.errors import MixlawWarning

TINY = mj.Search(64, ((16, 20), (4, 40)))
TABLE = {"weights": "weight_*", "N": "model_size", "D": "n_tokens", "targets": "*_loss"}


def runs_frame() -> pd.DataFrame:
    """Mixtures (0.2, 0.8), (0.5, 0.5), (0.7, 0.3) x N in {1e8, 3e8} x D in {2e9, 5e9}: rows 0-3 hold the
    first mixture, 4-7 the second, 8-11 the third."""
    rows = [
        {"weight_a": a, "weight_b": b, "model_size": n, "n_tokens": d}
        for a, b in ((0.2, 0.8), (0.5, 0.5), (0.7, 0.3))
        for n in (1e8, 3e8)
        for d in (2e9, 5e9)
    ]
    f = pd.DataFrame(rows)
    f["x_loss"] = 2.0 + 0.4 * f.weight_a + 400 / f.model_size**0.3 + 400 / f.n_tokens**0.3
    return f


def with_cell(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    f = frame.astype({column: object})
    f.loc[row, column] = value
    return f


@dataclasses.dataclass(frozen=True)
class Bad:
    """One bad input: how to spoil the table, the load_runs options / command flags that go with it, the
    law fitted (None: loading must already fail) and the text the error must contain."""

    name: str
    edit: Callable[[pd.DataFrame], pd.DataFrame | bytes]
    message: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    flags: tuple[str, ...] = ()
    law: str | None = None


BAD_INPUTS = [
    Bad("missing column", lambda f: f.drop(columns="model_size"), "unknown size column 'model_size'"),
    Bad(
        "misspelt column",
        lambda f: f,
        "unknown target column 'x_los'; did you mean 'x_loss'?",
        {"targets": ["x_los"]},
        ("--targets", "x_los"),
    ),
    Bad(
        "non-numeric cell",
        lambda f: with_cell(f, "model_size", 3, "1e8x"),
        "column 'model_size', row 3: non-numeric value '1e8x'",
    ),
    Bad("NaN in N", lambda f: with_cell(f, "model_size", 3, np.nan), "column 'model_size', row 3: missing value"),
    Bad("inf in D", lambda f: with_cell(f, "n_tokens", 4, np.inf), "column 'n_tokens', row 4: value inf is not finite"),
    Bad("NaN in a weight", lambda f: with_cell(f, "weight_a", 5, np.nan), "column 'weight_a', row 5: missing value"),
    Bad(
        "inf in a loss",
        lambda f: with_cell(f, "x_loss", 1, -np.inf),
        "column 'x_loss', row 1: value -inf is not finite",
    ),
    Bad("N = 0", lambda f: with_cell(f, "model_size", 0, 0.0), "column 'model_size', row 0: value 0.0 must be > 0"),
    Bad(
        "D < 0",
        lambda f: with_cell(f, "n_tokens", 2, -5e9),
        "column 'n_tokens', row 2: value -5000000000.0 must be > 0",
    ),
    Bad(
        "negative weight",
        lambda f: with_cell(with_cell(f, "weight_a", 1, -0.2), "weight_b", 1, 1.2),
        "column 'weight_a', row 1: negative weight -0.2",
    ),
    Bad(
        "weights do not sum to 1",
        lambda f: with_cell(f, "weight_a", 6, 0.75),
        "row 6: weights sum to 1.25, not 1 (tolerance 0.005",
    ),
    Bad(
        "law k differs from the weight columns",
        lambda f: f,
        "weights 'weight_*' resolve to 2 columns (weight_a, weight_b), but k = 3 domains are expected",
        {"k": 3},
        ("--k", "3"),
    ),
    Bad(
        "fewer rows than parameters",
        lambda f: f.iloc[[0, 1, 4, 5, 8, 9]].reset_index(drop=True),
        "target 'x_loss' has 6 observed rows, fewer than the 9 parameters of law 'additive'",
        law="additive",
    ),
    Bad(
        "duplicate rows",
        lambda f: pd.concat([f, f.iloc[[3]]], ignore_index=True),
        "rows 3, 12 (identical)",
        {"duplicates": "error"},
        ("--duplicates", "error"),
    ),
    Bad(
        "near-duplicate checkpoints",
        lambda f: pd.concat([f, f.iloc[[3]].assign(n_tokens=5.001e9, x_loss=f.x_loss[3] - 1e-4)], ignore_index=True),
        "rows 3, 12 (column 'n_tokens': 5e+09, 5.001e+09)",
        {"duplicates": "error"},
        ("--duplicates", "error"),
    ),
    Bad("empty table", lambda f: f.iloc[:0], "the run table is empty"),
    Bad("target with no values", lambda f: f.assign(x_loss=np.nan), "target column 'x_loss' has no values"),
    Bad("not a table", lambda f: bytes(range(256)) * 4, "cannot read"),
]


def write_table(content: pd.DataFrame | bytes, path) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content.to_csv(path, index=False)
    return str(path)


def fit_args(table: str, out: str, law: str, *flags: str) -> list[str]:
    """Arguments of ``mixlaw fit`` with few starts (and a schedule that keeps no more than are screened)."""
    return ["fit", table, "--law", law, "--out", out, "--quiet", "--starts", "64", "--schedule", "16x20,4x40", *flags]


def mixlaw_process(*args: str) -> list[str]:
    """The command line of a ``mixlaw`` process."""
    return [sys.executable, "-m", "mixlaw_jax", *args]


def warned_frame() -> pd.DataFrame:
    """Weights that sum to 1.1, a third domain that is 0 in every row, and row 3 logged twice as row 12."""
    f = runs_frame()
    f[["weight_a", "weight_b"]] *= 1.1
    f.insert(2, "weight_c", 0.0)
    return pd.concat([f, f.iloc[[3]]], ignore_index=True)


WARNINGS = [
    (
        "weights that never vary: column 'weight_c' is 0 in every row; a law's parameters for such a domain "
        "(its exponent) are not identifiable"
    ),
    "kept 1 group of rows that repeat a checkpoint of the same run (D within relative 0.001): rows 3, 12 (identical)",
    "renormalised the weights of 13 rows onto the simplex; largest correction at row",
]

DETERMINISM_SCRIPT = textwrap.dedent("""
    import json, sys
    import mixlaw_jax as mj
    runs = mj.load_runs(sys.argv[1], weights="weight_*", N="model_size", D="n_tokens", targets="*_loss")
    result = mj.fit(runs, "chinchilla", search=mj.Search(64, ((16, 20), (4, 40)), seed=0))
    print(json.dumps([[float(v).hex() for v in row] for row in result.coordinates]))
""")


@pytest.fixture(scope="module")
def subprocesses(tmp_path_factory):
    """In fresh interpreters, at once: ``mixlaw fit`` on a table with a non-numeric cell and on the warned
    table, and a seed-0 fit. Returns {name: CompletedProcess}."""
    folder = tmp_path_factory.mktemp("processes")
    bad = write_table(BAD_INPUTS[2].edit(runs_frame()), folder / "bad.csv")
    warned = write_table(warned_frame(), folder / "warned.csv")
    jobs = {
        "bad input": mixlaw_process(*fit_args(bad, str(folder / "bad.json"), "chinchilla")),
        "warnings": mixlaw_process(
            *fit_args(
                warned, str(folder / "warned.json"), "chinchilla", "--renormalize", "--where", "model_size > 1e12"
            )
        ),
        "determinism": [sys.executable, "-c", DETERMINISM_SCRIPT, write_table(runs_frame(), folder / "runs.csv")],
    }
    with ThreadPoolExecutor(len(jobs)) as pool:
        done = pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=300), jobs.values())
        return dict(zip(jobs, done))


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c.name)
def test_bad_input_through_the_api_raises_mixlaw_error_naming_it(case, tmp_path):
    table = write_table(case.edit(runs_frame()), tmp_path / "runs.csv")
    with pytest.raises(mj.MixlawError) as err:
        runs = mj.load_runs(table, **{**TABLE, **case.kwargs})
        if case.law:
            mj.fit(runs, case.law, search=TINY)
    assert case.message in str(err.value)


def assert_one_error_line(stderr: str, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("mixlaw: error: ") and message in lines[-1], stderr
    assert all(line.startswith("mixlaw: ") for line in lines), stderr  # no traceback, no stray output


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c.name)
def test_bad_input_through_the_command_is_one_error_line_and_exit_code_2(case, tmp_path, capsys):
    table = write_table(case.edit(runs_frame()), tmp_path / "runs.csv")
    out = tmp_path / "fit.json"
    assert main(fit_args(table, str(out), case.law or "chinchilla", *case.flags)) == 2
    assert_one_error_line(capsys.readouterr().err, case.message)
    assert not out.exists()


def test_bad_input_in_a_real_mixlaw_process_exits_2_without_a_traceback(subprocesses):
    proc = subprocesses["bad input"]
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_error_line(proc.stderr, BAD_INPUTS[2].message)


@pytest.mark.parametrize("message", WARNINGS)
def test_usable_but_doubtful_input_warns_through_the_api(message):
    with pytest.warns(MixlawWarning) as caught:
        runs = mj.load_runs(warned_frame(), **TABLE, renormalize=True)
    assert any(message in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert runs.n_rows == 13 and np.allclose(runs.h.sum(axis=1), 1.0)


def test_usable_but_doubtful_input_warns_through_the_command(subprocesses):
    proc = subprocesses["warnings"]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[-1] == "mixlaw: error: the row selection is empty: no rows left to fit"
    warned = [line for line in lines if line.startswith("mixlaw: warning: ")]
    assert len(warned) == 3 and all(any(m in line for line in warned) for m in WARNINGS), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def runs():
    return mj.load_runs(runs_frame(), **TABLE)


@pytest.fixture(scope="module")
def tiny_fit(runs):
    return mj.fit(runs, "chinchilla", search=TINY)


def test_a_fit_applied_to_a_table_with_another_number_of_domains_is_an_error(tiny_fit):
    three = runs_frame().assign(weight_c=0.0)
    with pytest.raises(mj.MixlawError, match="the table has 3 weight columns; this fit has 2"):
        tiny_fit.predict(mj.load_runs(three, **TABLE, warn=False))


FRAGILE = mj.register_law(
    mj.Law.from_predict(
        "robustness_fragile",
        (mj.Param("E"), mj.Param("A", positive=True, init=(0.0, 8.0)), mj.Param("alpha")),
        lambda p, x: jnp.where(
            (p["alpha"] > 0.5) & (x.log_n < jnp.log(1e12)), p["E"] + jnp.exp(p["A"] - p["alpha"] * x.log_n), jnp.nan
        ),
        uses_d=False,
        formula="E + A / N^alpha, NaN where alpha <= 0.5 or N >= 1e12",
    ),
    overwrite=True,
)


FRAGILE_FIT = mj.Search(64, ((4, 10),))


def fragile_frame(largest_n: float) -> pd.DataFrame:
    f = runs_frame().assign(model_size=np.tile([1e8, 1e8, 3e8, largest_n], 3))
    return f.assign(y_loss=f.x_loss + 0.5)


def test_starts_that_diverge_are_discarded_and_counted():
    runs = mj.load_runs(fragile_frame(1e9), **TABLE, warn=False)
    result = mj.fit(runs, FRAGILE, search=FRAGILE_FIT)
    for t in ("x_loss", "y_loss"):
        assert 0 < result.diagnostics[t].n_failed_starts < 64
    assert np.isfinite(result.coordinates).all() and np.isfinite(result.objective).all()
    assert np.isfinite(result.predict(runs).to_numpy()).all()


def test_a_target_whose_every_start_fails_is_left_out_with_a_warning_naming_it():
    f = runs_frame().assign(model_size=np.tile([1e8, 1e8, 1e13, 1e13], 3))
    far = f.model_size > 1e12  # the law is NaN there
    f = f.assign(y_loss=np.where(far, f.x_loss + 0.5, np.nan), x_loss=np.where(far, np.nan, f.x_loss))
    runs = mj.load_runs(f, **TABLE, warn=False)
    with pytest.warns(MixlawWarning, match=r"every start failed .* for targets \['y_loss'\]: left out"):
        result = mj.fit(runs, FRAGILE, search=FRAGILE_FIT)
    assert result.targets == ("x_loss",) and result.settings.failed_targets == ["y_loss"]
    near = runs.subset(~far.to_numpy())
    assert np.isfinite(result.coordinates).all() and np.isfinite(result.predict(near).to_numpy()).all()


def test_a_batch_whose_every_target_fails_is_an_error_naming_them():
    runs = mj.load_runs(fragile_frame(1e13), **TABLE, warn=False)  # the law is NaN at N = 1e13
    with pytest.raises(mj.MixlawError, match=r"every start failed .* for targets \['x_loss', 'y_loss'\]"):
        mj.fit(runs, FRAGILE, search=FRAGILE_FIT)


def test_predictions_where_the_law_overflows_are_an_error_naming_the_row(tiny_fit):
    steep = tiny_fit.coordinates.copy()
    steep[0, 2] = 2.5  # alpha at its default upper bound
    fit = dataclasses.replace(tiny_fit, coordinates=steep)
    with pytest.raises(mj.MixlawError, match=r"row 0 \(N = 1e-300"):
        fit.predict(runs_frame().assign(model_size=1e-300).iloc[[0, 1, 4, 5, 8, 9]])


STEEP = mj.FitResult(
    law="additive",
    k=3,
    targets=("x_loss", "y_loss"),
    weight_columns=("a", "b", "c"),
    n_column="N",
    d_column="D",
    weight_range=np.array([[0.0, 1.0]] * 3),
    coordinates=np.array(
        [
            [1.5, 8.0, 0.3, 9.0, 0.3, 0.1, 0.2, 0.0, 0.5, 0.7, 0.9],
            [1.0, 6.0, 2.5, 7.0, 2.5, 3.0, -2.0, 0.0, 4.0, 0.1, 9.0],
        ]
    ),
    objective=np.zeros(2),
    diagnostics={},
    settings={},
    provenance={},
)


def test_optimal_mixtures_at_extreme_budgets_are_finite_points_of_the_simplex():
    budgets = np.array([1e-30, 1.0, 7e9, 1e300])  # y_loss has alpha = beta = 2.5
    opt = mj.optimal_mixture(STEEP, N=budgets, D=budgets, weight_bounds="simplex", n_starts=8)
    assert np.isfinite(opt.h).all() and (opt.h >= 0).all() and np.allclose(opt.h.sum(axis=-1), 1.0)
    assert np.isfinite(opt.loss).all() and np.isfinite(opt.objective).all()


def test_optimal_mixtures_where_the_law_overflows_are_an_error_naming_the_budget():
    with pytest.raises(mj.MixlawError, match="N = 1e-300, D = 1e-300"):
        mj.optimal_mixture(
            STEEP,
            N=np.array([1e-300, 1.0, 7e9, 1e300]),
            D=np.array([1e-300, 1.0, 7e9, 1e300]),
            weight_bounds="simplex",
            n_starts=8,
        )


def test_a_fit_at_an_extreme_optimum_is_flagged_and_can_be_saved(tmp_path):
    losses = [1e-3, np.nan, 1e-3, np.nan, 1e-3, np.nan, np.nan, np.nan, np.nan, 1e-3, np.nan, 100.0]  # 5 runs
    runs = mj.load_runs(runs_frame().assign(x_loss=losses), **TABLE, warn=False)
    result = mj.fit(runs, "chinchilla", search=TINY)  # ends with log A near -1e14
    assert np.isfinite(result.coordinates).all() and np.isfinite(result.objective).all()
    result.save(tmp_path / "fit.json")
    diagnostics = mj.load_fit(tmp_path / "fit.json").diagnostics["x_loss"]
    assert diagnostics == result.diagnostics["x_loss"] and any("extreme" in f for f in diagnostics.flags)
    assert diagnostics.gradient_norm is None or np.isfinite(diagnostics.gradient_norm)


def test_same_seed_gives_bit_identical_results(runs, tiny_fit):
    again = mj.fit(runs, "chinchilla", search=TINY)
    assert again.coordinates.tobytes() == tiny_fit.coordinates.tobytes()
    assert json.dumps(again.to_dict()) == json.dumps(tiny_fit.to_dict())


def test_same_seed_gives_bit_identical_results_in_a_fresh_process(tiny_fit, subprocesses):
    proc = subprocesses["determinism"]
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[float(v).hex() for v in row] for row in tiny_fit.coordinates]


def test_results_record_the_seed_the_package_versions_and_the_table_hash(runs, tiny_fit):
    other = mj.fit(runs, "chinchilla", search=dataclasses.replace(TINY, seed=1))
    assert tiny_fit.provenance["seed"] == 0 and other.provenance["seed"] == 1
    assert np.isfinite(other.coordinates).all()
    assert tiny_fit.provenance["table_hash"] == runs.hash() == other.provenance["table_hash"]
    for package in ("mixlaw_jax", "jax", "numpy", "pandas"):
        assert re.match(r"\d+\.\d+", tiny_fit.provenance[package])


def test_saved_fit_predicts_exactly_what_the_in_memory_fit_predicts(runs, tiny_fit, tmp_path):
    tiny_fit.save(tmp_path / "fit.json")
    loaded = mj.load_fit(tmp_path / "fit.json")
    assert loaded.predict(runs).to_numpy().tobytes() == tiny_fit.predict(runs).to_numpy().tobytes()
    assert loaded.to_dict() == tiny_fit.to_dict()


class HalfWriter:
    """A file whose first write stores half the text, then raises as a crash would; records what reached disk."""

    def __init__(self, file):
        self.file, self.written = file, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def write(self, text):
        self.file.write(text[: len(text) // 2])
        self.file.flush()
        self.written = (os.fstat(self.file.fileno()).st_size, len(text))
        raise KeyboardInterrupt("killed mid-write")


@pytest.mark.parametrize("old_file", [True, False], ids=["over an old file", "new file"])
def test_a_save_interrupted_midway_leaves_the_old_file_or_none(tiny_fit, tmp_path, monkeypatch, old_file):
    path = tmp_path / "fit.json"
    if old_file:
        tiny_fit.save(path)
    before = path.read_bytes() if old_file else None
    real_fdopen, writers = os.fdopen, []

    def fdopen(fd, *args, **kwargs):
        writers.append(HalfWriter(real_fdopen(fd, *args, **kwargs)))
        return writers[-1]

    monkeypatch.setattr(_io.os, "fdopen", fdopen)
    with pytest.raises(KeyboardInterrupt):
        dataclasses.replace(tiny_fit, provenance={**tiny_fit.provenance, "seed": 99}).save(path)
    monkeypatch.undo()
    on_disk, full = writers[0].written
    assert 0 < on_disk < full  # the crash did come mid-write
    assert os.listdir(tmp_path) == (["fit.json"] if old_file else [])  # no partial file, no temporary left
    if old_file:
        assert path.read_bytes() == before and mj.load_fit(path).provenance["seed"] == 0


def test_a_failed_rename_is_a_clear_error_and_leaves_the_old_file(tiny_fit, tmp_path, monkeypatch):
    path = tmp_path / "fit.json"
    tiny_fit.save(path)
    before = path.read_bytes()

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io.os, "replace", full_disk)
    with pytest.raises(mj.MixlawError, match="cannot write .*fit.json: No space left on device"):
        tiny_fit.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["fit.json"]


KILLED_SAVE = textwrap.dedent("""
    import os, sys, time
    from mixlaw_jax import _io

    class Stall:
        def __init__(self, file):
            self.file = file
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.file.close()
        def write(self, text):
            self.file.write(text[: len(text) // 2])
            self.file.flush()
            print("half written", flush=True)
            time.sleep(600)

    real_fdopen = os.fdopen
    os.fdopen = lambda fd, *args, **kwargs: Stall(real_fdopen(fd, *args, **kwargs))
    _io.atomic_write_json(sys.argv[1], {"kind": "fit", "schema_version": 1, "values": [0.5] * 10000})
""")


def test_a_save_killed_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "result.json"
    old = {"kind": "fit", "schema_version": 1, "values": [0.25]}
    _io.atomic_write_json(path, old)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
    assert _io.read_json(path, "fit", 1) == old
    stray = [p for p in tmp_path.iterdir() if p.name != "result.json"]
    assert len(stray) == 1 and stray[0].name.startswith(".tmp-") and 0 < stray[0].stat().st_size


def spoil(payload: dict, **changes) -> str:
    out = {**payload, **changes}
    return json.dumps({k: v for k, v in out.items() if v is not None})


BAD_FILES = [
    ("truncated", lambda text, p: text[: len(text) // 2], "is not a valid result file (corrupt or truncated JSON"),
    ("empty", lambda text, p: "", "is not a valid result file (corrupt or truncated JSON"),
    ("binary garbage", lambda text, p: bytes(range(256)) * 4, "is not a valid result file (corrupt or truncated JSON"),
    ("NaN inside", lambda text, p: text.replace(str(p["coordinates"][0][0]), "NaN", 1), "non-finite number NaN"),
    ("not an object", lambda text, p: "[1, 2]", "holds a 'list' result, not a 'fit' result"),
    ("other kind", lambda text, p: spoil(p, kind="mixture"), "holds a 'mixture' result, not a 'fit' result"),
    (
        "other version",
        lambda text, p: spoil(p, schema_version=2),
        "has schema version 2; this version of mixlaw_jax reads version 1",
    ),
    (
        "missing field",
        lambda text, p: spoil(p, coordinates=None),
        "is not a valid fit file: the field 'coordinates' is missing",
    ),
    ("wrong shape", lambda text, p: spoil(p, coordinates=[[1.0]]), "coordinates have shape (1, 1), expected (1, 5)"),
]


def spoilt_file(tiny_fit, folder, spoiler):
    tiny_fit.save(folder / "fit.json")
    bad = spoiler((folder / "fit.json").read_text(), tiny_fit.to_dict())
    target = folder / "bad.json"
    target.write_bytes(bad) if isinstance(bad, bytes) else target.write_text(bad)
    return target


@pytest.mark.parametrize("spoiler, message", [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_corrupt_truncated_or_other_version_files_get_a_clear_error(tiny_fit, tmp_path, spoiler, message):
    with pytest.raises(mj.MixlawError) as err:
        mj.load_fit(spoilt_file(tiny_fit, tmp_path, spoiler))
    assert message in str(err.value)


@pytest.mark.parametrize("spoiler, message", [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_corrupt_truncated_or_other_version_files_through_the_command(tiny_fit, tmp_path, capsys, spoiler, message):
    bad = spoilt_file(tiny_fit, tmp_path, spoiler)
    assert main(["predict", str(bad), write_table(runs_frame(), tmp_path / "runs.csv")]) == 2
    assert_one_error_line(capsys.readouterr().err, message)


def test_unreadable_paths_get_a_clear_error(tmp_path):
    with pytest.raises(mj.MixlawError, match="no such file: .*missing.json"):
        mj.load_fit(tmp_path / "missing.json")
    with pytest.raises(mj.MixlawError, match="cannot read .*: Is a directory"):
        mj.load_fit(tmp_path)
    with pytest.raises(mj.MixlawError, match="will not write .*: it is a folder, not a regular file"):
        _io.atomic_write_json(tmp_path, {"kind": "fit"})
    assert os.listdir(tmp_path) == []


def test_non_finite_numbers_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "r.json"
    _io.atomic_write_json(path, {"kind": "fit", "values": [1.0]})
    with pytest.raises(mj.MixlawError, match=r"cannot save .*r.json: non-finite number at values.b\[1\] \(nan\)"):
        _io.atomic_write_json(path, {"kind": "fit", "values": {"b": [1.0, float("nan")]}})
    assert json.loads(path.read_text()) == {"kind": "fit", "values": [1.0]} and os.listdir(tmp_path) == ["r.json"]


def test_a_new_file_is_world_readable_and_a_replaced_file_keeps_its_mode(tmp_path):
    new, kept = tmp_path / "new.json", tmp_path / "kept.json"
    _io.atomic_write_json(new, {"a": 1})
    kept.write_text("{}")
    kept.chmod(0o600)
    _io.atomic_write_json(kept, {"a": 1})
    assert new.stat().st_mode & 0o777 == 0o644 and kept.stat().st_mode & 0o777 == 0o600
