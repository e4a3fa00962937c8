"""Accelerator results beside the CPU's: the speed ladder and the scaling sweeps, float64 and float32.

    bash benchmarks/gpu.sh OUT speed-float64 speed-float32 scaling-float64 scaling-float32   # on the GPU machine
    python -m benchmarks --report                                                          # rebuild RESULTS.md

The GPU runs use the same ``speed`` and ``scaling`` modules as the CPU, with the CPU baselines left out. Their
files are ``results/gpu/speed-<dtype>-<problem>.json`` and ``results/gpu/scaling-<dtype>.json``; the CPU's are
``results/speed*.json`` and ``results/scaling.json`` (this 2-core machine, float64). CPU and GPU numbers come
from different invocations on different machines: they are set side by side, not divided into ratios.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import DTYPES, RESULTS
from benchmarks.scaling import DOMAIN_SWEEPS, SWEEPS
from benchmarks.speed import PROBLEMS

FOLDER = RESULTS / "gpu"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def cpu_ladders(results: Path = RESULTS) -> dict:
    """Problem name -> the CPU's engine ladder, from every results/speed*.json (the latest measurement wins, by the
    date in its provenance: a file's modification time is the checkout's, not the measurement's)."""
    found = [json.loads(path.read_text()) for path in results.glob("speed*.json")]
    out = {}
    for r in sorted((r for r in found if not r.get("quick")), key=lambda r: r["provenance"]["date"]):
        out.update({p["name"]: p["engine"] for p in r["problems"]})
    return out


def gpu_ladders(folder: Path = FOLDER) -> dict:
    """(problem, dtype) -> the GPU's engine ladder."""
    out = {}
    for path in folder.glob("speed-*.json"):
        r = json.loads(path.read_text())
        for p in r["problems"]:
            out[(p["name"], r["provenance"]["machine"]["dtype"])] = p["engine"]
    return out


def _cell(rung: dict | None) -> str:
    return "—" if rung is None else f"{rung['seconds']:.1f} / {rung['warm_seconds']:.3g}"


def _objective(rung: dict | None) -> str:
    return "—" if rung is None else f"{sum(rung['objective']):.6e}"


def speed_table(cpu: dict, gpu: dict) -> list[str]:
    lines = [
        "| problem | starts | CPU float64 s, cold / warm | GPU float64 | GPU float32 | objective (sum over "
        "targets): CPU / GPU float64 / GPU float32 scored in float64 |",
        "|---|---|---|---|---|---|",
    ]
    for problem in sorted({name for name, _ in gpu}, key=PROBLEMS.index):
        ladders = [cpu.get(problem)] + [gpu.get((problem, d)) for d in DTYPES]
        n_rungs = max(len(ladder) for ladder in ladders if ladder)
        for i in range(n_rungs):
            rungs = [ladder[i] if ladder and i < len(ladder) else None for ladder in ladders]
            starts = next(r["settings"]["n_starts"] for r in rungs if r)
            lines.append(
                f"| {problem} | {starts} | "
                + " | ".join(_cell(r) for r in rungs)
                + " | "
                + " / ".join(_objective(r) for r in rungs)
                + " |"
            )
    return lines


def scaling_table(cpu: dict | None, gpu: dict) -> list[str]:
    lines = [
        "| axis | size | CPU float64 s, first / warm | GPU float64 | GPU float32 | GPU peak memory in use "
        "(MiB, float64) |",
        "|---|---|---|---|---|---|",
    ]
    sources = [cpu] + [gpu.get(d) for d in DTYPES]
    axes = [a for a in SWEEPS | DOMAIN_SWEEPS if any(s and a in s["sweeps"] for s in sources)]
    for axis in axes:
        sizes = sorted({p["size"] for s in sources if s and axis in s["sweeps"] for p in s["sweeps"][axis]["points"]})
        for size in sizes:
            cells, peak = [], "—"
            for j, s in enumerate(sources):
                point = (
                    next((p for p in s["sweeps"][axis]["points"] if p["size"] == size), None)
                    if s and axis in s["sweeps"]
                    else None
                )
                ok = point is not None and "error" not in point
                warm = "—" if ok and point["time_warm_s"] is None else f"{point['time_warm_s']:.3g}" if ok else ""
                cells.append(f"{point['time_first_s']:.1f} / {warm}" if ok else "failed" if point else "—")
                if j == 1 and ok and point.get("device_peak_bytes"):
                    peak = f"{point['device_peak_bytes'] / 2**20:.0f}"
            lines.append(f"| {axis} | {size} | " + " | ".join(cells) + f" | {peak} |")
    return lines


def plot(cpu: dict | None, gpu: dict, path: Path) -> None:
    """Time per scaling axis (warm; the domain sweeps: their one first call), CPU against GPU float64 and float32."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = [a for a in SWEEPS | DOMAIN_SWEEPS if any(a in s["sweeps"] for s in gpu.values())]
    fig, panels = plt.subplots(1, len(axes), figsize=(4 * len(axes), 3.4), squeeze=False)
    for ax, axis in zip(panels[0], axes):
        timed = "time_first_s" if axis in DOMAIN_SWEEPS else "time_warm_s"  # the domain sweeps make one call
        for label, s in [("CPU float64", cpu)] + [(f"GPU {d}", gpu.get(d)) for d in DTYPES]:
            if s and axis in s["sweeps"]:
                ok = [p for p in s["sweeps"][axis]["points"] if "error" not in p]
                ax.loglog([p["size"] for p in ok], [p[timed] for p in ok], "o-", label=label)
        ax.set(title=axis, xlabel=axis, ylabel=f"{'first' if timed == 'time_first_s' else 'warm'} call (s)")
        ax.grid(True, which="both", alpha=0.3)
    panels[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(figures: Path, folder: Path = FOLDER, results: Path = RESULTS) -> str | None:
    """The GPU section of RESULTS.md, or None when no GPU result is on file."""
    gpu_speed = gpu_ladders(folder) if folder.exists() else {}
    gpu_scaling = {d: r for d in DTYPES if (r := _load(folder / f"scaling-{d}.json"))}
    if not gpu_speed and not gpu_scaling:
        return None
    any_result = _load(sorted([*folder.glob("speed-*.json"), *folder.glob("scaling-*.json")])[0])
    m, v = any_result["provenance"]["machine"], any_result["provenance"]["versions"]
    lines = [
        "## GPU",
        "",
        f"`benchmarks/gpu.sh` on {', '.join(m['jax_devices'])} ({m['cpu']}, {m['cores']} cores), jax "
        f"{v['jax']}, commit `{any_result['provenance']['commit'][:12]}`, {any_result['provenance']['date']}; "
        "the CPU columns are this 2-core machine's own files. Cold = a fresh call including XLA compilation; "
        "warm = the same call again.",
        "",
    ]
    if gpu_speed:
        lines += ["**Speed ladder** (the engine's rungs of `speed.py`; seconds cold / warm):", ""]
        lines += speed_table(cpu_ladders(results), gpu_speed) + [""]
    if gpu_scaling:
        cpu = _load(results / "scaling.json")
        lines += ["**Scaling** (`scaling.py` points; seconds first call / warm call):", ""]
        lines += scaling_table(cpu, gpu_scaling) + [""]
        figures.mkdir(parents=True, exist_ok=True)
        plot(cpu, gpu_scaling, figures / "gpu_scaling.png")
        lines += [f"![warm time per axis, CPU and GPU]({figures / 'gpu_scaling.png'})", ""]
    return "\n".join(lines)
