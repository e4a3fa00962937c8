"""The GPU section of RESULTS.md (benchmarks/gpu.py) is built from the result files on disk, beside the CPU's."""

import json
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


def test_cpu_ladder_is_the_latest_measurement_whatever_the_file_times(tmp_path):
    def write(name, date, seconds):
        ladder = [{"seconds": seconds, "settings": {"n_starts": 64}}]
        result = {"provenance": {"date": date}, "problems": [{"name": "joint", "engine": ladder}]}
        (tmp_path / name).write_text(json.dumps(result))

    write("speed.json", "2026-12-05T01:00:00Z", 7.4)
    write("speed_old.json", "2026-11-23T02:00:00Z", 34.2)  # written last, measured first
    assert gpu.cpu_ladders(tmp_path)["joint"][0]["seconds"] == 7.4


def test_no_gpu_results_means_no_section(tmp_path):
    assert gpu.markdown(tmp_path / "figures", folder=tmp_path / "none") is None


def test_precision_names_are_checked():
    with pytest.raises(ValueError, match="MIXLAW_BENCH_DTYPE"):
        common.set_precision("float16")
