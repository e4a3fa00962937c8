"""Known truth for the repetition-aware joint law (issue 23): does a fit reach the truth's objective, and does h*
under data limits match a dense grid of the true law?

Tables: ``benchmarks.common.synthetic_table`` with pools, i.e. the joint law of Shukor et al. 2025 (eq. 2.5) made
repetition-aware (``joint_repetition``: Muennighoff et al. 2023's effective tokens per domain plus the overfitting
penalty, ``mixlaw_jax.laws.repetition``), a random truth per seed (joint part as ``synthetic_truth``, repetition part
from ``REPETITION_RANGES``), 20 mixtures x 3 model sizes (6e7, 1.5e8, 4e8) x 5 checkpoints (2e9 .. 3.2e10 tokens)
= 300 rows, at k = 3 and k = 5. The pools are set per seed from the table's mixtures so that the most-repeated row
of domain i reaches MOST_EPOCHS[k][i] epochs: domain 0 up to 30 (its least-repeated row 0.05-0.25), domain 1 up to 5
(from ~0.01), at k = 5 domain 2 up to 1.5, the others unlimited. Noise: relative Gaussian, σ = NOISE = 0.44%, so
that the mean absolute relative error σ √(2/π) = 0.35% is the SlimPajama joint fits' mean train MRE (8 targets,
first two checkpoints dropped; benchmarks/results/slimpajama_fit_joint_default_drop2.json).

Per seed:

- **fit**: ``mj.fit(runs, "joint_repetition", search=FULL_SEARCH)`` (4,096 starts, stages 128/64/16/8, one
  confirmation round; ~5 min for the 40 fits on the shared 2-core machine, where the default search's 16,384
  starts and four rounds take 20-45 min, and end lower on 19 of the 40 tables: benchmarks/NOTES.md); it *reaches*
  the truth when its objective (the engine's default: mean Huber, δ = 1e-3, raw loss)
  is at most the objective at the true coordinates times (1 + RTOL), RTOL = 1e-4.
- **h\\* (k = 3)**: ``optimal_mixture`` of the *true* law over the whole simplex at (N, D) = BUDGET with the
  table's pools (repeats priced by the law), against the best point of a simplex grid of step STEP = 0.0025 of
  the same law (80,601 mixtures); bar: max_i |h*_i - h_grid,i| <= H_TOL = 0.01 for every seed. Also reported:
  the optimum without limits (same law, U = inf), the epochs at h*, and the fitted law's h* against the true
  grid (informative: it measures identifiability of the law from the table, not the solver).

The bar (issue 23): the truth's objective reached in >= 19 of 20 seeds at both k, and every k = 3 seed's h* within
0.01 of the grid.

    python -m benchmarks --only repetition_truth      # ~6 min on 2 shared cores (40 fits)
    python -m benchmarks --only repetition_truth --quick   # one seed at k = 3, a small search: ~30 s

Writes benchmarks/results/repetition_truth.json.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

import mixlaw_jax as mj
from benchmarks.common import SYNTHETIC_TOKENS, objective_at, synthetic_table
from mixlaw_jax.laws import Inputs
from mixlaw_jax.simulate import random_mixtures

NAME = "repetition_truth"
LAW = "joint_repetition"
SEEDS = 20
#: relative noise σ (module docstring: the SlimPajama joint fits' residual level).
NOISE = 4.4e-3
#: A fit reaches the truth when its objective <= the truth's x (1 + RTOL).
RTOL = 1e-4
#: k -> the epochs of each domain's most-repeated row (np.inf: an unlimited pool).
MOST_EPOCHS = {3: (30.0, 5.0, np.inf), 5: (30.0, 5.0, 1.5, np.inf, np.inf)}
#: (N, D) of the h* check, and the grid step and tolerance.
BUDGET = (1e9, 1e11)
STEP = 0.0025
H_TOL = 0.01
#: The full run's search: a quarter of the default starts and stages, one confirmation round (331 s for the 40 fits
#: and checks at load 4.5-5). The default search (``mj.Search()``) took 10-117 s per fit there (confirmation rounds
#: on the "stalled" seeds): 20-45 min for the 40 depending on the load.
FULL_SEARCH = mj.Search(4096, ((128, 30, 0.25), (64, 60), (16, 100), (8, 300)), confirm=mj.Confirmation(rounds=1))
#: quick mode: one seed at k = 3, a small search (checks the script, not the bar; its time is compilation).
QUICK_SEARCH = mj.Search(256, ((16, 20), (4, 40)))


def pools(seed: int, k: int) -> np.ndarray:
    """U_i = max over rows of h_i D / MOST_EPOCHS[k][i]: the pools of seed's table (its mixtures are
    ``random_mixtures(20, k, seed=seed)``, as ``synthetic_table`` draws them)."""
    most_tokens = random_mixtures(20, k, seed=seed).max(axis=0) * max(SYNTHETIC_TOKENS)
    most_epochs = np.asarray(MOST_EPOCHS[k])
    return np.where(np.isfinite(most_epochs), most_tokens / most_epochs, np.inf)


def json_number(value: float) -> float | None:
    """``value`` for a JSON file: None for an unlimited pool or epoch count (inf)."""
    return float(value) if np.isfinite(value) else None


def simplex_grid(k: int, step: float) -> np.ndarray:
    """Every mixture of k = 3 domains whose weights are multiples of ``step``: (m, 3)."""
    if k != 3:
        raise ValueError("the dense grid check is for k = 3")
    a, b = np.meshgrid(np.arange(0, 1 + step / 2, step), np.arange(0, 1 + step / 2, step), indexing="ij")
    keep = a + b <= 1 + 1e-12
    return np.stack([a[keep], b[keep], np.clip(1 - a[keep] - b[keep], 0.0, 1.0)], axis=1)


def grid_optimum(coordinates: np.ndarray, u: np.ndarray, n: float, d: float) -> tuple[np.ndarray, float]:
    """(the grid mixture with the lowest loss of the law at ``coordinates`` with pools u, that loss)."""
    law = mj.get_law(LAW)
    grid = simplex_grid(len(u), STEP)
    m = len(grid)
    x = Inputs.from_arrays(np.full(m, n), np.full(m, d), grid, np.broadcast_to(u, grid.shape))
    loss = np.asarray(law.predict(law.unflatten(coordinates, len(u)), x))
    best = int(np.argmin(loss))
    return grid[best], float(loss[best])


def h_star_check(fit: mj.FitResult, truth: np.ndarray, u: np.ndarray) -> dict:
    """h* of the true law (and of the fitted one) under the pools u at BUDGET, against the true law's grid."""
    n, d = BUDGET
    true_fit = dataclasses.replace(fit, coordinates=truth[None])
    limits = {c: float(v) for c, v in zip(fit.weight_columns, u) if np.isfinite(v)}
    start = time.perf_counter()
    result = mj.optimal_mixture(true_fit, N=n, D=d, weight_bounds="simplex", token_budget=limits)
    seconds = time.perf_counter() - start
    fitted = mj.optimal_mixture(fit, N=n, D=d, weight_bounds="simplex", token_budget=limits)
    h_grid, f_grid = grid_optimum(truth, u, n, d)
    h = result.h[0, -1]
    return {
        "h_star": h.tolist(),
        "h_grid": h_grid.tolist(),
        "max_abs_dh": float(np.abs(h - h_grid).max()),
        "objective": float(result.objective[0, -1]),
        "grid_objective": f_grid,
        "epochs": result.epochs[0, -1].tolist(),
        "h_unlimited": result.unlimited_h[0, -1].tolist(),
        "limit_cost": float(result.limit_cost[0, -1]),
        "fitted_h_star": fitted.h[0, -1].tolist(),
        "fitted_max_abs_dh": float(np.abs(fitted.h[0, -1] - h_grid).max()),
        "seconds": seconds,
    }


