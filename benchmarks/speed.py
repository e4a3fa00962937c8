"""Speed and quality: the engine beside the paper's recipe and Hoffmann/Epoch's, on the same objectives.

Problems (every fit unbounded, Huber δ = 1e-3):

* ``chinchilla`` — Epoch's 240 Chinchilla points, log-space residuals, summed (SPEC.md §5);
* ``additive``, ``joint`` — SlimPajama rows with model_size ≤ 1.3e9 (duplicates kept), raw residuals, mean; the
  engine fits every target in ONE call, the baselines run once per target and their times add up;
* ``synthetic`` — a joint-law table with a known truth (``common.synthetic_table``).

Per problem the engine runs a ladder of settings, light to the library default, each a separate call timed from a
cold start (JAX's compiled programs are cleared first and its on-disk compilation cache is off: ``common``, so each time
includes compilation), then warm: the median of
``WARM_REPEATS`` repeats of the same call (compilation reused; a single repeat swung by up to 1.7× under a busy
machine). Per baseline: its final objective, the time it took to reach it (its own best, not its whole run), and its
best objective at the engine's wall time (its anytime trace at that time divided by the number of targets:
sequential runs sharing that budget). The engine's time to reach a baseline is the fastest rung whose objective is
at or below the baseline's on every target.

Full mode is hours on a 2-core CPU (the tight paper recipe runs ~7 min per target); bound it with

    MIXLAW_SPEED_PROBLEMS=chinchilla,joint   problems to run (default: all four); the problems of the result
                                             file on disk that this run leaves out are carried over (``merge``),
                                             each with the provenance of the run that measured it
    MIXLAW_SPEED_TARGETS=github_loss,...     SlimPajama targets (default: all 8)
    MIXLAW_SPEED_CAP=900                     seconds per baseline run (default 900)
    MIXLAW_SPEED_NITER=100                   basin-hopping hops of the paper recipe (default 100, scipy's)
    MIXLAW_SPEED_BASELINES=none              baselines to run (default: each problem's own; ``none``: the
                                             engine's ladder only, e.g. on a GPU machine, whose CPU times would
                                             not compare with this machine's)

Under ``--dtype float32`` the engine's objectives are re-scored in float64 (numpy, the baselines' code) from its
fitted coordinates, so every row compares the same quantity.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

import mixlaw_jax as mj
from benchmarks import baselines
from benchmarks.common import CHINCHILLA, SLIMPAJAMA, Stopwatch, objective_at, require, synthetic_table

NAME = "speed"

PROBLEMS = ("chinchilla", "additive", "joint", "synthetic")
SYNTHETIC_SEED = 0
#: Engine settings from light to the library default.
LADDER = (
    mj.Search(64, ((8, 100, 1.0), (2, 300, 1.0))),
    mj.Search(256, ((16, 60, 1.0), (4, 200, 1.0))),
    mj.Search(1024, ((64, 30, 0.25), (16, 100, 1.0), (4, 300, 1.0))),
    mj.Search(4096, ((256, 30, 0.25), (64, 100, 1.0), (16, 200, 1.0))),
    mj.Search(),  # the library default
)
QUICK_LADDER = (mj.Search(32, ((4, 30, 1.0), (2, 60, 1.0))),)
#: Quick mode: one SlimPajama target, a random subset of its rows, tiny baselines.
QUICK_TARGET, QUICK_ROWS = "github_loss", 400
QUICK_BASELINE = {"n_random": 64, "niter": 1, "max_seconds": 10.0}
#: Random-search points before the paper recipe's hops (the paper publishes none): ``paper_*`` methods screen
#: 4096, ``paper_*_wide`` ones 65,536 (with 4096 the tight recipe stopped at 2× the joint optimum on github).
RANDOM_POINTS = {"": 4096, "wide": 65536}
#: The issue's speed bars: engine time to the tight paper recipe's objective vs that recipe's time.
SPEED_BAR = {"chinchilla": 20.0, "joint": 100.0, "synthetic": 100.0}
#: Warm calls per rung; the median is reported.
WARM_REPEATS = 3
#: Objectives within this relative distance count as equal (float rounding between numpy and XLA).
EQUAL_RTOL = 1e-9


def _env_list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(name, "")
    return tuple(v.strip() for v in value.split(",") if v.strip()) or default


def chinchilla_runs() -> mj.RunTable:
    """Epoch's Chinchilla table, prepared as Epoch does (``baselines.epoch_chinchilla``)."""
    frame = baselines.epoch_chinchilla(require(CHINCHILLA))
    return mj.load_runs(frame, weights=["h"], N="Model Size", D="D", targets=["loss"], warn=False)


