"""Cold start: Chinchilla fits in fresh processes, with the on-disk compilation cache empty or filled by another table.

Every variant runs in its own fresh Python process (interpreter start and imports included), all in one invocation:

* ``empty``: an empty cache folder, Epoch's 240-row Chinchilla table, the library's default search;
* ``same``: the cache ``empty`` filled, the same table again;
* ``other``: a fresh cache folder filled first by the table minus its last 7 rows (233 rows, ``fill``), then the
  240-row table in another process: the case row buckets are for (``multistart.row_bucket``: 233 and 240 share
  the bucket 240);
* each of them with row buckets on (the library) and off (``ROW_BUCKET_BITS = None`` in that process), the state
  before buckets;
* ``recipe``: the tightened paper recipe (``benchmarks.baselines.paper_recipe``, 4096 random points, tight
  tolerances) on the 240-row table, in its own process, which imports what a user of the recipe needs (numpy,
  scipy, pandas) and not JAX: the table is read with pandas, the law's layout and start box are handed to it as
  JSON (``baselines.LawMetadata``). Until session 22 this process imported mixlaw_jax (and so JAX, ~0.8 s, and
  its teardown) for the table and the start box, which flattered the engine's ratios;
* ``warm`` (one more process): what the padding costs once compiled — the SlimPajama default fits (training rows,
  additive and joint, every target) and the synthetic joint table, warm, buckets on and off alternating (ABBA), with
  the largest relative change of an objective.

Each process reports its ``import mixlaw_jax`` time, its first fit, the same fit again (warm) and the objective;
the parent times the whole process (``process_s``), and ``one_fit_process_s`` leaves out the second fit, which only
measures the warm time: a user's process fits once. Every variant runs ``ROUNDS`` times; the medians and every
round's numbers go to ``results/cold_start.json``.

    python -m benchmarks.cold_start             # or python -m benchmarks --only cold_start
    python -m benchmarks.cold_start --no-warm   # the fresh processes only (~8 min), not the warm costs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import baselines
from benchmarks.common import CHINCHILLA, RESULTS, ROOT, provenance
from mixlaw_jax._io import atomic_write_json

NAME = "cold_start"
#: Rows the ``fill`` table leaves out of Epoch's 240.
DROPPED = 7
#: Rounds of every variant (medians are reported: the machine may be shared).
ROUNDS = 3

CHILD = """
import json, sys, time
start = time.perf_counter()
import mixlaw_jax as mj
imported = time.perf_counter() - start
from benchmarks.speed import chinchilla_runs
from mixlaw_jax.engine import multistart
rows, buckets = int(sys.argv[1]), sys.argv[2] == "on"
if not buckets:
    multistart.ROW_BUCKET_BITS = None
runs = chinchilla_runs()
runs = runs.subset(list(range(rows)))
objective = mj.Objective(loss_space="log", reduction="sum", huber_delta=1e-3)
times = []
for _ in range(2):
    t = time.perf_counter()
    fit = mj.fit(runs, "chinchilla", objective=objective)
    times.append(time.perf_counter() - t)
print(json.dumps({"import_s": imported, "first_fit_s": times[0], "warm_fit_s": times[1], "rows": runs.n_rows,
                  "objective": float(fit.objective[0])}))
"""

RECIPE = """
import json, sys, time
from benchmarks import baselines
path, metadata = sys.argv[1], baselines.LawMetadata.from_json(json.loads(sys.argv[2]))
frame = baselines.epoch_chinchilla(path)
problem = baselines.Problem("chinchilla", frame["Model Size"], frame["D"], frame[["h"]], frame["loss"],
                            loss_space="log", reduction="sum", delta=1e-3, metadata=metadata)
t = time.perf_counter()
out = baselines.paper_recipe(problem, tolerance="tight", n_random=4096, niter=100)
print(json.dumps({"fit_s": time.perf_counter() - t, "objective": out["objective"], "rows": len(frame),
                  "imported_jax": "jax" in sys.modules}))
"""
WARM = """
import json, time
import numpy as np
import mixlaw_jax as mj
from benchmarks.common import synthetic_table
from benchmarks.speed import slimpajama_runs
from mixlaw_jax.engine import multistart
problems = {"slimpajama additive": (slimpajama_runs(), "additive"), "slimpajama joint": (slimpajama_runs(), "joint"),
            "synthetic joint": (synthetic_table(0)[0], "joint")}
out = {}
for name, (runs, law) in problems.items():
    seconds, objectives = {"on": [], "off": []}, {}
    for i, buckets in enumerate(["off", "on"] + ["off", "on", "on", "off"] * REPEATS):
        multistart.ROW_BUCKET_BITS = None if buckets == "off" else 4
        t = time.perf_counter()
        fit = mj.fit(runs, law)
        if i >= 2:  # the first of each compiles
            seconds[buckets].append(time.perf_counter() - t)
        objectives[buckets] = fit.objective
    rel = np.abs(objectives["on"] - objectives["off"]) / np.abs(objectives["off"])
    out[name] = {"rows": runs.n_rows, "seconds": seconds, "median_on_s": float(np.median(seconds["on"])),
                 "median_off_s": float(np.median(seconds["off"])), "max_relative_objective_change": float(rel.max())}
    out[name]["ratio_on_off"] = out[name]["median_on_s"] / out[name]["median_off_s"]
    print(name, json.dumps(out[name]), flush=True)
