"""Wall time of a fit and a bootstrap on 1, 2 and 4 devices (the engine's sharded path), and float32 accuracy.

    python -m benchmarks.sharding                  # CPU: 1, 2, 4 jax.distributed processes of one device each
    python -m benchmarks.sharding --forced         # CPU: 1, 2, 4 forced host devices in one process
    python -m benchmarks.sharding --gpu            # the visible accelerators: one device, then all of them
    python -m benchmarks.sharding --float32 [--table CSV]   # plain float32 vs float64 optima

Writes benchmarks/results/sharding_<platform>[_forced].json (or float32_<table>.json): per device count, the
first call (with compilation) and a second, warm call of each workload, and the largest coordinate difference
from one device. Each run is cut off after ``--timeout`` seconds and recorded as timed out (``--forced`` used to
deadlock with jaxlib 0.10's LAPACK solve, which the engine no longer calls: docs/multihost.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
#: The fit's and the bootstrap's settings (recorded with the results; ``mj.Search`` is made in the worker, which
#: imports mixlaw_jax only once jax.distributed has started).
FIT = {"n_starts": 4096, "schedule": ((256, 30, 0.25), (64, 60, 1.0), (16, 100, 1.0))}
BOOT = {"n_replicates": 64, "n_starts": 256, "schedule": ((8, 40, 1.0), (2, 200, 1.0))}


def load(table=None):
    """``table`` (weight_*, model_size, n_tokens, *_loss columns; all rows), or the bundled table's training rows."""
    import mixlaw_jax as mj
    from mixlaw_jax.datasets import example_path

    runs = mj.load_runs(table or example_path(), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss")
    return runs if table else runs.query("model_size <= 1.3e9")


def timed(call):
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def worker(count: int | None) -> dict:
    """Fit and bootstrap the additive law twice each on ``count`` devices (None: all); timings and results."""
    import jax

    import mixlaw_jax as mj

    runs = load()
    resources = mj.Resources(devices=count)
    search = mj.Search(FIT["n_starts"], FIT["schedule"])
    boot_search = mj.Search(BOOT["n_starts"], BOOT["schedule"])

    def bootstrap():
        return mj.bootstrap(
            runs, "additive", n_replicates=BOOT["n_replicates"], full_fit=fit, search=boot_search, resources=resources
        )

    fit, fit_first = timed(lambda: mj.fit(runs, "additive", search=search, resources=resources))
    fit, fit_warm = timed(lambda: mj.fit(runs, "additive", search=search, resources=resources))
    boot, boot_first = timed(bootstrap)
    boot, boot_warm = timed(bootstrap)
    return {
        "devices": count or jax.device_count(),
        "processes": jax.process_count(),
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "fit_first_s": fit_first,
        "fit_warm_s": fit_warm,
        "boot_first_s": boot_first,
        "boot_warm_s": boot_warm,
        "fit": fit.coordinates.tolist(),
        "objective": fit.objective.tolist(),
        "boot": boot.coordinates.tolist(),
    }


def launch(count: int, layout: str, timeout: float) -> dict:
    """One worker run on ``count`` devices: ``"gpu"`` (in one process), ``"forced"`` (forced host devices in one
    process) or ``"processes"`` (``count`` jax.distributed CPU processes of one device each)."""
    env = dict(os.environ)
    command = [sys.executable, __file__, "--worker", str(count if layout == "gpu" else 0)]
    if layout != "gpu":
        env.update(
            JAX_PLATFORMS="cpu",
            XLA_FLAGS=f"--xla_force_host_platform_device_count={count if layout == 'forced' else 1}",
        )
    if layout == "processes" and count > 1:
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        commands = [
            command + ["--coordinator", f"localhost:{port}", "--num-processes", str(count), "--process-id", str(i)]
            for i in range(count)
        ]
    else:
        commands = [command]
    procs = [
        subprocess.Popen(
            c,
            stdout=subprocess.PIPE if i == 0 else subprocess.DEVNULL,
            stderr=subprocess.PIPE if i == 0 else subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for i, c in enumerate(commands)
    ]
    try:
        out, err = procs[0].communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"devices": count, "layout": layout, "timed_out_after_s": timeout}
    finally:
        for p in procs:
            p.kill()
    if procs[0].returncode != 0:
        raise RuntimeError(err[-3000:])
    return {**json.loads([line for line in out.splitlines() if line.startswith("{")][-1]), "layout": layout}


def float32_accuracy(table=None) -> dict:
    """Optima of plain float32 fits (x64 switched off) vs float64, both scored in float64, per law and target."""
    import jax
    import jax.numpy as jnp

    import mixlaw_jax as mj
    from mixlaw_jax.engine import multistart, solvers
    from mixlaw_jax.fitting import prepare
    from mixlaw_jax.options import Objective

    runs = load(table)
    search = mj.Search(2048, ((128, 30, 0.25), (32, 60, 1.0), (8, 100, 1.0)))
    out = {}
    for law in ("chinchilla", "additive"):
        reference = mj.fit(runs, law, search=search)
        jax.config.update("jax_enable_x64", False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # float64 requests truncated to float32
            low = mj.fit(runs, law, search=search)
        jax.config.update("jax_enable_x64", True)
        _, _, x, space, y = prepare(runs, law, None, Objective(), "default")
        problems = multistart.make_problems(y, np.ones_like(y), "raw", "mean")
        model = multistart.model(space, x)
        z = space.from_law(jnp.asarray(low.coordinates))
        scored = [
            float(solvers.objective(model, solvers.Rows(problems.y[b], problems.w[b], problems.c[b]), 1e-3, z[b]))
            for b in range(len(y))
        ]
        out[law] = {
            t: {
                "float64": float(reference.objective[j]),
                "float32_scored_in_float64": scored[j],
                "ratio": scored[j] / float(reference.objective[j]),
            }
            for j, t in enumerate(reference.targets)
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="time the visible accelerators instead of CPU devices")
    parser.add_argument("--forced", action="store_true", help="CPU: forced host devices in one process")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per device count")
    parser.add_argument("--float32", action="store_true", help="measure float32 accuracy instead of timings")
    parser.add_argument("--table", help="with --float32: this CSV (all rows) instead of the bundled table")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        if args.coordinator:
            import jax

            jax.distributed.initialize(
                coordinator_address=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
            )
        print(json.dumps(worker(args.worker or None)), flush=True)
        return
    RESULTS.mkdir(exist_ok=True)
    if args.float32:
        result = float32_accuracy(args.table)
        name = Path(args.table).stem if args.table else "example"
        (RESULTS / f"float32_{name}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return
    layout = "gpu" if args.gpu else "forced" if args.forced else "processes"
    runs = []
    for count in (1, 0) if args.gpu else (1, 2, 4):
        run = launch(count, layout, args.timeout)
        if "fit" in run:
            base = runs[0] if runs else run
            run["max_fit_difference"] = float(np.max(np.abs(np.subtract(run["fit"], base["fit"]))))
            run["max_boot_difference"] = float(np.max(np.abs(np.subtract(run["boot"], base["boot"]))))
        runs.append(run)
        print({k: v for k, v in run.items() if k not in ("fit", "boot", "objective")}, flush=True)
    for run in runs:
        for key in ("fit", "boot"):
            run.pop(key, None)
    name = runs[0]["platform"] + ("_forced" if args.forced else "")
    (RESULTS / f"sharding_{name}.json").write_text(json.dumps({"fit": FIT, "bootstrap": BOOT, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