def measure(seed: int, k: int, search: mj.Search) -> dict:
    """One seed: the fit against the truth's objective, and at k = 3 the h* check."""
    u = pools(seed, k)
    runs, truth = synthetic_table(seed, k=k, noise=NOISE, pools=u)
    epochs = runs.h * runs.d[:, None] / u
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mj.MixlawWarning)  # the diagnostics are recorded below
        fit = mj.fit(runs, LAW, search=search)
    seconds = time.perf_counter() - start
    at_truth = objective_at(LAW, truth, runs)
    diagnostics = fit.diagnostics["loss"]
    out = {
        "seed": seed,
        "pools": [json_number(v) for v in u],
        "epochs_range": [[float(e.min()), float(e.max())] for e in epochs.T],
        "objective": float(fit.objective[0]),
        "at_truth": at_truth,
        "ratio": float(fit.objective[0] / at_truth),
        "reached": bool(fit.objective[0] <= at_truth * (1 + RTOL)),
        "status": diagnostics.status.label,
        "n_in_basin": int(diagnostics.n_in_basin),
        "n_final": int(diagnostics.n_final),
        "truth_repetition": dict(zip(("rho", "log_C_o", "nu", "kappa"), truth[-4:].tolist())),
        "fitted_repetition": {p: fit.params["loss"][p] for p in ("rho", "C_o", "nu", "kappa")},
        "seconds": seconds,
    }
    if k == 3:
        out["h_star"] = h_star_check(fit, truth, u)
    return out