def slimpajama_runs() -> mj.RunTable:
    """SlimPajama training rows (model_size ≤ 1.3e9), duplicated final checkpoints kept."""
    runs = mj.load_runs(
        require(SLIMPAJAMA), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss", warn=False
    )
    return runs.query("model_size <= 1.3e9")


def problem_specs(quick: bool, names: tuple[str, ...] | None = None) -> list[dict]:
    """Each problem: name, law, run table, targets, objective settings, and the baselines to run; ``names`` (full
    mode) defaults to ``MIXLAW_SPEED_PROBLEMS``."""
    objective = {"loss_space": "raw", "reduction": "mean", "delta": 1e-3}
    paper = ["paper_default", "paper_tight"]
    wide = paper + ["paper_tight_wide"]
    chinchilla = {
        "name": "chinchilla",
        "law": "chinchilla",
        "runs": chinchilla_runs(),
        "targets": ["loss"],
        "objective": {"loss_space": "log", "reduction": "sum", "delta": 1e-3},
        "baselines": paper + ["hoffmann"],
    }
    if quick:
        runs = slimpajama_runs()
        rows = np.sort(np.random.default_rng(0).choice(runs.n_rows, QUICK_ROWS, replace=False))
        return [
            chinchilla,
            {
                "name": "joint",
                "law": "joint",
                "runs": runs.subset(rows),
                "targets": [QUICK_TARGET],
                "objective": objective,
                "baselines": wide,
            },
        ]
    specs = []
    for name in names or _env_list("MIXLAW_SPEED_PROBLEMS", PROBLEMS):
        if name == "chinchilla":
            specs.append(chinchilla)
        elif name in ("additive", "joint"):
            runs = slimpajama_runs()
            targets = list(_env_list("MIXLAW_SPEED_TARGETS", runs.targets))
            specs.append(
                {"name": name, "law": name, "runs": runs, "targets": targets, "objective": objective, "baselines": wide}
            )
        elif name == "synthetic":
            runs, truth = synthetic_table(SYNTHETIC_SEED)
            specs.append(
                {
                    "name": name,
                    "law": "joint",
                    "runs": runs,
                    "targets": ["loss"],
                    "objective": objective,
                    "baselines": wide,
                    "truth_objective": objective_at("joint", truth, runs),
                }
            )
        else:
            raise ValueError(f"MIXLAW_SPEED_PROBLEMS: unknown problem {name!r}; choose from {PROBLEMS}")
    chosen = _env_list("MIXLAW_SPEED_BASELINES", ())
    if chosen:
        for spec in specs:
            spec["baselines"] = [] if chosen == ("none",) else [m for m in spec["baselines"] if m in chosen]
    return specs


def run_engine(spec: dict, search: mj.Search) -> dict:
    """One engine call fitting every target of the problem (unbounded unless the spec has ``parameter_bounds``),
    timed cold (compiled programs cleared first) and then
    warm: the median of ``WARM_REPEATS`` repeats of the same call (compilation reused)."""
    o = spec["objective"]

    def fit():
        with Stopwatch() as watch:
            result = mj.fit(
                spec["runs"],
                spec["law"],
                targets=spec["targets"],
                objective=mj.Objective(o["loss_space"], o["delta"], o["reduction"]),
                parameter_bounds=spec.get("parameter_bounds"),
                search=search,
            )
        return result, watch.seconds

    jax.clear_caches()
    result, cold = fit()
    warm = [fit()[1] for _ in range(WARM_REPEATS)]
    numpy_objective = []
    for j, target in enumerate(result.targets):
        problem = baselines.Problem.from_runs(spec["runs"], target, spec["law"], **o)
        numpy_objective.append(float(problem.objective(problem.to_natural(result.coordinates[j]))[0]))
    native = [float(v) for v in result.objective]
    numpy_objective = [v if np.isfinite(v) else None for v in numpy_objective]
    x64 = bool(jax.config.jax_enable_x64)
    return {
        "settings": {"n_starts": search.n_starts, "schedule": [list(s) for s in search.stages]},
        "seconds": cold,
        "warm_seconds": float(np.median(warm)),
        "warm_repeats_seconds": warm,
        "objective": native if x64 else [v if v is not None else float("inf") for v in numpy_objective],
        "engine_objective": native,
        "numpy_objective": numpy_objective,
        # (None from a package before confirmation: ``confirmation_cost.at_commit`` times older commits)
        "confirmed": [getattr(result.diagnostics[t], "confirmed", None) for t in result.targets],
        "extra_rounds": [getattr(result.diagnostics[t], "extra_rounds", None) for t in result.targets],
    }


