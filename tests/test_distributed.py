"""Issue 7: a fit sharded over two ``jax.distributed`` processes on this machine (localhost, CPU).

Two copies of ``examples/multihost_fit.py`` join one coordinator; with 2 forced CPU devices each, the engine
splits the batch over a 4-device mesh that spans both processes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_sharding import QUICK, TABLE, table_frame

import mixlaw_jax as mj

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "multihost_fit.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Both processes' JSON lines, the table they fitted and the file process 0 wrote."""
    folder = tmp_path_factory.mktemp("distributed")
    table = folder / "runs.csv"
    table_frame().to_csv(table, index=False)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--table",
                str(table),
                "--quick",
                "--out",
                str(folder / "fit.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    lines = [json.loads([line for line in out.splitlines() if line.startswith("{")][-1]) for out, _ in outputs]
    return lines, table, folder / "fit.json"


def test_two_processes_fit_one_sharded_batch_and_agree_with_one_device(two_processes):
    lines, table, saved = two_processes
    for i, line in enumerate(lines):
        assert (line["process"], line["processes"], line["devices"], line["local_devices"]) == (i, 2, 4, 2)
    assert lines[0]["coordinates"] == lines[1]["coordinates"]  # every process holds the whole result
    # = the example's --quick
    local = mj.fit(mj.load_runs(table, **TABLE), "additive", search=QUICK, resources=mj.Resources(devices=1))
    sharded = np.array([[float.fromhex(v) for v in row] for row in lines[0]["coordinates"]])
    np.testing.assert_allclose(sharded, local.coordinates, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mj.load_fit(saved).coordinates, sharded, rtol=0, atol=0)
