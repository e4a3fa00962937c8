"""SlimPajama: Ye et al.'s nested pipeline beside the direct joint law, predicting the 2.718e9 runs at their last
checkpoint from the runs with model_size <= 1.235e9 (issue 22's bar).

    python -m benchmarks.nested_slimpajama [--drop-first 0 --drop-first 2] [--mixing-law mixing_exp ...]
        [--replicates 100]

For each protocol (each run's first K checkpoints dropped from the training rows, K = 0 and 2 by default; the held-out
rows are the last checkpoint of each 2.718e9 run either way):

- the nested pipeline (``mixlaw_jax.nested_pipeline``) at N* = 2.718e9 and D* = the held-out runs' last D, with each
  mixture-only law asked for, run-level bootstrap intervals of its predictions (does the interval hold the observed
  loss?), and its stage summaries and exclusions;
- the joint law of Shukor et al. 2025 fitted directly (``mixlaw_jax.fit(train, "joint")``, default search and bounds).

Writes benchmarks/results/nested_slimpajama.json: MRE (%) per target and its mean, for each method, with timings.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import mixlaw_jax as mj
from benchmarks.common import RESULTS, SLIMPAJAMA, commit, require
from mixlaw_jax import metrics
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.results import provenance

TRAIN = "model_size <= 1.235e9"
HELD_OUT = "model_size > 1.3e9"


def last_checkpoints(runs: mj.RunTable) -> mj.RunTable:
    """Each run's row with the largest D."""
    last = np.zeros(runs.n_rows, dtype=bool)
    for run in range(runs.n_runs):
        rows = np.flatnonzero(runs.run_id == run)
        last[rows[np.argmax(runs.d[rows])]] = True
    return runs.subset(last)


def mre_per_target(observed: mj.RunTable, predicted) -> dict[str, float]:
    return {t: metrics.mre(observed.losses[:, j], predicted[t].to_numpy()) for j, t in enumerate(observed.targets)}


def nested(train, held, law: str, replicates: int, search) -> dict:
    (n_star,), (d_star,) = np.unique(held.n), np.unique(held.d)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", mj.MixlawWarning)
        result = mj.nested_pipeline(train, N=n_star, D=d_star, mixing_law=law, n_replicates=replicates, search=search)
    seconds = time.perf_counter() - start
    predicted = result.predict(held)
    out = {
        "method": f"nested {law}",
        "seconds": seconds,
        "mre": mre_per_target(held, predicted),
        "stages": result.summary().reset_index().to_dict(orient="records"),
        "excluded": result.excluded.groupby(["stage", "reason"]).size().reset_index(name="count").to_dict("records")
        if len(result.excluded)
        else [],
        "warnings": [str(w.message) for w in caught],
        "h_star": dict(zip(train.weight_columns, result.optimal_mixture().h[0, -1].tolist())),
    }
    if replicates:
        interval = result.predict_interval(held)
        inside = {
            t: float(np.mean((interval[f"{t}_lo"] <= held.losses[:, j]) & (held.losses[:, j] <= interval[f"{t}_hi"])))
            for j, t in enumerate(held.targets)
        }
        out |= {
            "replicates": replicates,
            "fraction_of_held_out_runs_inside_95_interval": inside,
            "median_interval_width": {
                t: float(np.median(interval[f"{t}_hi"] - interval[f"{t}_lo"])) for t in held.targets
            },
            "replicates_failed": result.bootstrap.n_failed,
        }
    return out


def joint(train, held) -> dict:
    start = time.perf_counter()
    fit = mj.fit(train, "joint")
    seconds = time.perf_counter() - start
    return {"method": "joint (direct)", "seconds": seconds, "mre": mre_per_target(held, fit.predict(held))}


def mean(values: dict) -> float:
    return float(np.mean(list(values.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drop-first", type=int, action="append")
    parser.add_argument("--mixing-law", action="append")
    parser.add_argument("--replicates", type=int, default=100)
    args = parser.parse_args()
    runs = mj.load_runs(require(SLIMPAJAMA), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss")
    held = last_checkpoints(runs.query(HELD_OUT))
    search = mj.NestedSearch()
    protocols = []
    for drop in args.drop_first or [0, 2]:
        train = runs.query(TRAIN)
        if drop:
            train = train.drop_first_checkpoints(drop)
        methods = [nested(train, held, law, args.replicates, search) for law in args.mixing_law or ["mixing_exp"]]
        methods.append(joint(train, held))
        for m in methods:
            m["mean_mre"] = mean(m["mre"])
            print(
                f"drop {drop}  {m['method']:28s} mean MRE {m['mean_mre']:.3f}%  ({m['seconds']:.0f} s)  "
                + "  ".join(f"{t.removesuffix('_loss')} {v:.2f}" for t, v in m["mre"].items()),
                flush=True,
            )
        protocols.append({"drop_first": drop, "train_rows": int(train.n_rows), "methods": methods})
    out = {
        "train": TRAIN,
        "held_out": f"{HELD_OUT}, last checkpoint of each run ({held.n_rows} runs, D = {np.unique(held.d).tolist()})",
        "nested_search": {f: [s.n_starts, [list(x) for x in s.stages]] for f, s in vars(search).items()},
        "protocols": protocols,
        "provenance": provenance(0, runs.hash()) | {"commit": commit()},
    }
    atomic_write_json(RESULTS / "nested_slimpajama.json", out)
    print(f"wrote {RESULTS / 'nested_slimpajama.json'}")


if __name__ == "__main__":
    main()
