"""What every benchmark shares: data paths, the provenance written with each result, timing, and the synthetic
joint-law tables with a known truth (also used by tests/test_synthetic.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

import mixlaw_jax as mj

ROOT = Path(__file__).resolve().parents[1]
#: The shared data folder beside the project (``$MIXLAW_SHARED_DATA`` where a copy of the project has it elsewhere).
SHARED_DATA = Path(os.environ.get("MIXLAW_SHARED_DATA") or ROOT.parent / "shared" / "data")
RESULTS = Path(__file__).resolve().parent / "results"
SLIMPAJAMA = SHARED_DATA / "slimpajama" / "dmsl_llm_slimpajama.csv"
CHINCHILLA = SHARED_DATA / "chinchilla_epoch" / "svg_extracted_data.csv"
REGMIX = SHARED_DATA / "regmix"

#: Environment variable choosing the benchmarks' floating-point precision (``python -m benchmarks --dtype``).
DTYPE_VARIABLE = "MIXLAW_BENCH_DTYPE"
DTYPES = ("float64", "float32")


def set_precision(dtype: str | None = None) -> str:
    """Switch JAX to ``dtype`` (default: ``$MIXLAW_BENCH_DTYPE``, else float64) and export it to subprocesses.

    The package enables float64 on import; float32 (x64 off) is a benchmark setting only, for accelerators
    whose float64 rate is low. Returns the precision in force.
    """
    import jax

    dtype = dtype or os.environ.get(DTYPE_VARIABLE) or "float64"
    if dtype not in DTYPES:
        raise ValueError(f"{DTYPE_VARIABLE}={dtype!r}: choose one of {DTYPES}")
    os.environ[DTYPE_VARIABLE] = dtype
    jax.config.update("jax_enable_x64", dtype == "float64")
    if dtype == "float32":  # the package asks for float64 arrays; JAX truncates them, warning each time
        warnings.filterwarnings("ignore", message="Explicitly requested dtype")
    return dtype


set_precision()

#: The library keeps compiled programs on disk (``mixlaw_jax.compile_cache``); benchmarks time compilation as a fresh
#: user meets it, so they run with that cache off (exported to their subprocesses) unless the caller sets it.
os.environ.setdefault("MIXLAW_COMPILE_CACHE", "off")

#: Packages whose versions go into every result file (those not installed are recorded as None).
PACKAGES = ("mixlaw_jax", "jax", "jaxlib", "optax", "numpy", "pandas", "scipy", "lightgbm", "matplotlib")


def commit() -> str:
    """The git commit the numbers were measured at: ``$MIXLAW_BENCH_COMMIT`` where set (a copy sent to another
    machine, whose .git may be stale or absent), else HEAD, with '+dirty' for uncommitted changes to tracked files."""
    if os.environ.get("MIXLAW_BENCH_COMMIT"):
        return os.environ["MIXLAW_BENCH_COMMIT"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return (head or "unknown") + ("+dirty" if dirty else "")


#: The CPU features XLA's CPU code generation uses (from /proc/cpuinfo): floating-point results, and so the
#: trajectories of chaotic searches such as the design benchmark's campaigns, differ between machines without them.
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl")


def machine() -> dict:
    """The machine the numbers were taken on: CPU model and vector extensions, cores, memory, JAX's devices, load at
    the start."""
    import jax

    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    info = {}
    for line in lines:  # the first processor's fields
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    cpu = info.get("model name") or platform.processor() or platform.machine()
    flags = sorted(set(info["flags"].split()) & set(VECTOR_EXTENSIONS)) if "flags" in info else None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "vector_extensions": flags,
        "memory_bytes": memory,
        "system": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "dtype": "float64" if jax.config.jax_enable_x64 else "float32",
        "load_average_1min_at_start": load,
    }


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    """Machine, package versions and commit: recorded with every benchmark result."""
    return {
        "machine": machine(),
        "versions": versions(),
        "commit": commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def require(path: Path) -> Path:
    """``path``, or a FileNotFoundError saying which shared data file the benchmark needs."""
    if not path.exists():
        raise FileNotFoundError(f"this benchmark needs {path} (the shared data folder beside the project)")
    return path


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds`` (wall time, perf_counter)."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


# --- Synthetic joint-law tables with a known truth ---------------------------------------------------------------

SYNTHETIC_K = 5
SYNTHETIC_SIZES = [6e7, 1.5e8, 4e8]
SYNTHETIC_TOKENS = [2e9, 4e9, 8e9, 1.6e10, 3.2e10]


def synthetic_truth(rng: np.random.Generator, k: int = SYNTHETIC_K) -> np.ndarray:
    """Random joint-law coordinates for k domains (the truths of ``synthetic_table``), drawn from ``rng``."""
    law = mj.get_law("joint")
    truth = {
        "E": rng.uniform(1.2, 2.0),
        "C": rng.uniform(-1, 1, k),
        "gamma": rng.uniform(0.2, 1.0, k),
        "A_pure": rng.uniform(6.0, 8.0, k),
        "tau_A": rng.uniform(0.3, 1.5),
        "alpha": rng.uniform(0.25, 0.4),
        "B_pure": rng.uniform(7.0, 9.0, k),
        "tau_B": rng.uniform(0.3, 1.5),
        "beta": rng.uniform(0.25, 0.4),
    }
    return np.concatenate([np.atleast_1d(truth[p.name]) for p in law.params])


#: The repetition part of a synthetic truth (``repetition_truth``): ρ = 1/R*_D around Muennighoff et al.'s 1/15.4, and
#: the overfitting penalty C_o N^ν (e - 1)₊² e^(κ-2) / U around the ``chinchilla_overfit`` fit to their runs
#: (benchmarks/results/datablations.json: C = 2.3e-7, ν = 1.55, κ = 0.66). name -> (low, high), C_o as log C_o.
REPETITION_RANGES = {
    "rho": (1 / 25, 1 / 10),
    "C_o": (np.log(1e-7), np.log(1e-6)),
    "nu": (1.4, 1.7),
    "kappa": (0.4, 1.0),
}


def repetition_truth(rng: np.random.Generator) -> np.ndarray:
    """The four coordinates ``repetition_aware`` adds (ρ, log C_o, ν, κ), drawn uniformly from REPETITION_RANGES."""
    from mixlaw_jax.laws.repetition import REPETITION_PARAMS

    return np.array([rng.uniform(*REPETITION_RANGES[p.name]) for p in REPETITION_PARAMS])


def synthetic_table(
    seed: int,
    *,
    k: int = SYNTHETIC_K,
    n_mixtures: int = 20,
    sizes=tuple(SYNTHETIC_SIZES),
    sizes_per_mixture: int | None = None,
    noise: float = 1e-3,
    pools=None,
) -> tuple[mj.RunTable, np.ndarray]:
    """A joint-law table with a random truth: ``n_mixtures`` mixtures of k domains, each trained at every model size
    of ``sizes`` (or at a random ``sizes_per_mixture`` of them: a sparse campaign), 5 checkpoints per run, relative
    noise ``noise``. The default: 20 mixtures x 3 sizes = 60 runs, 0.1% noise, k = 5.

    With ``pools`` (k unique-token counts U_i, np.inf for an unlimited domain) the truth is ``joint_repetition``
    instead: the same joint coordinates followed by ``repetition_truth`` (drawn from a generator of its own, so the
    joint part is the pool-free table's), each row repeating domain i e_i = h_i D / U_i times; the table is loaded
    with those pools (``unique_tokens``).

    Returns the run table (target ``loss``) and the true law coordinates.
    """
    from mixlaw_jax.simulate import random_mixtures, simulate

    rng = np.random.default_rng(seed)
    u = synthetic_truth(rng, k)
    law = "joint"
    if pools is not None:
        law = "joint_repetition"
        u = np.concatenate([u, repetition_truth(np.random.default_rng([seed, 23]))])
        pools = np.asarray(pools, dtype=float)
    mixtures = random_mixtures(n_mixtures, k, seed=seed)
    chosen = [
        sizes if sizes_per_mixture is None else sorted(rng.choice(sizes, sizes_per_mixture, replace=False))
        for _ in mixtures
    ]
    rows = [(h, n, d) for h, some in zip(mixtures, chosen) for n in some for d in SYNTHETIC_TOKENS]
    h = np.array([r[0] for r in rows])
    n = np.array([r[1] for r in rows])
    d = np.array([r[2] for r in rows])
    loss = simulate(law, u, n, d, h, noise=noise, seed=seed, unique_tokens=pools)
    frame = pd.DataFrame({f"w{i}": h[:, i] for i in range(k)} | {"N": n, "D": d, "loss": loss})
    spec = None if pools is None else {f"w{i}": (float(v) if np.isfinite(v) else None) for i, v in enumerate(pools)}
    return mj.load_runs(frame, weights="w*", N="N", D="D", targets=["loss"], unique_tokens=spec), u


def objective_at(law_name: str, coordinates, runs: mj.RunTable, delta: float = 1e-3) -> float:
    """The engine's default objective (mean Huber_delta of raw residuals) of the first target at ``coordinates``."""
    import jax.numpy as jnp

    from mixlaw_jax.objective import huber

    law = mj.get_law(law_name)
    x = runs.inputs()  # N, D, h and the pool sizes U where the table has them
    prediction = law.predict(law.unflatten(jnp.asarray(coordinates), runs.h.shape[1]), x)
    r = runs.losses[:, 0] - np.asarray(prediction)
    return float(np.mean(np.asarray(huber(jnp.asarray(r), delta))))
