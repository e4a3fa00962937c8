"""The GPU section of RESULTS.md (benchmarks/gpu.py) is built from the result files on disk, beside the CPU's."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import common, gpu  # noqa: E402


def test_gpu_section_sets_gpu_and_cpu_runs_side_by_side(tmp_path):
    text = gpu.markdown(tmp_path / "figures")
    assert text is not None and text.startswith("## GPU")
    cpu = gpu.cpu_ladders()
    on_gpu = gpu.gpu_ladders()
    assert ("joint", "float64") in on_gpu and ("synthetic", "float32") in on_gpu
    # one table row per rung and problem, with the CPU's own timing where the CPU ran that problem
    for (problem, _), ladder in on_gpu.items():
        for rung in ladder:
            row = next(
                line for line in text.splitlines() if line.startswith(f"| {problem} | {rung['settings']['n_starts']} |")
            )
            assert (problem in cpu) == (row.split("|")[3].strip() != "—")
    assert (tmp_path / "figures" / "gpu_scaling.png").stat().st_size > 0


def test_no_gpu_results_means_no_section(tmp_path):
    assert gpu.markdown(tmp_path / "figures", folder=tmp_path / "none") is None


def test_precision_names_are_checked():
    with pytest.raises(ValueError, match="MIXLAW_BENCH_DTYPE"):
        common.set_precision("float16")
