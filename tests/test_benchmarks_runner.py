"""Smoke test of the benchmark suite: ``python -m benchmarks --quick`` runs every benchmark at tiny sizes, writes a
result file per benchmark with its provenance, and rebuilds RESULTS.md — so the scripts never rot."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.__main__ import SUITE  # noqa: E402
from benchmarks.common import VECTOR_EXTENSIONS  # noqa: E402


def test_quick_suite_writes_results_and_report(tmp_path):
    for relative in (
        "slimpajama/dmsl_llm_slimpajama.csv",
        "chinchilla_epoch/svg_extracted_data.csv",
        "regmix/train_mixture_1m.csv",
    ):
        shared_file(relative)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in SUITE:
        result = json.loads((tmp_path / f"{name}_quick.json").read_text())
        prov = result["provenance"]
        assert prov["commit"] and prov["versions"]["jax"] and prov["machine"]["cores"] >= 1
        extensions = prov["machine"]["vector_extensions"]  # None without /proc/cpuinfo
        assert extensions is None or set(extensions) <= set(VECTOR_EXTENSIONS)
        assert result["seconds_total"] > 0
    report = (tmp_path / "RESULTS.md").read_text()
    assert "Not run yet" not in report
    assert report.count("*Measured ") == len(SUITE)
