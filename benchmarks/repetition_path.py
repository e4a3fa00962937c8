"""h*(D) on SlimPajama when the domains' data run out (issue 23): the optimal mixture at N = 7e9 for D = 1e10 .. 1e13
tokens, without limits, with each domain's SlimPajama-627B pool priced by the repetition-aware law, and with those
pools capped at MAX_EPOCHS epochs.

Pools U_i: each domain's share of SlimPajama-627B's 627B tokens, from the "Data source proportions" table of the
dataset card (huggingface.co/datasets/cerebras/SlimPajama-627B; also quoted in
huggingface.co/datasets/DKYoon/SlimPajama-6B): CommonCrawl 52.2%, C4 26.7%, GitHub 5.2%, Books 4.2%, ArXiv 4.6%,
Wikipedia 3.8%, StackExchange 3.3%.

The law: the joint law (Shukor et al. 2025, eq. 2.5) fitted to Shukor et al.'s SlimPajama runs (every size, each
run's first two checkpoints dropped: the protocol that reproduces their Table 2) for the seven domain losses, made
repetition-aware with ``FitResult.with_repetition``. SlimPajama's runs never repeat a domain, so the four repetition
parameters cannot be fitted from them; they come from the fits to Muennighoff et al.'s runs in
benchmarks/results/datablations.json: ρ = 1/R*_D of ``muennighoff`` (raw loss) and C_o, ν, κ of
``chinchilla_overfit`` (raw loss; its single-domain penalty C N^ν (e - 1)₊² e^(κ-2) / U applied per domain).
Objective: the mean of the seven domain losses; weights over the whole simplex.

    python -m benchmarks --only repetition_path          # a few minutes (the 7-target joint fit)
    python -m benchmarks --only repetition_path --quick  # 2 targets, a small search, 3 budgets

Writes benchmarks/results/repetition_path.json and the figure results/figures/repetition_path.png.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mixlaw_jax as mj
from benchmarks.common import RESULTS, SLIMPAJAMA, require
from mixlaw_jax._io import atomic_write_bytes
from mixlaw_jax.mixture import MixtureResult

NAME = "repetition_path"
#: SlimPajama-627B's token shares per domain (dataset card, module docstring), times 627e9 tokens.
SHARES = {
    "weight_arxiv": 0.046,
    "weight_book": 0.042,
    "weight_c4": 0.267,
    "weight_github": 0.052,
    "weight_commoncrawl": 0.522,
    "weight_stackexchange": 0.033,
    "weight_wikipedia": 0.038,
}
TOTAL_TOKENS = 627e9
POOLS = {domain: share * TOTAL_TOKENS for domain, share in SHARES.items()}
TARGETS = (
    "arxiv_loss",
    "book_loss",
    "c4_loss",
    "github_loss",
    "commoncrawl_loss",
    "stackexchange_loss",
    "wikipedia_loss",
)
N = 7e9
TOKENS = np.geomspace(1e10, 1e13, 19)
#: the cap of the third path: Muennighoff et al. find up to ~4 epochs nearly as good as new data.
MAX_EPOCHS = 4.0
SEARCH = mj.Search(4096, ((64, 30, 0.25), (16, 100), (4, 300)), confirm=mj.Confirmation(rounds=1))
QUICK_SEARCH = mj.Search(64, ((16, 20), (4, 40)))
DATABLATIONS = RESULTS / "datablations.json"


def repetition_parameters() -> dict:
    """ρ, C_o, ν, κ from the fits to Muennighoff et al.'s runs (benchmarks/results/datablations.json, raw loss)."""
    fits = {(f["law"], f["loss_space"]): f["params"] for f in json.loads(require(DATABLATIONS).read_text())["fits"]}
    overfit = fits[("chinchilla_overfit", "raw")]
    return {
        "rho": 1.0 / fits[("muennighoff", "raw")]["R_D"],
        "C_o": overfit["C"],
        "nu": overfit["nu"],
        "kappa": overfit["kappa"],
    }


def fit_slimpajama(quick: bool) -> mj.FitResult:
    """The joint law on SlimPajama (first two checkpoints of each run dropped), the seven domain losses."""
    runs = mj.load_runs(
        pd.read_csv(require(SLIMPAJAMA)), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss"
    ).drop_first_checkpoints(2)
    targets = list(TARGETS[:2] if quick else TARGETS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mj.MixlawWarning)
        return mj.fit(runs, "joint", targets=targets, search=QUICK_SEARCH if quick else SEARCH)


def paths(fit: mj.FitResult, tokens: np.ndarray) -> dict:
    """h*(D) at N with the pools priced (and without limits: ``unlimited_h``), and with the pools capped at
    MAX_EPOCHS epochs over the budgets those caps can supply; the error for the first budget they cannot."""
    options = dict(N=N, weight_bounds="simplex", n_starts=32)
    priced = mj.optimal_mixture(fit, D=tokens, token_budget=POOLS, **options)
    limits = mj.DataLimits(POOLS, max_epochs=MAX_EPOCHS)
    most = MAX_EPOCHS * sum(POOLS.values())  # Σ_i e_max U_i: every other domain is limited too
    feasible = tokens[tokens <= most]
    capped = mj.optimal_mixture(fit, D=feasible, token_budget=limits, **options)
    refused = None
    if (tokens > most).any():
        try:
            mj.optimal_mixture(fit, D=tokens[tokens > most][0], token_budget=limits, **options)
        except mj.MixlawError as err:
            refused = str(err)
    return {"priced": priced.to_dict(), "capped": capped.to_dict(), "most_tokens_capped": most, "refused": refused}


