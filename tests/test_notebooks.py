"""Every notebook in notebooks/ (jupytext text) executes without error, with tiny settings (MIXLAW_NOTEBOOK_FAST=1),
against this checkout; the kernels share a persistent JAX compilation cache so that programs compiled by one
notebook are reused by the next."""

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

from conftest import shared_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.py"))
#: what each notebook must show: text in its outputs, and how many figures at least.
EXPECT = {
    "quickstart.py": (["held-out", "predicted mean loss at h*"], 3),
    "slimpajama_table2.py": (["train, paper", "wikipedia", "the limits cost", "upper bounds sum to 0.2508 < 1"], 2),
    "optimal_mixtures_uncertainty.py": (["weight_wikipedia", "compute-optimal for C"], 2),
}
NEEDS_DATA = {"slimpajama_table2.py": "slimpajama/dmsl_llm_slimpajama.csv"}


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


def test_every_notebook_is_checked():
    assert NOTEBOOKS == sorted(EXPECT)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, compilation_cache, monkeypatch):
    if name in NEEDS_DATA:
        monkeypatch.setenv("MIXLAW_SHARED_DATA", str(shared_file(NEEDS_DATA[name]).parents[1]))
    monkeypatch.setenv("MIXLAW_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(compilation_cache))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
    notebook = jupytext.read(ROOT / "notebooks" / name)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    snippets, n_figures = EXPECT[name]
    for snippet in snippets:
        assert snippet in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= n_figures
