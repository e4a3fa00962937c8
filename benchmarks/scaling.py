"""How the time and peak memory of one batched engine call grow along each axis, the others held fixed.

    python -m benchmarks --only scaling          # the full sweep (~15-20 min on a 2-core CPU)
    python -m benchmarks --only scaling --quick  # two tiny points per axis: checks the script

Axes (``SWEEPS``): random starts screened by ``mj.fit``, target columns fitted at once, bootstrap replicates
of one ``mj.bootstrap`` call, and rows of the table. Every point runs in a fresh subprocess
(``python -m benchmarks.scaling --point SPEC``), so its peak resident memory is its own:

* ``baseline_bytes``: resident memory after importing JAX and building the table;
* ``peak_first_bytes``: peak resident memory of the first call (with compilation), ``ru_maxrss``, the peak having
  been reset (``/proc/self/clear_refs``) after building the table where Linux allows it;
* ``peak_warm_bytes``: the same for a second call of the same shapes, the peak reset before it; ``*_net_bytes``
  are these minus the resident memory just before the call;
* on an accelerator, ``device_peak_first_bytes`` / ``device_peak_bytes``: the device's own peak memory in use
  after the first / both calls (it cannot be reset).

Growth exponents are least-squares slopes of log value on log size over the upper half of each sweep
(value ~ size^slope). The chunking check reruns the largest starts point with a small ``memory_bytes`` budget:
the engine then screens fewer starts at a time and must reach the same best objectives.

Environment: ``MIXLAW_SCALING_AXES`` (comma-separated subset of the axes), ``MIXLAW_SCALING_TIMEOUT`` (seconds
per point, default 600; a point over it is recorded as timed out). The replicates sweep starts at 2, the least
``mj.bootstrap`` accepts. Quick mode shares a persistent JAX compilation cache between its points (so that it
takes about a minute); its first-call times then mostly exclude compilation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT

NAME = "scaling"

#: Model sizes and token counts of the synthetic design: every mixture at every (N, D), 15 rows per mixture.
SIZES = (6e7, 1.5e8, 4e8)
TOKENS = (2e9, 4e9, 8e9, 1.6e10, 3.2e10)
K = 3
LAW = "additive"
#: Values of the varied axis per sweep; every other axis stays at ``FIXED``.
SWEEPS = {
    "starts": (256, 1024, 4096, 16384, 65536),
    "targets": (1, 2, 4, 8, 16, 32, 64),
    "replicates": (2, 8, 32, 128, 512, 1000),
    "rows": (105, 300, 1005, 3000, 9990),
}
FIXED = {"starts": 1024, "targets": 4, "replicates": 64, "rows": 600}
#: The many-domains sweeps (issue 25): law -> domain counts k; each table has 6k mixtures x DOMAIN_SIZES x
#: DOMAIN_TOKENS (checkpoints), 0.1% noise, and is fitted by the library's default search (``mj.Search()``), once
#: (no warm call: a first call is what a user of a new table meets); the point records the truth's objective.
DOMAIN_SWEEPS = {"domains_additive": (16, 32, 64), "domains_joint": (16, 32, 64)}
DOMAIN_SIZES = (1.5e8, 4e8)
DOMAIN_TOKENS = (2e9, 4e9, 8e9, 1.6e10)
MIXTURES_PER_DOMAIN = 6
#: Successive-halving stages of the fits and of each bootstrap replicate (light: the sweep measures cost).
SCHEDULE = ((32, 20), (8, 60))
BOOT_STARTS = 64
BOOT_SCHEDULE = ((4, 20), (1, 60))
#: Targets of the bootstrap points: one, so that the replicates are the problems (R x 4 would take ~4x longer).
BOOT_TARGETS = 1
#: Budget of the chunking check (bytes): screening then holds ~130 starts x 4 targets x 600 rows at a time.
SMALL_MEMORY = 1e7
QUICK = {
    "sweeps": {
        "starts": (64, 256),
        "targets": (1,),
        "replicates": (2,),
        "rows": (60,),
        "domains_additive": (3,),
        "domains_joint": (3,),
    },
    "fixed": {"starts": 64, "targets": 1, "replicates": 2, "rows": 60},
    "schedule": ((4, 5), (2, 10)),
    "boot_starts": 8,
    "boot_schedule": ((2, 5), (1, 10)),
    "small_memory": 2e4,
}
#: What the axis means, for tables and plots.
LABELS = {
    "starts": "random starts screened",
    "targets": "target columns",
    "replicates": "bootstrap replicates",
    "rows": "rows",
    "domains_additive": "domains k (additive law, default search)",
    "domains_joint": "domains k (joint law, default search)",
}


def settings(quick: bool) -> dict:
    if quick:
        return QUICK
    return {
        "sweeps": SWEEPS | DOMAIN_SWEEPS,
        "fixed": FIXED,
        "schedule": SCHEDULE,
        "boot_starts": BOOT_STARTS,
        "boot_schedule": BOOT_SCHEDULE,
        "small_memory": SMALL_MEMORY,
    }


def synthetic_table(n_rows: int, n_targets: int, seed: int = 0):
    """An additive-law table: round(n_rows / 15) mixtures x SIZES x TOKENS, one target per random truth.

    Target j is L = E + 1/(sum_i C_i h_i^gamma_i) + A/N^alpha + B/D^beta with its own parameters (seed + j)
    and 0.5% Gaussian relative noise.
    """
    import pandas as pd

    import mixlaw_jax as mj
    from mixlaw_jax.simulate import design, random_mixtures, simulate

    mixtures = random_mixtures(max(1, round(n_rows / (len(SIZES) * len(TOKENS)))), K, seed=seed)
    frame = design(mixtures, SIZES, TOKENS)
    h = frame[[f"weight_{i}" for i in range(K)]].to_numpy()
    targets = {}
    for j in range(n_targets):
        u = additive_truth(np.random.default_rng(seed + j), K, frame)
        targets[f"loss_{j}"] = simulate(LAW, u, frame["N"], frame["D"], h, noise=5e-3, seed=seed + j)
    frame = pd.concat([frame, pd.DataFrame(targets)], axis=1)
    return mj.load_runs(frame, weights="weight_*", N="N", D="D", targets=list(targets), warn=False)


def additive_truth(rng: np.random.Generator, k: int, frame) -> np.ndarray:
    """Random additive-law coordinates for k domains whose power terms are 0.5 at the mean log N and log D of
    ``frame``: (E, log A, alpha, log B, beta, log C (k), gamma (k))."""
    alpha, beta = rng.uniform(0.25, 0.4, 2)
    log_n, log_d = np.log(frame["N"]).mean(), np.log(frame["D"]).mean()
    return np.concatenate(
        [
            [rng.uniform(1.5, 2.5), np.log(0.5) + alpha * log_n, alpha, np.log(0.5) + beta * log_d, beta],
            rng.uniform(0.0, 1.5, k),
            rng.uniform(0.2, 1.0, k),
        ]
    )


def many_domain_table(law: str, k: int, seed: int = 0):
    """(run table, true coordinates): ``MIXTURES_PER_DOMAIN`` k mixtures (every weight >= 0.2 / k) at every
    DOMAIN_SIZES x DOMAIN_TOKENS, target ``loss`` from a random truth of ``law`` ("additive" or "joint"), 0.1%
    relative noise."""
    import mixlaw_jax as mj
    from benchmarks.common import synthetic_truth
    from mixlaw_jax.simulate import design, random_mixtures, simulate

    rng = np.random.default_rng(seed)
    frame = design(
        random_mixtures(MIXTURES_PER_DOMAIN * k, k, min_weight=0.2 / k, seed=seed), DOMAIN_SIZES, DOMAIN_TOKENS
    )
    u = synthetic_truth(rng, k) if law == "joint" else additive_truth(rng, k, frame)
    h = frame[[f"weight_{i}" for i in range(k)]].to_numpy()
    frame["loss"] = simulate(law, u, frame["N"], frame["D"], h, noise=1e-3, seed=seed)
    return mj.load_runs(frame, weights="weight_*", N="N", D="D", targets=["loss"], warn=False), u


# --- one point, in its own process -------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Current resident memory of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return peak_bytes()


def peak_bytes() -> int:
    """Peak resident memory of this process since start or the last :func:`reset_peak` (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_peak_bytes() -> int | None:
    """Peak memory in use on the first accelerator since the process started (None on CPU, which reports none)."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def reset_peak() -> bool:
    """Reset the peak resident memory to the current one (Linux ``clear_refs`` 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def point_call(spec: dict):
    """The table of a point and the engine call to time (a zero-argument function)."""
    import mixlaw_jax as mj

    cfg = settings(spec["quick"])
    if spec["axis"] in DOMAIN_SWEEPS:
        from benchmarks.common import objective_at

        law = spec["axis"].removeprefix("domains_")
        runs, truth = many_domain_table(law, spec["size"])
        spec["truth_objective"] = objective_at(law, truth, runs)
        search = mj.Search(64, cfg["schedule"]) if spec["quick"] else mj.Search()
        return runs, lambda: mj.fit(runs, law, search=search).objective
    size = {**cfg["fixed"], spec["axis"]: spec["size"]}
    resources = mj.Resources(memory_bytes=spec.get("memory_bytes"))
    search = mj.Search(size["starts"], cfg["schedule"])
    if spec["axis"] == "replicates":
        runs = synthetic_table(size["rows"], BOOT_TARGETS)
        full = mj.fit(runs, LAW, search=search)
        return (
            runs,
            lambda: (
                mj.bootstrap(
                    runs,
                    LAW,
                    n_replicates=size["replicates"],
                    full_fit=full,
                    search=mj.Search(cfg["boot_starts"], cfg["boot_schedule"]),
                    resources=resources,
                ).objective
            ),
        )
    runs = synthetic_table(size["rows"], size["targets"])
    return runs, lambda: mj.fit(runs, LAW, search=search, resources=resources).objective


def run_point(spec: dict) -> dict:
    """Time and peak memory of the first and a second (warm) call of one point, in this process."""
    runs, call = point_call(spec)
    baseline = rss_bytes()
    resettable = reset_peak()
    start = time.perf_counter()
    call_result = call()
    first = time.perf_counter() - start
    peak_first = peak_bytes()
    device_first = device_peak_bytes()
    if spec["axis"] in DOMAIN_SWEEPS:  # one call: a first fit of a new table
        objective = np.asarray(call_result, float)
        return {
            **spec,
            "rows": int(runs.n_rows),
            "time_first_s": first,
            "time_warm_s": None,
            "baseline_bytes": baseline,
            "peak_first_bytes": peak_first,
            "peak_first_net_bytes": peak_first - baseline if resettable else None,
            "peak_warm_bytes": None,
            "peak_warm_net_bytes": None,
            "device_peak_first_bytes": device_first,
            "device_peak_bytes": device_first,
            "objective": [float(v) for v in objective.ravel()],
            "objective_over_truth": float(objective.ravel()[0] / spec["truth_objective"]),
        }
    before_warm = rss_bytes()
    warm_reset = reset_peak()
    start = time.perf_counter()
    objective = np.asarray(call(), float)
    warm = time.perf_counter() - start
    peak_warm = peak_bytes()
    return {
        **spec,
        "rows": int(runs.n_rows),
        "time_first_s": first,
        "time_warm_s": warm,
        "baseline_bytes": baseline,
        "peak_first_bytes": peak_first,
        "peak_first_net_bytes": peak_first - baseline if resettable else None,
        "peak_warm_bytes": peak_warm if warm_reset else None,
        "peak_warm_net_bytes": peak_warm - before_warm if warm_reset else None,
        "device_peak_first_bytes": device_first,
        "device_peak_bytes": device_peak_bytes(),
        "objective": [float(v) if np.isfinite(v) else None for v in objective.ravel()],
    }


def measure(spec: dict, timeout: float, cache: str | None = None) -> dict:
    """:func:`run_point` in a fresh interpreter (so peak memory is the point's own); errors are recorded.

    ``cache``: a persistent JAX compilation cache folder shared by the points (quick mode only: it takes most of
    the compilation out of the "first call").
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if cache:
        env.update(
            JAX_COMPILATION_CACHE_DIR=cache,
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        )
    else:
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
    cmd = [sys.executable, "-m", "benchmarks.scaling", "--point", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("POINT ")]
    if done.returncode != 0 or not lines:
        return {**spec, "error": (done.stderr or done.stdout).strip()[-2000:] or f"exit code {done.returncode}"}
    return json.loads(lines[-1][len("POINT ") :])


# --- sweeps and exponents ----------------------------------------------------------------------------------------


def loglog_slope(x, y) -> float | None:
    """Least-squares slope b of log y = a + b log x over the points with finite positive x, y (None if < 2)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2 or np.ptp(np.log(x[ok])) == 0:
        return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def upper_half(n: int) -> slice:
    """The last ceil(n / 2) points of a sweep of n, and at least 2."""
    return slice(max(0, n - max(2, math.ceil(n / 2))), n)


METRICS = ("time_first_s", "time_warm_s", "peak_first_net_bytes", "peak_warm_net_bytes")


def exponents(points: list[dict]) -> dict:
    """Growth exponent of each metric over the upper half of a sweep (None where not measurable)."""
    ok = [p for p in points if "error" not in p]
    top = ok[upper_half(len(ok))]
    return {
        m: loglog_slope([p["size"] for p in top], [p.get(m) if p.get(m) is not None else np.nan for p in top])
        for m in METRICS
    }


def run(quick: bool) -> dict:
    cfg = settings(quick)
    timeout = float(os.environ.get("MIXLAW_SCALING_TIMEOUT", 600))
    axes = [a for a in os.environ.get("MIXLAW_SCALING_AXES", ",".join(cfg["sweeps"])).split(",") if a]
    unknown = sorted(set(axes) - set(cfg["sweeps"]))
    if unknown:
        raise ValueError(f"MIXLAW_SCALING_AXES: unknown axes {unknown}; choose from {sorted(cfg['sweeps'])}")
    with tempfile.TemporaryDirectory() as folder:
        return sweep_all(cfg, axes, quick, timeout, folder if quick else None)


def sweep_all(cfg: dict, axes: list[str], quick: bool, timeout: float, cache: str | None) -> dict:
    sweeps = {}
    for axis in axes:
        points = []
        for size in cfg["sweeps"][axis]:
            p = measure({"axis": axis, "size": int(size), "quick": quick}, timeout, cache)
            print(
                f"   {axis}={size}: "
                + (
                    p["error"].splitlines()[-1]
                    if "error" in p
                    else f"{p['time_first_s']:.1f} s first, {_sec(p['time_warm_s'])} s warm, "
                    f"peak {p['peak_first_bytes'] / 2**20:.0f} MiB"
                    + (f", objective / truth's {p['objective_over_truth']:.4f}" if "objective_over_truth" in p else "")
                ),
                flush=True,
            )
            points.append(p)
        sweeps[axis] = {"points": points, "exponents": exponents(points)}
    result = {
        "law": LAW,
        "k": K,
        "settings": cfg,
        "timeout_s": timeout,
        "compilation_cache": bool(cache),
        "sweeps": sweeps,
    }
    if "starts" in sweeps:
        largest = cfg["sweeps"]["starts"][-1]
        small = measure(
            {"axis": "starts", "size": int(largest), "quick": quick, "memory_bytes": cfg["small_memory"]},
            timeout,
            cache,
        )
        result["chunking"] = {"default": sweeps["starts"]["points"][-1], "small_budget": small}
    return result


def merge(previous: dict, new: dict) -> dict:
    """``new`` plus the sweeps of ``previous`` (the result file it replaces) that it did not run (a run limited by
    ``MIXLAW_SCALING_AXES``), each carried-over sweep keeping the provenance it was measured with."""
    if previous.get("compilation_cache") != new["compilation_cache"]:
        return new
    carried = {
        axis: dict(sweep, provenance=sweep.get("provenance", previous.get("provenance")))
        for axis, sweep in previous.get("sweeps", {}).items()
        if axis not in new["sweeps"]
    }
    return dict(new, sweeps=carried | new["sweeps"], chunking=new.get("chunking", previous.get("chunking")))


# --- report ------------------------------------------------------------------------------------------------------


def _mib(v) -> str:
    """MiB; a net peak below zero (the call freed more than it took) shows as 0."""
    return "—" if v is None else f"{max(v, 0) / 2**20:.0f}"


def _sec(v) -> str:
    return "—" if v is None else f"{v:.1f}"


def _exp(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = result["sweeps"]
    fig, axes = plt.subplots(2, len(sweeps), figsize=(4 * len(sweeps), 7), squeeze=False)
    series = (
        ("time_first_s", "first call", 0, 1.0),
        ("time_warm_s", "warm call", 0, 1.0),
        ("peak_first_net_bytes", "first call", 1, 2**-20),
        ("peak_warm_net_bytes", "warm call", 1, 2**-20),
    )
    for col, (axis, sweep) in enumerate(sweeps.items()):
        ok = [p for p in sweep["points"] if "error" not in p]
        for metric, label, row, scale in series:
            xs = [p["size"] for p in ok if p.get(metric) is not None and p[metric] > 0]
            ys = [p[metric] * scale for p in ok if p.get(metric) is not None and p[metric] > 0]
            if xs:
                axes[row, col].loglog(xs, ys, "o-", label=f"{label} (exponent {_exp(sweep['exponents'][metric])})")
        axes[0, col].set_title(LABELS[axis])
        axes[1, col].set_xlabel(LABELS[axis])
        for row in (0, 1):
            axes[row, col].legend(fontsize=8)
            axes[row, col].grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("wall time (s)")
    axes[1, 0].set_ylabel("peak RSS above the call's start (MiB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict, figures: Path) -> str:
    s = result["settings"]
    lines = [
        "## Scaling: time and memory of one batched call per axis",
        "",
        f"Law `{result['law']}`, k = {result['k']}, synthetic table (`benchmarks/scaling.py`: every mixture at "
        f"{len(SIZES)} sizes × {len(TOKENS)} token counts, one random truth per target, 0.5% noise). Fixed "
        f"unless varied: {s['fixed']['starts']} starts, {s['fixed']['targets']} target(s), "
        f"{s['fixed']['rows']} rows; fit schedule {[list(x) for x in s['schedule']]}; bootstrap: "
        f"{s['boot_starts']} fresh starts per replicate, schedule {[list(x) for x in s['boot_schedule']]}, "
        f"{BOOT_TARGETS} target(s), around a precomputed full fit (not timed). Each point runs in a fresh "
        "process; memory is peak RSS (raw, and above the resident memory before the call); the warm call is "
        "a second call of the same shapes (no compilation). The first call's peak includes XLA's "
        "compilation, a few hundred MiB whatever the size: the warm column is the working memory of the "
        "computation." + (" Quick run: the points shared a compilation cache." if result["compilation_cache"] else ""),
        "",
    ]
    for axis, sweep in result["sweeps"].items():
        lines += [
            f"**{LABELS[axis]}**",
            "",
            "| size | rows | first call (s) | warm call (s) | peak RSS (MiB) | first call above baseline (MiB) "
            "| warm call above its start (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in sweep["points"]:
            if "error" in p:
                lines.append(f"| {p['size']} | — | failed: {p['error'].splitlines()[-1][:80]} | | | | |")
                continue
            lines.append(
                f"| {p['size']} | {p['rows']} | {_sec(p['time_first_s'])} | {_sec(p['time_warm_s'])} "
                f"| {_mib(p['peak_first_bytes'])} | {_mib(p['peak_first_net_bytes'])} "
                f"| {_mib(p['peak_warm_net_bytes'])} |"
            )
        reached = [
            f"k = {p['size']}: {p['objective_over_truth']:.4f}" for p in sweep["points"] if "objective_over_truth" in p
        ]
        if reached:
            lines += [
                "",
                "Best objective found / the truth's (≤ 1: the truth's objective is reached): " + ", ".join(reached),
            ]
        lines.append("")
    lines += [
        "Growth exponents (value ∝ size^exponent; least squares on log–log, upper half of each sweep):",
        "",
        "| axis | time, first call | time, warm | memory, first call | memory, warm |",
        "|---|---|---|---|---|",
    ]
    for axis, sweep in result["sweeps"].items():
        e = sweep["exponents"]
        lines.append(f"| {LABELS[axis]} | " + " | ".join(_exp(e[m]) for m in METRICS) + " |")
    figures.mkdir(parents=True, exist_ok=True)
    path = figures / "scaling.png"
    plot(result, path)
    lines += ["", f"![time and peak memory per axis]({path})", ""]
    chunk = result.get("chunking")
    if chunk:
        d, c = chunk["default"], chunk["small_budget"]
        if "error" in d or "error" in c:
            lines.append("Chunking check failed: " + (d.get("error") or c.get("error")).splitlines()[-1])
        else:
            od, oc = np.asarray(d["objective"], float), np.asarray(c["objective"], float)
            gap = float(np.max(np.abs(od - oc) / np.abs(od)))
            lines += [
                f"**Chunking** ({d['size']} starts, {d['rows']} rows, {len(od)} target(s)): default budget vs "
                f"`memory_bytes={s['small_memory']:g}`.",
                "",
                "| budget | first call (s) | warm call (s) | first call above baseline (MiB) "
                "| warm call above its start (MiB) |",
                "|---|---|---|---|---|",
            ]
            for label, p in (("default", d), (f"{s['small_memory']:g} bytes", c)):
                lines.append(
                    f"| {label} | {_sec(p['time_first_s'])} | {_sec(p['time_warm_s'])} "
                    f"| {_mib(p['peak_first_net_bytes'])} | {_mib(p['peak_warm_net_bytes'])} |"
                )
            lines += ["", f"Largest relative difference of the best objectives: {gap:.1e}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one scaling point (used by run(); prints 'POINT {json}')")
    parser.add_argument(
        "--point", required=True, help='JSON: {"axis": ..., "size": ..., "quick": ..., "memory_bytes": optional}'
    )
    args = parser.parse_args(argv)
    print("POINT " + json.dumps(run_point(json.loads(args.point))), flush=True)


if __name__ == "__main__":
    main()
