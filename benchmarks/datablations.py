"""Data-constrained laws on Muennighoff et al.'s runs (issue 23): SLDBench's split, test R².

The table is ``../shared/data/datablations/sldbench_data_constrained.csv``: the 182 runs of Muennighoff et al. 2023,
"Scaling Data-Constrained Language Models" (arXiv 2305.16264), as copied by SLDBench (Lin et al., arXiv
2507.21184). Two columns are swapped in that copy (its README): the column named ``unique_tokens`` holds D (tokens
seen) and ``tokens`` holds U (unique tokens); they are renamed D and U here. SLDBench's split: the 21 test rows are
those with the largest D or N (the column ``unique_tokens`` >= its second-largest value, or ``params`` >= its
second-largest value), the 161 others train. The metric is SLDBench's: R² = 1 - MSE / Var(test losses), pooled.

Each law is fitted with ``mj.fit`` (default search) on the training rows, with the default objective (Huber,
delta 1e-3, on the raw loss) and with the same objective on log L, and predicts the test rows. Reported beside
them: Muennighoff et al.'s law at the authors' published constants (no refit; huggingface/datablations README,
"Parametric Fit"), their R*_D = 15.4 and R*_N = 5.3, and SLDBench's published test R² (0.911 for that law, about
0.92 for the best law its agents found).

    python -m benchmarks.datablations

Writes benchmarks/results/datablations.json.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

import mixlaw_jax as mj
from benchmarks.common import RESULTS, SHARED_DATA, provenance, require
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.laws import Inputs, get_law

CSV = SHARED_DATA / "datablations" / "sldbench_data_constrained.csv"
LAWS = ("chinchilla", "muennighoff", "chinchilla_overfit")
LOSS_SPACES = ("raw", "log")
#: The authors' constants (log A, log B, log E, alpha = beta, R*_D, R*_N): huggingface/datablations README.
PUBLISHED = {"a": 6.255414, "b": 7.3049974, "e": 0.6254804, "alpha": 0.3526596, "R_D": 15.387756, "R_N": 5.309743}
SLDBENCH_R2 = {"muennighoff (published constants)": 0.911, "best agent law": 0.92}


def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, test rows), columns renamed to D (tokens seen) and U (unique tokens)."""
    frame = pd.read_csv(require(CSV)).rename(columns={"unique_tokens": "D", "tokens": "U"})
    if not (frame["U"] <= frame["D"]).all():
        raise ValueError("U > D in some row: the column swap the README describes is not what this file holds")
    second = {c: np.sort(frame[c].unique())[-2] for c in ("D", "params")}
    test = (frame["D"] >= second["D"]) | (frame["params"] >= second["params"])
    if (int(test.sum()), int((~test).sum())) != (21, 161):
        raise ValueError(f"SLDBench's split gives 21 test and 161 training rows, not {test.sum()} and {(~test).sum()}")
    return frame[~test], frame[test]


def r2(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - np.mean((y - predicted) ** 2) / np.var(y))


def published(frame: pd.DataFrame) -> np.ndarray:
    """Muennighoff et al.'s law at the authors' constants."""
    p = PUBLISHED
    params = {
        "E": np.exp(p["e"]),
        "A": p["a"],
        "alpha": p["alpha"],
        "B": p["b"],
        "beta": p["alpha"],
        "R_D": np.log(p["R_D"]),
        "R_N": np.log(p["R_N"]),
    }
    x = Inputs.from_arrays(frame["params"], frame["D"], np.zeros((len(frame), 0)), frame[["U"]].to_numpy())
    return np.asarray(get_law("muennighoff").predict(params, x))


def one(runs: mj.RunTable, train: pd.DataFrame, test: pd.DataFrame, law: str, loss_space: str) -> dict:
    start = time.perf_counter()
    fit = mj.fit(runs, law, objective=mj.Objective(loss_space=loss_space))
    seconds = time.perf_counter() - start
    d = fit.diagnostics["loss"]
    return {
        "law": law,
        "loss_space": loss_space,
        "r2_test": r2(test["loss"].to_numpy(), fit.predict(test)["loss"].to_numpy()),
        "r2_train": r2(train["loss"].to_numpy(), fit.predict(train)["loss"].to_numpy()),
        "objective": float(fit.objective[0]),
        "params": fit.params["loss"],
        "n_params": get_law(law).n_params(0),
        "confirmed": bool(d.confirmed),
        "starts_in_best_basin": f"{d.n_in_basin}/{d.n_final}",
        "flags": list(d.flags),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    train, test = split()
    runs = mj.load_runs(train, weights=None, N="params", D="D", targets="loss", unique_tokens="U", warn=False)
    rows = []
    for loss_space in LOSS_SPACES:
        for law in LAWS:
            rows.append(one(runs, train, test, law, loss_space))
            r = rows[-1]
            print(
                f"{law:20s} {loss_space:3s}  test R2 {r['r2_test']:.4f}  train R2 {r['r2_train']:.4f}  "
                f"{r['seconds']:.1f}s  "
                + (f"R*_D {r['params']['R_D']:.4g} R*_N {r['params']['R_N']:.4g}" if law == "muennighoff" else ""),
                flush=True,
            )
    best = max(rows, key=lambda r: r["r2_test"])
    out = {
        "data": {"file": str(CSV.name), "train_rows": len(train), "test_rows": len(test)},
        "metric": "R2 = 1 - MSE / Var(test losses), pooled over the 21 SLDBench test rows",
        "published": {
            "constants": PUBLISHED,
            "r2_test": r2(test["loss"].to_numpy(), published(test)),
            "r2_train": r2(train["loss"].to_numpy(), published(train)),
            "R_D_paper": 15.4,
            "R_N_paper": 5.3,
        },
        "sldbench_r2": SLDBENCH_R2,
        "fits": rows,
        "best": {"law": best["law"], "loss_space": best["loss_space"], "r2_test": best["r2_test"]},
        "provenance": provenance(),
    }
    print(f"published constants: test R2 {out['published']['r2_test']:.4f}; best: {out['best']}")
    atomic_write_json(RESULTS / "datablations.json", out)


if __name__ == "__main__":
    main()