print(json.dumps(out))
"""
#: Pairs of warm fits (buckets on and off, in ABBA order) per problem of ``WARM``.
WARM_REPEATS = 1


def child(script: str, args: list[str], cache: str) -> dict:
    """``script`` in a fresh process with the compilation cache in ``cache`` ('off': none): its report, and the
    whole process's wall time."""
    env = {**os.environ, "MIXLAW_COMPILE_CACHE": cache, "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1]) | {"process_s": seconds}
    if "warm_fit_s" in report:  # the second fit is there to measure the warm time; a user's process makes one
        report["one_fit_process_s"] = seconds - report["warm_fit_s"]
    return report


def entries(folder: Path) -> int:
    return len(list(folder.iterdir())) if folder.exists() else 0


def run(quick: bool = False, warm: bool = True) -> dict:
    """``ROUNDS`` rounds (1 with ``quick``), each with fresh cache folders, the bucket settings in alternating order
    (the machine's load drifts); each variant's median over the rounds, and every round's numbers; then, unless
    ``quick`` or not ``warm``, the ``WARM`` process (~30 min on a shared 2-core CPU)."""
    full, rounds = 240, 1 if quick else ROUNDS
    measured: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="mixlaw-cold-") as tmp:
        for r in range(rounds):
            for buckets in ("off", "on") if r % 2 == 0 else ("on", "off"):
                same, other = Path(tmp) / f"same-{buckets}-{r}", Path(tmp) / f"other-{buckets}-{r}"
                steps = [
                    ("empty", same, full),
                    ("same", same, full),
                    ("fill", other, full - DROPPED),
                    ("other", other, full),
                ]
                for name, folder, rows in steps:
                    report = child(CHILD, [str(rows), buckets], str(folder))
                    report["cache_entries_after"] = entries(folder)
                    measured.setdefault(f"{name}/buckets {buckets}", []).append(report)
                    print(f"round {r} {name:6s} buckets {buckets}: {json.dumps(report)}", flush=True)
            if not quick:
                metadata = json.dumps(baselines.law_metadata("chinchilla", 1, "log").to_json())
                measured.setdefault("recipe", []).append(child(RECIPE, [str(CHINCHILLA), metadata], "off"))
                print(f"round {r} recipe: {json.dumps(measured['recipe'][-1])}", flush=True)
    variants = {
        name: {key: float(np.median([x[key] for x in runs])) for key in runs[0]} | {"rounds": runs}
        for name, runs in measured.items()
    }
    result = {"provenance": provenance(), "rows": full, "dropped": DROPPED, "n_rounds": rounds, "variants": variants}
    if warm and not quick:  # what padding costs a warm fit: the SlimPajama default fits and the synthetic joint table
        result["warm"] = child(WARM.replace("REPEATS", str(WARM_REPEATS)), [], "off")
    return result


def markdown(result: dict, figures=None) -> str:
    warm = [
        f"{name}: warm {w['median_on_s']:.2f} s with buckets, {w['median_off_s']:.2f} s without "
        f"(x{w['ratio_on_off']:.3f}); objectives within {w['max_relative_objective_change']:.1e} relative"
        for name, w in result.get("warm", {}).items()
        if isinstance(w, dict)
    ]
    lines = [
        "| variant | rows | process s | import s | first fit s | warm fit s | objective |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in result["variants"].items():
        fit, nan = v.get("first_fit_s", v.get("fit_s")), float("nan")
        lines.append(
            f"| {name} | {v.get('rows', result['rows'])} | {v['process_s']:.2f} | {v.get('import_s', nan):.2f} "
            f"| {fit:.2f} | {v.get('warm_fit_s', nan):.2f} | {v['objective']:.10g} |"
        )
    recipe = result["variants"].get("recipe")
    bars = []
    if recipe:  # issue 25's bars: within 2x of the recipe with an empty cache, faster with another table's cache
        for name in ("empty/buckets on", "other/buckets on"):
            if name in result["variants"]:
                mine = result["variants"][name]["one_fit_process_s"]
                bars.append(
                    f"{name}: a one-fit process {mine:.2f} s / the recipe's process {recipe['process_s']:.2f} s = "
                    f"{mine / recipe['process_s']:.2f}x"
                )
    return "\n".join(lines + [""] + bars + [""] + warm)


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv, warm="--no-warm" not in sys.argv)
    atomic_write_json(RESULTS / f"{NAME}.json", out)
    print(markdown(out))