def baseline_cap(quick: bool) -> float:
    """Seconds allowed to one baseline run on one target."""
    return QUICK_BASELINE["max_seconds"] if quick else float(os.environ.get("MIXLAW_SPEED_CAP", 900))


def run_baseline(spec: dict, method: str, target: str, quick: bool) -> dict:
    problem = baselines.Problem.from_runs(spec["runs"], target, spec["law"], **spec["objective"])
    cap = baseline_cap(quick)
    if method == "hoffmann":
        out = baselines.hoffmann_recipe(problem, every=150 if quick else 1, max_seconds=cap)
    else:
        niter = QUICK_BASELINE["niter"] if quick else int(os.environ.get("MIXLAW_SPEED_NITER", 100))
        tolerance, _, width = method.removeprefix("paper_").partition("_")
        n_random = QUICK_BASELINE["n_random"] if quick else RANDOM_POINTS[width]
        out = baselines.paper_recipe(problem, tolerance=tolerance, n_random=n_random, niter=niter, max_seconds=cap)
    out["seconds_to_best"] = out["trace"][-1][0] if out["trace"] else out["seconds"]
    return out


def compare(rungs: list[dict], runs_by_target: list[dict]) -> dict:
    """The engine against one baseline method: quality, time to reach, objective at equal wall time."""
    final = rungs[-1]
    base = [r["objective"] for r in runs_by_target]

    def at_or_below(ours, theirs):
        return all(o <= b * (1 + EQUAL_RTOL) for o, b in zip(ours, theirs))

    reaching = [i for i, r in enumerate(rungs) if at_or_below(r["objective"], base)]

    def fastest(key):
        return min(reaching, key=lambda i: rungs[i][key]) if reaching else None

    reach, reach_warm = fastest("seconds"), fastest("warm_seconds")
    seconds_to_best = sum(r["seconds_to_best"] for r in runs_by_target)
    per_target_budget = final["seconds"] / len(runs_by_target)
    equal_time = [baselines.best_at(r["trace"], per_target_budget) for r in runs_by_target]
    return {
        "baseline_objective": base,
        "baseline_seconds": sum(r["seconds"] for r in runs_by_target),
        "baseline_seconds_to_best": seconds_to_best,
        "engine_objective": final["objective"],
        "engine_at_or_below": at_or_below(final["objective"], base),
        "objective_ratio": [o / b for o, b in zip(final["objective"], base)],
        "reach_rung": reach,
        "reach_seconds": None if reach is None else rungs[reach]["seconds"],
        "speedup": None if reach is None else seconds_to_best / rungs[reach]["seconds"],
        "reach_rung_warm": reach_warm,
        "reach_warm_seconds": None if reach is None else rungs[reach_warm]["warm_seconds"],
        "speedup_warm": None if reach is None else seconds_to_best / rungs[reach_warm]["warm_seconds"],
        "equal_time_seconds": final["seconds"],
        "baseline_at_equal_time": equal_time,
        "engine_better_at_equal_time": all(
            b is None or o <= b * (1 + EQUAL_RTOL) for o, b in zip(final["objective"], equal_time)
        ),
    }


def run(quick: bool) -> dict:
    problems = []
    for spec in problem_specs(quick):
        print(f"   {spec['name']}: {len(spec['targets'])} target(s), {spec['runs'].n_rows} rows", flush=True)
        rungs = [run_engine(spec, search) for search in (QUICK_LADDER if quick else LADDER)]
        for r in rungs:
            print(
                f"     engine {r['settings']['n_starts']:>6} starts: {r['seconds']:7.2f} s cold "
                f"{r['warm_seconds']:7.2f} s warm  "
                f"objective {sum(r['objective']):.6e} (sum over targets)",
                flush=True,
            )
        runs_by_method, comparisons = {}, {}
        for method in spec["baselines"]:
            runs_by_method[method] = [run_baseline(spec, method, t, quick) for t in spec["targets"]]
            comparisons[method] = compare(rungs, runs_by_method[method])
            c = comparisons[method]
            print(
                f"     {method:14s} {c['baseline_seconds']:7.1f} s  objective {sum(c['baseline_objective']):.6e}  "
                f"speed-up {_times(c['speedup'])} cold, {_times(c['speedup_warm'])} warm",
                flush=True,
            )
        problems.append(
            {
                "name": spec["name"],
                "law": spec["law"],
                "targets": spec["targets"],
                "rows": int(spec["runs"].n_rows),
                "objective_settings": spec["objective"],
                "truth_objective": spec.get("truth_objective"),
                "engine": rungs,
                "baselines": runs_by_method,
                "comparison": comparisons,
            }
        )
    return {"quick": quick, "problems": problems, "bars": bars(problems), "cap_seconds": baseline_cap(quick)}


