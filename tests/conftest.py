"""Shared fixtures: the real tables in ../shared/data fail the run under CI=true when missing, and skip elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import mixlaw_jax as mj

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# the on-disk compilation cache (the command's and the Python API's, mixlaw_jax.compile_cache) stays off in tests,
# and in the processes they start (they must not write to ~/.cache); tests/test_cli.py and tests/test_compile_cache.py
# turn it on in a temporary folder to test it
os.environ["MIXLAW_COMPILE_CACHE"] = "off"


def shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"real data not found at {path} (needs ../shared/data beside the repository)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def slimpajama():
    """The SlimPajama table of Shukor et al. (all rows; 8 targets)."""
    return mj.load_runs(
        shared_file("slimpajama/dmsl_llm_slimpajama.csv"),
        weights="weight_*",
        N="model_size",
        D="n_tokens",
        targets="*_loss",
    )


@pytest.fixture(scope="session")
def chinchilla_frame():
    import pandas as pd

    frame = pd.read_csv(shared_file("chinchilla_epoch/svg_extracted_data.csv"))
    frame = frame.sort_values("loss").iloc[:-5]  # Epoch drop the 5 highest-loss points
    frame["D"] = frame["Training FLOP"] / (6 * frame["Model Size"])
    frame["h"] = 1.0
    return frame


@pytest.fixture(scope="session")
def slimpajama_additive(slimpajama):
    """Additive law, default bounds, fitted to the training rows (model_size <= 1.3e9) with a light schedule: the
    additive law reaches the same optimum with it (tests/test_slimpajama.py checks the default's objectives)."""
    return mj.fit(
        slimpajama.query("model_size <= 1.3e9"),
        "additive",
        search=mj.Search(4096, ((256, 30, 0.25), (64, 100, 1.0), (16, 200, 1.0))),
    )


#: Test groups that take minutes, longest first. The suite runs on two pytest-xdist workers (README), which take
#: whole groups in collection order: starting these first lets both workers finish together.
LONGEST_FIRST = (
    "unbounded-joint",
    "unbounded-additive",
    "slimpajama_additive",
    "test_slimpajama",
    "test_benchmarks_runner",
    "test_synthetic",
)


def xdist_group(item) -> str:
    """The worker group of a test: its module, except that the tests sharing a heavy fixture form one group
    (each fixture is then computed once) and each law of the unbounded SlimPajama fit is a group of its own."""
    if "unbounded" in item.fixturenames:
        return f"unbounded-{item.callspec.params['unbounded']}"
    if "slimpajama_additive" in item.fixturenames:
        return "slimpajama_additive"
    return item.module.__name__.rpartition(".")[2]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test with its ``xdist_group`` (read by ``--dist loadgroup``) and run the longest groups first."""
    groups = {item: xdist_group(item) for item in items}
    for item, group in groups.items():
        item.add_marker(pytest.mark.xdist_group(group))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(groups[item], len(rank)))


def two_domain_frame() -> pd.DataFrame:
    """k = 2: five mixtures x N in {1e8, 3e8} x D in {2e9, 5e9} (20 rows, 10 runs), a known additive-like loss."""
    rows = [
        {"weight_a": a, "weight_b": round(1 - a, 1), "model_size": n, "n_tokens": d}
        for a in (0.1, 0.3, 0.5, 0.7, 0.9)
        for n in (1e8, 3e8)
        for d in (2e9, 5e9)
    ]
    f = pd.DataFrame(rows)
    f["x_loss"] = 2.0 + 0.4 * f.weight_a + 400 / f.model_size**0.3 + 400 / f.n_tokens**0.3
    return f
