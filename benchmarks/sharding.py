"""Wall time of a fit and a bootstrap on 1, 2 and 4 devices (the engine's sharded path), and float32 accuracy.

    python benchmarks/sharding.py              # CPU: 1, 2 and 4 forced host devices, each in a fresh process
    python benchmarks/sharding.py --gpu        # the visible accelerators: one device, then all of them
    python benchmarks/sharding.py --float32    # plain float32 vs float64 optima on the bundled table

Writes benchmarks/results/sharding_<platform>.json (or float32.json): per device count, the first call (with
compilation) and a second, warm call of each workload, and the largest coordinate difference from one device.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FIT = {"n_starts": 4096, "schedule": ((256, 30, 0.25), (64, 60, 1.0), (16, 100, 1.0))}
BOOT = {"n_replicates": 64, "n_starts": 256, "schedule": ((8, 40, 1.0), (2, 200, 1.0))}


def example_runs():
    import mixlaw_jax as mj
    from mixlaw_jax.datasets import example_path
    runs = mj.load_runs(example_path(), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss")
    return runs.query("model_size <= 1.3e9")


def timed(call):
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def worker(count: int | None) -> dict:
    """Fit and bootstrap the additive law twice each on ``count`` devices (None: all); timings and results."""
    import jax
    import mixlaw_jax as mj
    runs = example_runs()
    fit, fit_first = timed(lambda: mj.fit(runs, "additive", devices=count, **FIT))
    fit, fit_warm = timed(lambda: mj.fit(runs, "additive", devices=count, **FIT))
    boot, boot_first = timed(lambda: mj.bootstrap(runs, "additive", full_fit=fit, devices=count, **BOOT))
    boot, boot_warm = timed(lambda: mj.bootstrap(runs, "additive", full_fit=fit, devices=count, **BOOT))
    return {"devices": count or jax.device_count(), "platform": jax.devices()[0].platform,
            "device_kind": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
            "fit_first_s": fit_first, "fit_warm_s": fit_warm, "boot_first_s": boot_first, "boot_warm_s": boot_warm,
            "fit": fit.coordinates.tolist(), "objective": fit.objective.tolist(), "boot": boot.coordinates.tolist()}


def float32_accuracy() -> dict:
    """Optima of plain float32 fits (x64 switched off) vs float64, both scored in float64, per law and target."""
    import jax
    import jax.numpy as jnp
    import mixlaw_jax as mj
    from mixlaw_jax.fit import engine, prepare, solvers
    runs = example_runs()
    options = {"n_starts": 2048, "schedule": ((128, 30, 0.25), (32, 60, 1.0), (8, 100, 1.0))}
    out = {}
    for law in ("chinchilla", "additive"):
        reference = mj.fit(runs, law, **options)
        jax.config.update("jax_enable_x64", False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                    # float64 requests truncated to float32
            low = mj.fit(runs, law, **options)
        jax.config.update("jax_enable_x64", True)
        _, _, x, space, y = prepare(runs, law, None, 1, "raw", 1e-3, "mean", "default")
        problems = engine.make_problems(y, np.ones_like(y), "raw", "mean")
        model = engine._model(space, x)
        z = space.from_law(jnp.asarray(low.coordinates))
        scored = [float(solvers.objective(model, solvers.Rows(problems.y[b], problems.w[b], problems.c[b]), 1e-3, z[b]))
                  for b in range(len(y))]
        out[law] = {t: {"float64": float(reference.objective[j]), "float32_scored_in_float64": scored[j],
                        "ratio": scored[j] / float(reference.objective[j])} for j, t in enumerate(reference.targets)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="time the visible accelerators instead of CPU devices")
    parser.add_argument("--float32", action="store_true", help="measure float32 accuracy instead of timings")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker or None)))
        return
    RESULTS.mkdir(exist_ok=True)
    if args.float32:
        result = float32_accuracy()
        (RESULTS / "float32.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return
    runs = []
    for count in ((1, 0) if args.gpu else (1, 2, 4)):
        env = dict(os.environ)
        if not args.gpu:
            env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
        proc = subprocess.run([sys.executable, __file__, "--worker", str(count if args.gpu else 0)],
                              capture_output=True, text=True, env=env, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base_fit, base_boot = runs[0]["fit"], runs[0]["boot"]
    for run in runs:
        run["max_fit_difference"] = float(np.max(np.abs(np.subtract(run.pop("fit"), base_fit))))
        run["max_boot_difference"] = float(np.max(np.abs(np.subtract(run.pop("boot"), base_boot))))
        print({k: v for k, v in run.items() if k != "objective"})
    platform = runs[0]["platform"]
    (RESULTS / f"sharding_{platform}.json").write_text(json.dumps({"fit": FIT, "bootstrap": BOOT, "runs": runs},
                                                                  indent=1))


if __name__ == "__main__":
    main()
