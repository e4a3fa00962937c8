"""The `mixlaw` command end to end on small data: output files, exit codes, one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mixlaw_jax.simulate import design, random_mixtures, simulate


def mixlaw(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mixlaw_jax", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    h = random_mixtures(10, 3, seed=3)
    frame = design(h, [1e8, 3e8], [2e9, 5e9, 1e10])
    frame = frame.rename(columns={"N": "model_size", "D": "n_tokens"})
    u = np.array([1.5, 8.0, 0.3, 9.0, 0.3, 0.1, 0.2, 0.0, 0.5, 0.7, 0.9])
    frame["x_loss"] = simulate("additive", u, frame.model_size, frame.n_tokens,
                               frame.filter(like="weight_").to_numpy(), noise=0.002)
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_writes_a_loadable_json(table, tmp_path):
    out = tmp_path / "fit.json"
    proc = mixlaw("fit", str(table), "--law", "additive", "--starts", "512", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "x_loss" in proc.stdout and out.exists()
    assert json.loads(out.read_text())["law"] == "additive"


@pytest.mark.parametrize("args, message", [
    (["fit", "missing.csv", "--law", "additive", "--out", "f.json"], "no such file: missing.csv"),
    (["fit", "{table}", "--law", "additive", "--targets", "y_loss", "--out", "f.json"], "unknown target column"),
    (["fit", "{table}", "--law", "nonsense", "--out", "f.json"], "unknown law 'nonsense'"),
])
def test_bad_input_is_one_line_on_stderr_with_exit_code_2(table, tmp_path, args, message):
    proc = mixlaw(*[a.format(table=table) for a in args], cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_help_lists_the_subcommands():
    proc = mixlaw("--help")
    assert proc.returncode == 0 and "demo" in proc.stdout and "fit" in proc.stdout
