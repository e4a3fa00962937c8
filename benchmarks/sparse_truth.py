"""Optimizer quality on sparse campaigns (issue 27): synthetic joint-law tables with few runs per parameter, fitted
with the default settings, with and without confirmation (``Search.confirm``), in the same invocation.

Each seed draws its own campaign: k in {5, 7, 10} domains, 12-30 mixtures (at least enough runs for the law's
4k + 5 parameters), each trained at 2 or 3 of 4 model sizes (6e7, 1.5e8, 4e8, 1e9) with 5 checkpoints, relative
noise log-uniform in [1e-3, 5e-3]; the truth is drawn as in ``synthetic_truth.py``. A fit *reaches the truth* when
its objective is no higher than the objective at the true parameters. Reported per seed and in total: reached,
confirmed, the extra rounds taken, and the time of the fit with the default search (``after``) and without its
extra rounds (``before``: ``Confirmation(rounds=0)``, which only reports). Where ``after`` took no extra round the
two are the same computation, so ``before`` is only run where it did (its record is otherwise ``after``'s); the
cost of confirming where nothing needed more search is measured by ``speed.py`` and ``slimpajama_fit.py``.

    python -m benchmarks.sparse_truth [--seeds 100] [--first 0]

Writes benchmarks/results/sparse_truth.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings

import numpy as np

import mixlaw_jax as mj
from benchmarks.common import RESULTS, objective_at, synthetic_table
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.options import Confirmation
from mixlaw_jax.results import provenance

#: The model sizes a sparse campaign picks from.
SIZES = (6e7, 1.5e8, 4e8, 1e9)
#: The search without extra rounds (the engine before issue 27) and the default one.
SEARCHES = {"before": mj.Search(confirm=Confirmation(rounds=0)), "after": mj.Search()}


def campaign(seed: int) -> dict:
    """The seed's campaign: k, mixtures, sizes per mixture and noise (see the module docstring)."""
    rng = np.random.default_rng(10_000 + seed)
    k, per = int(rng.choice([5, 7, 10])), int(rng.choice([2, 3]))
    least = max(12, -(-(4 * k + 6) // per))  # runs > the joint law's 4k + 5 parameters
    noise = float(np.exp(rng.uniform(np.log(1e-3), np.log(5e-3))))
    return {"k": k, "n_mixtures": int(rng.integers(least, 31)), "sizes_per_mixture": per, "noise": noise}


def one_seed(seed: int) -> dict:
    setting = campaign(seed)
    runs, truth = synthetic_table(seed, sizes=SIZES, **setting)
    at_truth = objective_at("joint", truth, runs)
    row = {"seed": seed, **setting, "rows": runs.n_rows, "at_truth": at_truth}
    for name, search in reversed(SEARCHES.items()):
        if name == "before" and row["after"]["extra_rounds"] == 0:
            row["before"] = row["after"]
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mj.MixlawWarning)
            result = mj.fit(runs, "joint", search=search)
        d = result.diagnostics["loss"]
        row[name] = {
            "objective": float(result.objective[0]),
            "above_truth": float(result.objective[0] / at_truth - 1.0),
            "reached": bool(result.objective[0] <= at_truth),
            "n_in_basin": d.n_in_basin,
            "confirmed": bool(d.confirmed),
            "extra_rounds": d.extra_rounds,
            "status": d.status.label,
            "seconds": time.perf_counter() - start,
        }
    return row


def summary(rows: list[dict]) -> dict:
    out = {}
    for name in SEARCHES:
        parts = [r[name] for r in rows]
        seconds = np.array([p["seconds"] for p in parts])
        out[name] = {
            "reached": sum(p["reached"] for p in parts),
            "confirmed": sum(p["confirmed"] for p in parts),
            "median_seconds": float(np.median(seconds)),
            "mean_seconds": float(np.mean(seconds)),
            "worst_above_truth": max(p["above_truth"] for p in parts),
        }
    searched = [r for r in rows if r["after"]["extra_rounds"] > 0]
    out["confirmed_without_extra_rounds"] = len(rows) - len(searched)
    out["time_ratio_where_searched"] = (
        float(np.median([r["after"]["seconds"] / r["before"]["seconds"] for r in searched])) if searched else None
    )
    out["lower_after"] = int(sum(r["after"]["objective"] < r["before"]["objective"] for r in rows))
    out["higher_after"] = int(sum(r["after"]["objective"] > r["before"]["objective"] for r in rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for seed in range(args.first, args.first + args.seeds):
        rows.append(one_seed(seed))
        r = rows[-1]
        print(
            f"seed {seed} k={r['k']} mixtures={r['n_mixtures']}x{r['sizes_per_mixture']} noise={r['noise']:.4f}: "
            + "  ".join(
                f"{n} {r[n]['above_truth']:+.4f} basin {r[n]['n_in_basin']} "
                f"{'confirmed' if r[n]['confirmed'] else 'unconfirmed'} rounds {r[n]['extra_rounds']} "
                f"{r[n]['seconds']:.1f}s"
                for n in SEARCHES
            ),
            flush=True,
        )
    out = {
        "setting": {
            "k": [5, 7, 10],
            "mixtures": [12, 30],
            "sizes": list(SIZES),
            "sizes_per_mixture": [2, 3],
            "checkpoints": 5,
            "noise": [1e-3, 5e-3],
        },
        "searches": {n: dataclasses.asdict(s.confirm) for n, s in SEARCHES.items()},
        "seeds": len(rows),
        "summary": summary(rows),
        "rows": rows,
        "provenance": provenance(0),
    }
    print(out["summary"])
    atomic_write_json(RESULTS / "sparse_truth.json", out)


if __name__ == "__main__":
    main()