def merge(previous: dict, new: dict) -> dict:
    """``new`` plus the problems of ``previous`` (the result file it replaces) that it did not run, in ``PROBLEMS``
    order, each carried-over problem keeping the provenance and baseline cap it was measured with; bars recomputed."""
    if previous.get("quick") != new["quick"]:
        return new
    ran = {p["name"] for p in new["problems"]}
    carried = [
        dict(
            p,
            provenance=p.get("provenance", previous.get("provenance")),
            cap_seconds=p.get("cap_seconds", previous.get("cap_seconds")),
        )
        for p in previous.get("problems", [])
        if p["name"] not in ran
    ]
    problems = sorted(carried + new["problems"], key=lambda p: PROBLEMS.index(p["name"]))
    return dict(new, problems=problems, bars=bars(problems))


def bars(problems: list[dict]) -> list[dict]:
    """The issue's bars, each with what was measured and whether it was met."""
    out = []
    for p in problems:
        for method, c in p["comparison"].items():
            out.append(
                {
                    "bar": f"{p['name']}: engine objective ≤ {method}",
                    "measured": max(c["objective_ratio"]),
                    "needed": 1.0,
                    "met": c["engine_at_or_below"],
                }
            )
        if p["name"] not in SPEED_BAR:
            continue
        needed = SPEED_BAR[p["name"]]
        for method in [m for m in p["comparison"] if m.startswith("paper_tight")]:
            c = p["comparison"][method]
            out.append(
                {
                    "bar": f"{p['name']}: speed-up to {method}'s objective",
                    "measured": c["speedup"],
                    "measured_warm": c["speedup_warm"],
                    "needed": needed,
                    "met": _at_least(c["speedup"], needed),
                    "met_warm": _at_least(c["speedup_warm"], needed),
                }
            )
    return out


def _at_least(speedup: float | None, needed: float) -> bool:
    return speedup is not None and speedup >= needed


# --- report --------------------------------------------------------------------------------------------------


def _secs(seconds: float) -> str:
    return f"{seconds:.3g}" if seconds < 10 else f"{seconds:.0f}"


def _times(ratio: float | None) -> str:
    return "not reached" if ratio is None else f"{ratio:.3g}×"


