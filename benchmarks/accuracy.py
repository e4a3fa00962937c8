"""Accuracy (issue 5, item 4a): the SlimPajama Table 2 reproduction — per-target train / val MRE of the additive and
joint laws, ours beside Shukor et al.'s, under two row protocols:

- ``all rows, unbounded``: every training row (model_size <= 1.3e9), no parameter bounds — the objectives that
  the engine's quality bar (issue 2) is stated for;
- ``drop first two, default bounds``: each run's first two checkpoints left out (the protocol that reproduces the
  paper's train column, benchmarks/NOTES.md), the engine's default parameter bounds.

MRE = mean_j |L_hat_j - L_j| / L_j in %, train on the fitted rows, val on the 2.7e9-parameter runs (4 mixtures x
11 checkpoints: noisy, reported, not tuned to).
"""

from __future__ import annotations

from pathlib import Path

import mixlaw_jax as mj
from benchmarks.slimpajama_fit import DOMAINS
from benchmarks.slimpajama_fit import run as fit_table

NAME = "accuracy"
PROTOCOLS = {
    "all rows, unbounded": {"bounds": None, "drop_first": 0},
    "drop first two, default bounds": {"bounds": "default", "drop_first": 2},
}
LAWS = ("additive", "joint")
#: --quick: the additive law on two targets, a few hundred starts, two short stages (checks the code path only).
QUICK = {"targets": ["arxiv_loss", "github_loss"], "search": mj.Search(256, ((8, 20, 1.0), (2, 40, 1.0)))}


def run(quick: bool) -> dict:
    out = {"quick": quick, "fits": []}
    for law in LAWS[:1] if quick else LAWS:
        for protocol, options in PROTOCOLS.items():
            fitted = fit_table(
                law, options["bounds"], options["drop_first"], progress=not quick, **(QUICK if quick else {})
            )
            out["fits"].append({"protocol": protocol, **fitted})
    return out


def _mean(rows, key):
    values = [r[key] for r in rows if r[key] is not None]
    return sum(values) / len(values) if values else None


def markdown(result: dict, figures: Path) -> str:
    lines = [
        "## Accuracy: SlimPajama, Shukor et al. Table 2",
        "",
        "Train / val MRE (%) per domain target; *paper* is Shukor et al. 2025, Table 2. Objective: the mean "
        "Huber loss (δ = 1e-3) ×1e-5, and its ratio to the best known (issue 2).",
        "",
    ]
    for fit in result["fits"]:
        domain_rows = [r for r in fit["targets"] if r["target"].removesuffix("_loss") in DOMAINS]
        lines += [
            f"### {fit['law']}, {fit['protocol']} ({fit['seconds']:.0f} s, all targets in one call)",
            "",
            "| target | train | paper train | val | paper val | objective ×1e-5 | / best known |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in domain_rows:
            ratio = f"{r['ratio']:.5f}" if fit["protocol"].startswith("all rows") and r["ratio"] else "—"
            lines.append(
                f"| {r['target'].removesuffix('_loss')} | {r['train_mre']:.2f} | {r['paper_train_mre']:.2f} "
                f"| {r['val_mre']:.2f} | {r['paper_val_mre']:.2f} | {r['objective'] / 1e-5:.5f} | {ratio} |"
            )
        lines += [
            f"| **mean** | **{_mean(domain_rows, 'train_mre'):.2f}** | {_mean(domain_rows, 'paper_train_mre'):.2f} "
            f"| **{_mean(domain_rows, 'val_mre'):.2f}** | {_mean(domain_rows, 'paper_val_mre'):.2f} | | |",
            "",
        ]
    return "\n".join(lines)
