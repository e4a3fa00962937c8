"""Run-level bootstrap of the additive and joint laws on SlimPajama: all 8 targets x replicates in one call per law.

Fits the training rows (model_size <= 1.3e9, default bounds), resamples whole runs, and reports per target the
95% interval of the val MRE (the 2.718e9 model) and, for the average of the 7 domain losses at N = 7e9,
D = 1.5e11 (Shukor et al. Table 15), the 95% interval of h*_avg per domain.

    python -m benchmarks.slimpajama_bootstrap [--law additive --law joint] [--replicates 100]

Writes benchmarks/results/slimpajama_bootstrap_<law>.json.
"""

from __future__ import annotations

import argparse
import time

import mixlaw_jax as mj
from benchmarks.common import RESULTS, commit
from benchmarks.slimpajama_fit import DOMAINS, PAPER, load
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.results import provenance

#: Shukor et al. 2025, Table 15: h*_avg (%) at N = 7e9, D = 1.5e11, additive law.
PAPER_H_AVG = dict(zip(DOMAINS, [9.6, 9.5, 25.1, 8.0, 12.1, 17.9, 17.0]))
N_STAR, D_STAR = 7e9, 1.5e11
SCHEDULE = ((4, 30, 1.0), (2, 100, 1.0))


def run(law: str, n_replicates: int, seed: int = 0) -> dict:
    runs = load()
    train, val = runs.query("model_size <= 1.3e9"), runs.query("model_size > 1.3e9")
    start = time.perf_counter()
    full = mj.fit(train, law, progress=True)
    fit_seconds = time.perf_counter() - start
    boot = mj.bootstrap(
        train, law, n_replicates=n_replicates, full_fit=full, search=mj.Search(256, SCHEDULE, seed=seed), progress=True
    )
    boot_seconds = time.perf_counter() - start - fit_seconds
    mre = boot.mre_interval(val)
    mixture = boot.mixture_interval(N_STAR, D_STAR, targets=[f"{d}_loss" for d in DOMAINS])
    targets = []
    for t in boot.targets:
        domain = t.removesuffix("_loss")
        targets.append(
            {
                "target": t,
                "val_mre": mre.loc[t, "mre"],
                "val_mre_lo": mre.loc[t, "lo"],
                "val_mre_hi": mre.loc[t, "hi"],
                "paper_val_mre": PAPER[law].get(domain, (None, None))[1],
                "fraction_unconverged": boot.fraction_unconverged[t],
            }
        )
    h = [
        {
            "domain": d.removeprefix("weight_"),
            "h_star": 100 * row.h_star,
            "lo": 100 * row.lo,
            "hi": 100 * row.hi,
            "paper": PAPER_H_AVG.get(d.removeprefix("weight_")),
        }
        for d, row in mixture.iterrows()
    ]
    return {
        "law": law,
        "replicates": n_replicates,
        "resample": "runs",
        "level": boot.level,
        "replicate_schedule": [list(s) for s in SCHEDULE],
        "fit_seconds": fit_seconds,
        "bootstrap_seconds": boot_seconds,
        "targets": targets,
        "h_star_avg_percent": h,
        "loss_at_h_star": mixture.attrs["loss"],
        "provenance": provenance(seed, train.hash()) | {"commit": commit()},
    }


def report(out: dict) -> str:
    lines = [
        f"{out['law']}: {out['replicates']} run-level replicates, bootstrap {out['bootstrap_seconds']:.0f} s "
        f"(full fit {out['fit_seconds']:.0f} s)",
        f"{'target':22s} {'val MRE':>8s} {'95% interval':>16s} {'paper':>6s} {'unconverged':>11s}",
    ]
    for r in out["targets"]:
        paper = f"{r['paper_val_mre']:.2f}" if r["paper_val_mre"] is not None else "-"
        lines.append(
            f"{r['target']:22s} {r['val_mre']:8.2f} ({r['val_mre_lo']:6.2f}, {r['val_mre_hi']:6.2f}) "
            f"{paper:>6s} {r['fraction_unconverged']:11.2f}"
        )
    lines.append(f"h*_avg (%) at N = {N_STAR:g}, D = {D_STAR:g}:")
    for r in out["h_star_avg_percent"]:
        lines.append(
            f"  {r['domain']:14s} {r['h_star']:5.1f}  ({r['lo']:5.1f}, {r['hi']:5.1f})  width "
            f"{r['hi'] - r['lo']:5.1f}  paper {r['paper']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--law", action="append", choices=["additive", "joint"])
    parser.add_argument("--replicates", type=int, default=100)
    args = parser.parse_args()
    for law in args.law or ["additive", "joint"]:
        out = run(law, args.replicates)
        print(report(out), flush=True)
        atomic_write_json(RESULTS / f"slimpajama_bootstrap_{law}.json", out)


if __name__ == "__main__":
    main()