def markdown(result: dict, figures: Path) -> str:
    lines = [
        "## Speed and quality",
        "",
        "The engine (`mj.fit`, one call for every target of a problem; each rung of its ladder timed cold, "
        "compilation included, then warm) beside the paper's recipe (4096 random points from the engine's init "
        "box, 65,536 for `*_wide`, the best one starting `scipy.optimize.basinhopping`: scipy's T = 1, stepsize "
        "0.5, L-BFGS-B with an analytic gradient in the paper's coordinates; `paper_default`: scipy's L-BFGS-B "
        "tolerances, `paper_tight`: ftol 1e-15, gtol 1e-12) and, on Chinchilla, Hoffmann/Epoch's L-BFGS-B from a "
        "4500-point grid (`benchmarks/baselines.py`, numpy only, one core). Same objective everywhere, "
        "unbounded. A baseline's time is the time it took to reach its final objective, summed over targets "
        "(one run per target); the engine's is its fastest rung at or below that objective on every target. "
        f"Baseline runs are capped at {result['cap_seconds']:g} s each, random search included.",
        "",
    ]
    if result["quick"]:
        lines += ["*Quick run: tiny settings that only check the scripts; the numbers mean nothing.*", ""]
    lines += [
        "Quality bars compare objectives (engine / baseline, worst target); speed bars are judged twice: on the "
        "engine's cold time (compilation included) and on its warm time (compiled programs reused, median of "
        f"{WARM_REPEATS} calls).",
        "",
        "| bar | measured | needed | met |",
        "|---|---|---|---|",
    ]

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    for b in result["bars"]:
        speed = "measured_warm" in b
        measured = f"{_times(b['measured'])} ({_times(b['measured_warm'])} warm)" if speed else f"{b['measured']:.6f}"
        needed = f"≥ {b['needed']:g}×" if speed else "≤ 1"
        verdict = f"{met(b['met'])} cold, {met(b['met_warm'])} warm" if speed else met(b["met"])
        lines.append(f"| {b['bar']} | {measured} | {needed} | {verdict} |")
    for p in result["problems"]:
        lines += [
            "",
            f"### {p['name']} ({p['law']} law, {len(p['targets'])} target(s), {p['rows']} rows, "
            f"{p['objective_settings']['loss_space']} residuals, {p['objective_settings']['reduction']})",
            "",
        ]
        if "provenance" in p:
            prov = p["provenance"]
            lines += [
                f"*Carried over from an earlier run: measured {prov.get('date', '?')}, commit "
                f"`{prov.get('commit', '?')[:12]}`, baseline runs capped at {p['cap_seconds']:g} s.*",
                "",
            ]
        if p.get("truth_objective") is not None:
            lines += [f"Objective at the true parameters: {p['truth_objective']:.6e}.", ""]
        lines += [
            "| engine rung | starts | schedule (keep/iterations/row fraction) | cold s | warm s | "
            "objective (sum over targets) |",
            "|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(p["engine"]):
            schedule = ", ".join("/".join(f"{v:g}" for v in s) for s in r["settings"]["schedule"])
            lines.append(
                f"| {i} | {r['settings']['n_starts']} | {schedule} | {_secs(r['seconds'])} | "
                f"{_secs(r['warm_seconds'])} | {sum(r['objective']):.6e} |"
            )
        lines += [
            "",
            "| baseline | objective (sum) | engine / baseline (worst target) | baseline s to its best "
            "(whole run) | engine s to reach it, cold / warm (rungs) | speed-up cold / warm | "
            "baseline at the engine's wall time |",
            "|---|---|---|---|---|---|---|",
        ]
        for method, c in p["comparison"].items():
            at_equal = c["baseline_at_equal_time"]
            equal = "no point yet" if any(v is None for v in at_equal) else f"{sum(at_equal):.6e}"
            reach = (
                "not reached"
                if c["reach_rung"] is None
                else f"{_secs(c['reach_seconds'])} / {_secs(c['reach_warm_seconds'])} "
                f"({c['reach_rung']} / {c['reach_rung_warm']})"
            )
            lines.append(
                f"| {method} | {sum(c['baseline_objective']):.6e} | {max(c['objective_ratio']):.6f} | "
                f"{_secs(c['baseline_seconds_to_best'])} ({_secs(c['baseline_seconds'])}) | {reach} | "
                f"{_times(c['speedup'])} / {_times(c['speedup_warm'])} | {equal} |"
            )
        if len(p["targets"]) > 1:
            methods = list(p["comparison"])
            lines += ["", "| target | engine | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
            for j, t in enumerate(p["targets"]):
                lines.append(
                    f"| {t} | {p['engine'][-1]['objective'][j]:.6e} | "
                    + " | ".join(f"{p['comparison'][m]['baseline_objective'][j]:.6e}" for m in methods)
                    + " |"
                )
        lines += ["", f"![{p['name']}: best objective against wall time]({figures / plot(p, figures)})"]
    return "\n".join(lines) + "\n"


def plot(problem: dict, figures: Path) -> str:
    """Anytime traces of the baselines, one panel per target, with the engine's rungs as points (at the cold and
    warm wall time of the whole call); objectives relative to the best any method found. Returns the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = problem["targets"]
    cols = min(4, len(targets))
    rows = -(-len(targets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for j, (ax, target) in enumerate(zip(axes.flat, targets)):
        runs = {m: r[j] for m, r in problem["baselines"].items()}
        best = min([r["objective"] for r in runs.values()] + [e["objective"][j] for e in problem["engine"]])
        for method, r in runs.items():
            t, f = np.array(r["trace"]).T if r["trace"] else (np.array([]), np.array([]))
            ax.step(np.maximum(t, 1e-3), f / best, where="post", label=method)
        engine = [e["objective"][j] / best for e in problem["engine"]]
        ax.plot([e["seconds"] for e in problem["engine"]], engine, "ko-", label="engine, cold (all targets)")
        ax.plot([e["warm_seconds"] for e in problem["engine"]], engine, "ko", mfc="none", label="engine, warm")
        ax.set(xscale="log", yscale="log", title=target, xlabel="wall s")
        if j % cols == 0:
            ax.set_ylabel("objective / best found")
    for ax in list(axes.flat)[len(targets) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    name = f"speed_{problem['name']}.png"
    fig.savefig(figures / name, dpi=110)
    plt.close(fig)
    return name