def summary(result: MixtureResult) -> list[dict]:
    """Per budget: D, h* and h* without limits of the weighted objective, epochs, and what the limits cost."""
    rows = []
    for b in range(result.h.shape[0]):
        row = {"D": float(result.d[b, -1]), "h": result.h[b, -1].round(4).tolist()}
        row["epochs"] = result.epochs[b, -1].round(3).tolist()
        row["objective"] = float(result.objective[b, -1])
        if result.unlimited_h is not None:
            row["h_unlimited"] = result.unlimited_h[b, -1].round(4).tolist()
            row["limit_cost"] = float(result.limit_cost[b, -1])
        rows.append(row)
    return rows


def run(quick: bool) -> dict:
    start = time.perf_counter()
    base = fit_slimpajama(quick)
    fit_seconds = time.perf_counter() - start
    repetition = repetition_parameters()
    fit = base.with_repetition(**repetition)
    tokens = TOKENS[[0, 9, -1]] if quick else TOKENS
    out = paths(fit, tokens)
    return {
        "law": fit.law,
        "targets": list(fit.targets),
        "domains": list(fit.weight_columns),
        "pools": POOLS,
        "pool_source": "cerebras/SlimPajama-627B dataset card, data source proportions x 627e9 tokens",
        "repetition": repetition,
        "repetition_source": "benchmarks/results/datablations.json: 1/R_D of muennighoff, C, nu, kappa of "
        "chinchilla_overfit (raw loss)",
        "N": N,
        "max_epochs": MAX_EPOCHS,
        "fit_objectives": dict(zip(base.targets, base.objective.tolist())),
        "fit_seconds": fit_seconds,
        "path_priced": summary(MixtureResult.from_dict(out["priced"])),
        "path_capped": summary(MixtureResult.from_dict(out["capped"])),
        **out,
    }


def plot(result: dict, path: Path) -> None:
    """Three stacked h*(D) panels (priced pools, no limits, capped pools) and the epochs of each domain at h*."""
    from matplotlib.figure import Figure

    from mixlaw_jax.figures import domain_labels

    priced, capped = MixtureResult.from_dict(result["priced"]), MixtureResult.from_dict(result["capped"])
    labels = domain_labels(priced.domains)
    fig = Figure(figsize=(13.0, 7.4), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    panels = (
        ("without limits (U = inf)", priced.d[:, -1], priced.unlimited_h[:, -1]),
        ("SlimPajama pools, repeats priced by the law", priced.d[:, -1], priced.h[:, -1]),
        (f"pools priced and capped at {result['max_epochs']:g} epochs", capped.d[:, -1], capped.h[:, -1]),
    )
    for ax, (title, d, h) in zip(axes, panels):
        ax.stackplot(d, h.T, labels=labels, alpha=0.85)
        ax.set(xscale="log", xlim=(priced.d.min(), priced.d.max()), ylim=(0, 1), title=title, ylabel="h*")
        ax.set_xlabel("training tokens D")
    axes[2].axvline(result["most_tokens_capped"], color="k", ls="--", lw=1)
    axes[2].text(result["most_tokens_capped"], 0.5, " no feasible mixture beyond", fontsize=8)
    epochs = priced.epochs[:, -1]
    for i, label in enumerate(labels):
        axes[3].plot(priced.d[:, -1], epochs[:, i], label=label)
    axes[3].set(
        xscale="log", yscale="log", title="epochs of each domain at h* (priced pools)", xlabel="training tokens D"
    )
    axes[3].axhline(1.0, color="k", lw=0.5)
    axes[3].set_ylim(bottom=1e-2)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8, reverse=True)
    rep = result["repetition"]
    fig.suptitle(
        f"SlimPajama joint law, N = {result['N']:.3g}, mean of {len(result['targets'])} domain losses; repetition "
        f"parameters from Muennighoff et al.'s runs (not SlimPajama): R*_D = {1 / rep['rho']:.3g}, "
        f"C_o = {rep['C_o']:.3g}, nu = {rep['nu']:.3g}, kappa = {rep['kappa']:.3g}",
        fontsize=9,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def markdown(result: dict, figures: Path) -> str:
    from mixlaw_jax.figures import domain_labels

    figures.mkdir(parents=True, exist_ok=True)
    path = figures / "repetition_path.png"
    plot(result, path)
    lines = [
        "## h*(D) on SlimPajama with finite pools (issue 23)",
        "",
        f"`{result['law']}` fitted to SlimPajama ({len(result['targets'])} domain losses, mean as the objective) at "
        f"N = {result['N']:.3g}; pools = each domain's SlimPajama-627B tokens ({result['pool_source']}). "
        f"Repetition parameters from {result['repetition_source']} — SlimPajama's runs never repeat, so they are not "
        "fitted here.",
        "",
        "| D | h* without limits | h* with pools priced | epochs at h* | limits cost (loss) |",
        "|---|---|---|---|---|",
    ]
    for row in result["path_priced"]:
        lines.append(
            f"| {row['D']:.3g} | {', '.join(f'{v:.3f}' for v in row['h_unlimited'])} | "
            f"{', '.join(f'{v:.3f}' for v in row['h'])} | {', '.join(f'{v:.2g}' for v in row['epochs'])} | "
            f"{row['limit_cost']:.4f} |"
        )
    lines += [
        "",
        f"Domains in the order {', '.join(domain_labels(result['domains']))}. With at most "
        f"{result['max_epochs']:g} epochs the pools supply at most {result['most_tokens_capped']:.4g} tokens; beyond "
        f"that D the call is refused: `{result['refused']}`",
        "",
        f"![h*(D) with and without limits]({path})",
    ]
    return "\n".join(lines) + "\n"