def run(quick: bool) -> dict:
    seeds = 1 if quick else SEEDS
    search = QUICK_SEARCH if quick else FULL_SEARCH
    out = {
        "law": LAW,
        "seeds": seeds,
        "noise": NOISE,
        "rtol": RTOL,
        "most_epochs": {str(k): [json_number(e) for e in v] for k, v in MOST_EPOCHS.items()},
        "budget": list(BUDGET),
        "grid_step": STEP,
        "h_tol": H_TOL,
        "search": repr(search),
        "k": {},
    }
    for k in (3,) if quick else MOST_EPOCHS:
        rows = []
        for seed in range(seeds):
            rows.append(measure(seed, k, search))
            r = rows[-1]
            line = f"k={k} seed {seed}: ratio {r['ratio']:.6f} reached {r['reached']} {r['status']} {r['seconds']:.1f}s"
            if "h_star" in r:
                check = r["h_star"]
                line += f"  h* vs grid {check['max_abs_dh']:.4f} (fitted law {check['fitted_max_abs_dh']:.3f})"
            print("   " + line, flush=True)
        summary = {"reached": sum(r["reached"] for r in rows), "rows": rows}
        if k == 3:
            dh = [r["h_star"]["max_abs_dh"] for r in rows]
            summary["h_star_max_abs_dh"] = max(dh)
            summary["h_star_within_tol"] = sum(v <= H_TOL for v in dh)
        out["k"][str(k)] = summary
    out["bar_met"] = bool(
        all(s["reached"] >= seeds - seeds // 20 for s in out["k"].values())
        and out["k"]["3"]["h_star_within_tol"] == seeds
    )
    return out


def markdown(result: dict, figures) -> str:
    seeds = result["seeds"]
    lines = [
        "## Known truth: the repetition-aware joint law (issue 23)",
        "",
        f"Synthetic `{result['law']}` tables (300 rows, noise σ = {100 * result['noise']:.2g}%, domain 0 repeated up "
        f"to 30 epochs, domain 1 up to 5), {seeds} seeds, search: {result['search']}. Reached: fitted objective <= "
        f"truth's x (1 + {result['rtol']:g}). h*: the true law's optimum under its pools at (N, D) = "
        f"({result['budget'][0]:.3g}, {result['budget'][1]:.3g}) against a {result['grid_step']} simplex grid.",
        "",
        "| k | reached | median objective / truth's | h* max abs diff vs grid (worst seed) | seeds within "
        f"{result['h_tol']} |",
        "|---|---|---|---|---|",
    ]
    for k, s in result["k"].items():
        ratio = np.median([r["ratio"] for r in s["rows"]])
        dh = f"{s['h_star_max_abs_dh']:.4f}" if "h_star_max_abs_dh" in s else "-"
        within = f"{s['h_star_within_tol']}/{seeds}" if "h_star_within_tol" in s else "-"
        lines.append(f"| {k} | {s['reached']}/{seeds} | {ratio:.4f} | {dh} | {within} |")
    verdict = "met" if result["bar_met"] else "not met"
    lines += [
        "",
        f"Bar (>= 19/20 at both k, every k = 3 h* within 0.01): **{verdict}**. At this noise the optimum of a table "
        "lies below the truth's objective, so reaching it does not prove the best basin was found; "
        "`benchmarks/NOTES.md` compares this search with the default one and says which parameters the tables "
        "identify (ρ, not the overfitting penalty).",
    ]
    return "\n".join(lines) + "\n"
