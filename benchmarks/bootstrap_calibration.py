"""Calibration of bootstrap prediction intervals on synthetic tables with a known law.

Many tables share one design (20 mixtures of k = 3 domains x 3 model sizes, 5 checkpoints each = 60 runs,
300 rows) and differ in their noise: loss = L_true (1 + s eps), eps ~ N(0, 1) per row. Each table is one target
column, so a single ``bootstrap`` call fits every table x replicate at once. For each table the nominal 90%
interval of the predicted loss at held-out points (a model 3x larger than any fitted, at the last checkpoint,
4 new mixtures) is checked against the true loss there; the coverage is the fraction of (table, point) pairs whose
interval holds the truth.

    python -m benchmarks.bootstrap_calibration [--tables 100] [--replicates 200] [--resample runs|rows|bayesian]

Writes benchmarks/results/bootstrap_calibration.json (whole runs resampled, the default) or
bootstrap_calibration_<resample>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

import mixlaw_jax as mj
from benchmarks.common import RESULTS
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.options import RESAMPLE
from mixlaw_jax.results import provenance
from mixlaw_jax.simulate import design, random_mixtures, simulate

LAW = "additive"
K = 3
#: True additive-law parameters (SPEC names): terms of realistic size (~0.3-0.6) at the design's centre.
TRUTH = {"E": 1.8, "A": 174.0, "alpha": 0.3, "B": 470.0, "beta": 0.3, "C": [2.0, 1.5, 2.5], "gamma": [0.3, 0.6, 0.45]}
SIZES, TOKENS = [6e7, 1.5e8, 4e8], [2e9, 4e9, 8e9, 1.6e10, 3.2e10]
HELD_OUT_N, HELD_OUT_D = 1.2e9, 3.2e10
NOISE = 0.005
LEVEL = 0.9
#: Fit settings for the tables (k = 3: 11 parameters, a much easier landscape than k = 7).
FULL_SEARCH = mj.Search(4096, ((256, 30, 1.0), (64, 60, 1.0), (16, 200, 1.0)))
REPLICATE_SEARCH = mj.Search(256, ((4, 40, 1.0), (2, 100, 1.0)))


def truth_coordinates() -> np.ndarray:
    """The flat law coordinates of TRUTH (log of positive parameters)."""
    law = mj.get_law(LAW)
    return np.concatenate(
        [np.log(np.atleast_1d(TRUTH[p.name])) if p.positive else np.atleast_1d(TRUTH[p.name]) for p in law.params]
    )


def tables(n_tables: int, seed: int = 0) -> tuple[mj.RunTable, pd.DataFrame, np.ndarray]:
    """(run table with targets loss_0..loss_{n-1}, held-out frame, true losses at the held-out rows)."""
    frame = design(random_mixtures(20, K, min_weight=0.05, seed=seed), SIZES, TOKENS)
    u = truth_coordinates()
    h = frame[[f"weight_{i}" for i in range(K)]].to_numpy()
    losses = {
        f"loss_{t}": simulate(LAW, u, frame["N"], frame["D"], h, noise=NOISE, seed=seed * 100_003 + t + 1)
        for t in range(n_tables)
    }
    frame = pd.concat([frame, pd.DataFrame(losses, index=frame.index)], axis=1)
    runs = mj.load_runs(frame, weights="weight_*", N="N", D="D", targets="loss_*")
    held_out = design(random_mixtures(4, K, min_weight=0.05, seed=seed + 999), [HELD_OUT_N], [HELD_OUT_D])
    true_loss = simulate(LAW, u, held_out["N"], held_out["D"], held_out[[f"weight_{i}" for i in range(K)]].to_numpy())
    return runs, held_out, true_loss


def coverage(n_tables: int, n_replicates: int, seed: int = 0, resample: str = "runs", progress: bool = False) -> dict:
    """Fit and bootstrap every table; coverage of the nominal LEVEL prediction intervals at the held-out points."""
    runs, held_out, true_loss = tables(n_tables, seed)
    start = time.perf_counter()
    full = mj.fit(runs, LAW, search=dataclasses.replace(FULL_SEARCH, seed=seed), progress=progress)
    boot = mj.bootstrap(
        runs,
        LAW,
        n_replicates=n_replicates,
        resample=resample,
        level=LEVEL,
        full_fit=full,
        search=dataclasses.replace(REPLICATE_SEARCH, seed=seed),
        progress=progress,
    )
    seconds = time.perf_counter() - start
    pred = boot.predict_interval(held_out)
    lo = np.stack([pred[f"{t}_lo"].to_numpy() for t in runs.targets])  # (tables, points)
    hi = np.stack([pred[f"{t}_hi"].to_numpy() for t in runs.targets])
    point = np.stack([pred[t].to_numpy() for t in runs.targets])
    inside = (lo <= true_loss[None]) & (true_loss[None] <= hi)
    return {
        "tables": n_tables,
        "replicates": n_replicates,
        "resample": resample,
        "level": LEVEL,
        "noise": NOISE,
        "law": LAW,
        "k": K,
        "coverage": float(inside.mean()),
        "coverage_per_point": inside.mean(axis=0).tolist(),
        "mean_relative_width": float(np.mean((hi - lo) / true_loss[None])),
        "mean_relative_error": float(np.mean(np.abs(point - true_loss[None]) / true_loss[None])),
        "fraction_unconverged": float(np.mean(list(boot.fraction_unconverged.values()))),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=100)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resample", choices=list(RESAMPLE), default="runs")
    args = parser.parse_args()
    out = coverage(args.tables, args.replicates, args.seed, args.resample, progress=True)
    out["provenance"] = provenance(args.seed)
    print({k: v for k, v in out.items() if k != "provenance"})
    name = "bootstrap_calibration" + ("" if args.resample == "runs" else f"_{args.resample}")
    atomic_write_json(RESULTS / f"{name}.json", out)


if __name__ == "__main__":
    main()
