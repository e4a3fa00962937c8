"""The on-disk compilation cache of the Python API (``mixlaw_jax.compile_cache``): switched on by the first fit of a
process, not by the import; ``off``, a folder JAX already has, and folders it refuses are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixlaw_jax import compile_cache
from mixlaw_jax.errors import MixlawWarning

ROOT = Path(__file__).resolve().parents[1]

# a small Chinchilla table with a known truth (``runs``), for the scripts below
TABLE = """
rng = np.random.default_rng(0)
n, d = np.exp(rng.uniform(np.log(1e7), np.log(1e9), 40)), np.exp(rng.uniform(np.log(1e9), np.log(1e11), 40))
frame = pd.DataFrame({"N": n, "D": d, "loss": 1.7 + 400 * n**-0.34 + 410 * d**-0.28})
runs = mj.load_runs(frame, weights=None, N="N", D="D", targets="loss")
"""

# the table fitted with a light search; prints what the test checks
SCRIPT = (
    """
import json, sys
import numpy as np, pandas as pd
import mixlaw_jax as mj
import jax
heavy = ("matplotlib", "mixlaw_jax.cli", "mixlaw_jax.report")
report = {"at_import": jax.config.jax_compilation_cache_dir,
          "heavy": sorted(m for m in sys.modules if m.startswith(heavy))}
"""
    + TABLE
    + """
mj.fit(runs, "chinchilla", search=mj.Search(64, ((8, 20, 1.0),)))
report["after_fit"] = jax.config.jax_compilation_cache_dir
print(json.dumps(report))
"""
)


def run_python(code: str, cwd, **env) -> str:
    """``code`` in a fresh process (CPU, this checkout importable) with ``env`` added (None removes a variable); the
    last line it prints."""
    environment = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=environment, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def run_fit(tmp_path, **env) -> dict:
    """SCRIPT in a fresh process with ``env`` added (None removes a variable); its report."""
    return json.loads(run_python(SCRIPT, tmp_path, **env))


def test_the_first_fit_of_a_process_fills_the_cache_folder_and_the_import_does_not(tmp_path):
    cache = tmp_path / "xla"
    report = run_fit(tmp_path, MIXLAW_COMPILE_CACHE=str(cache), JAX_COMPILATION_CACHE_DIR=None)
    assert report["at_import"] is None  # import mixlaw_jax leaves JAX's configuration alone
    assert report["heavy"] == []  # and loads neither matplotlib, the command nor the report
    assert report["after_fit"] == str(cache)
    entries = [p.name for p in cache.iterdir()]
    assert any(name.startswith("jit__map_pairs") for name in entries), entries  # the LM program was kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xla"]  # nothing written in the working directory


def test_off_leaves_jax_unconfigured_and_a_folder_jax_already_has_is_kept(tmp_path):
    report = run_fit(tmp_path, MIXLAW_COMPILE_CACHE="off", JAX_COMPILATION_CACHE_DIR=None)
    assert report["after_fit"] is None
    assert list(tmp_path.iterdir()) == []
    own = tmp_path / "own"
    report = run_fit(tmp_path, MIXLAW_COMPILE_CACHE=str(tmp_path / "ours"), JAX_COMPILATION_CACHE_DIR=str(own))
    assert report["after_fit"] == str(own)
    assert not (tmp_path / "ours").exists()


def test_the_default_folder_is_in_the_user_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("MIXLAW_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.cache_folder() == tmp_path / "xdg" / "mixlaw_jax" / "xla"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as the XDG spec asks
    assert compile_cache.cache_folder() == tmp_path / "home" / ".cache" / "mixlaw_jax" / "xla"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compile_cache.cache_folder() == tmp_path / "home" / ".cache" / "mixlaw_jax" / "xla"
    monkeypatch.setenv("MIXLAW_COMPILE_CACHE", "off")
    assert compile_cache.cache_folder() is None


@pytest.mark.parametrize("where", ["relative", "package"])
def test_a_folder_in_the_working_directory_or_the_package_is_refused(monkeypatch, where):
    setting = "cache/xla" if where == "relative" else str(compile_cache.PACKAGE / "xla")
    monkeypatch.setenv("MIXLAW_COMPILE_CACHE", setting)
    with pytest.warns(MixlawWarning, match="compilation cache off") as caught:
        assert compile_cache.cache_folder() is None
    assert setting in str(caught[0].message)


@pytest.mark.parametrize("given", [None, "--xla_force_host_platform_device_count=2", "--xla_gpu_autotune_level=4"])
def test_the_import_turns_the_gpu_autotuner_off_unless_xla_flags_sets_a_level(given, tmp_path):
    code = "import os, mixlaw_jax, jax.numpy as jnp; float(jnp.ones(2).sum()); print(os.environ['XLA_FLAGS'])"
    flags = run_python(code, tmp_path, XLA_FLAGS=given).split()
    if given == "--xla_gpu_autotune_level=4":
        assert flags == [given]
    else:
        assert flags == ([given] if given else []) + ["--xla_gpu_autotune_level=0"]


RELEASE_SCRIPT = (
    """
import json
import numpy as np, pandas as pd
import jax, jax.numpy as jnp
import mixlaw_jax as mj
from mixlaw_jax import compile_cache
f = jax.jit(lambda x: jnp.sin(x) * 2.0 + x.sum())
for n in range(1, 61):
    f(jnp.ones(n)).block_until_ready()
held = compile_cache.mapped_regions()
report = {"limit": compile_cache.map_limit(), "held": held,
          "far_from_limit": compile_cache.release_programs_near_map_limit(limit=10 * held)}
report["near_limit"] = compile_cache.release_programs_near_map_limit(limit=held)
report["after"] = compile_cache.mapped_regions()
"""
    + TABLE
    + """
search = mj.Search(64, ((8, 20, 1.0),))
report["kept"] = float(mj.fit(runs, "chinchilla", search=search).objective[0])
compile_cache.MAP_LIMIT_SHARE, compile_cache.MAP_CHECK_SECONDS = 0.0, 0.0  # every solve drops every program
report["dropped"] = float(mj.fit(runs, "chinchilla", search=search).objective[0])
print(json.dumps(report))
"""
)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc (memory mappings)")
def test_programs_are_released_near_the_memory_map_limit_and_fits_go_on(tmp_path):
    report = json.loads(run_python(RELEASE_SCRIPT, tmp_path, MIXLAW_COMPILE_CACHE="off"))
    assert report["limit"] > 0 and report["held"] > 0
    assert not report["far_from_limit"] and report["near_limit"]
    assert report["after"] < report["held"] - 300  # 60 small programs held ~12 mappings each
    assert report["dropped"] == report["kept"]  # a fit whose programs are dropped before every solve: same optimum
