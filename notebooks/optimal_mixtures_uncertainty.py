# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Optimal mixtures with uncertainty
#
# A fitted law predicts which mixture h* is best for a larger model; how sure is that? We bootstrap the fit on
# the bundled (synthetic) table: resample whole training runs with replacement, refit every replicate (all
# replicates x targets x starts in one batched call), and report percentile intervals for the parameters, the
# held-out predictions and h* itself, with and without constraints on the mixture.

# %% tags=["parameters"]
import os

# MIXLAW_NOTEBOOK_FAST=1 (the test suite): additive law, 3 replicates, tiny settings; the intervals are then rough.
FAST = os.environ.get("MIXLAW_NOTEBOOK_FAST") == "1"
LAW = "additive" if FAST else "joint"
# the fit's and each replicate's search (mj.Search fields)
FIT_SEARCH = dict(n_starts=64, schedule=((16, 20), (4, 40))) if FAST else dict(n_starts=4096)
REPLICATES = 3 if FAST else 200
REPLICATE_SEARCH = dict(n_starts=8, schedule=((2, 20),)) if FAST else dict(n_starts=256, schedule=((8, 40), (2, 200)))
COMPUTE_OPTIMAL = dict(n_grid=7, refine_rounds=1, n_starts=8) if FAST else {}
N, D = 7e9, 1.5e11

# %%
# %matplotlib inline
import numpy as np
import pandas as pd

import mixlaw_jax as mj
from mixlaw_jax import figures
from mixlaw_jax.datasets import load_example

runs = load_example()
train, held_out = runs.query("model_size <= 1.3e9"), runs.query("model_size > 1.3e9")
fit = mj.fit(train, LAW, search=mj.Search(**FIT_SEARCH))
boot = mj.bootstrap(train, LAW, full_fit=fit, n_replicates=REPLICATES, search=mj.Search(**REPLICATE_SEARCH))
print(
    f"{LAW} law, {boot.n_replicates} replicates; replicates whose best start did not converge: "
    f"{boot.fraction_unconverged}"
)

# %% [markdown]
# ## Parameters
#
# Point estimate (the fit to all training runs), bootstrap standard error and 95% percentile interval.

# %%
target = "arxiv_loss"
point, se, interval = fit.params[target], boot.standard_errors[target], boot.intervals()[target]
rows = []
for name, value in point.items():
    if isinstance(value, list):
        for i, domain in enumerate(figures.domain_labels(fit.weight_columns)):
            rows.append((f"{name}[{domain}]", value[i], se[name][i], *interval[name][i]))
    else:
        rows.append((name, value, se[name], *interval[name]))
pd.DataFrame(rows, columns=["parameter", "value", "se", "lo", "hi"]).set_index("parameter")

# %% [markdown]
# ## Held-out predictions
#
# Predicted loss of each held-out row with its interval, and the held-out MRE with the interval of the
# replicates' MREs.

# %%
predicted = boot.predict_interval(held_out)
assert (predicted[f"{target}_lo"] <= predicted[f"{target}_hi"]).all()
observed = held_out.losses[:, held_out.targets.index(target)]
inside = ((predicted[f"{target}_lo"] <= observed) & (observed <= predicted[f"{target}_hi"])).mean()
print(
    f"{target}: {100 * inside:.0f}% of held-out losses lie inside their interval "
    f"(the interval covers the law's uncertainty, not the runs' noise)"
)
boot.mre_interval(held_out)

# %% [markdown]
# ## The optimal mixture and its interval
#
# h* minimises the mean predicted loss over the three targets at N = 7e9, D = 1.5e11, within the range of
# weights each domain has in the fitted runs. A narrow interval means the data pin h* down; a wide one that
# the replicates disagree.

# %%
h = boot.mixture_interval(N, D)
assert np.isclose(h["h_star"].sum(), 1.0) and (h["lo"] <= h["hi"]).all()
print("predicted mean loss at h*:", h.attrs["loss"])
h.round(4)

# %% [markdown]
# ### With constraints
#
# Suppose only 20B unique Wikipedia tokens exist (so h_wikipedia <= 2e10 / D, more would repeat data, which
# the law does not model) and GitHub is fixed at 5%.

# %%
constrained = boot.mixture_interval(N, D, token_budget={"weight_wikipedia": 2e10}, fixed={"weight_github": 0.05})
assert constrained.loc["weight_wikipedia", "h_star"] <= 2e10 / D + 1e-9
assert np.isclose(constrained.loc["weight_github", "h_star"], 0.05)
print("predicted mean loss at h*:", constrained.attrs["loss"])
figures.mixture_intervals(
    {"data range": h, "token budget + fixed github": constrained}, title=f"{LAW} law: h* at N = {N:.3g}, D = {D:.3g}"
)

# %% [markdown]
# ## Across budgets, and the compute-optimal split
#
# h*(N, D) along budgets at a fixed tokens-per-parameter ratio, and the (N, D, h) that minimise the mean loss
# for the FLOPs budget C = 6 N D of the 7B / 150B run.

# %%
n = np.geomspace(1.2e8, N, 6)
figures.mixture_path(mj.optimal_mixture(fit, N=n, D=n * D / N))

# %%
best = mj.compute_optimal(fit, C=6 * N * D, **COMPUTE_OPTIMAL)
print(
    f"compute-optimal for C = {6 * N * D:.3g}: N = {best.n[0, -1]:.3g}, D = {best.d[0, -1]:.3g}, "
    f"mean loss {best.objective[0, -1]:.4f}"
)
best.mixture().T.rename(columns={0: "h*"}).round(3)
