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
# # Quickstart: fit, score and optimise on the bundled table
#
# The bundled table is **synthetic** (drawn from a joint law fitted to three targets of the SlimPajama table of
# Shukor et al.; see `mixlaw_jax/datasets/README.md`): 30 mixtures of 7 domains at 4 model sizes with 6 token
# checkpoints each for fitting, and 4 more mixtures at a larger model (2.718e9 parameters) held out.
#
# We fit the additive and joint laws to the small models, score the held-out larger model, look at the fits,
# and ask which mixture a 7B model trained on 150B tokens should use. `mixlaw demo` does all of this (plus a
# bootstrap) from the command line and writes an HTML report.

# %% tags=["parameters"]
import os

# MIXLAW_NOTEBOOK_FAST=1 (the test suite) runs with tiny settings; the results are then rough.
FAST = os.environ.get("MIXLAW_NOTEBOOK_FAST") == "1"
LAWS = ["additive"] if FAST else ["additive", "joint"]
SEARCH = dict(n_starts=64, schedule=((16, 20), (4, 40))) if FAST else {}  # mj.Search fields; {}: the defaults

# %%
# %matplotlib inline
import pandas as pd

import mixlaw_jax as mj
from mixlaw_jax import figures
from mixlaw_jax.datasets import example_path, load_example

runs = load_example()
train, held_out = runs.query("model_size <= 1.3e9"), runs.query("model_size > 1.3e9")
print(f"{runs.n_rows} rows, {runs.n_runs} runs, k = {runs.k} domains, targets {runs.targets}")
print(
    f"train: {train.n_rows} rows at N = {sorted(set(train.n))}; held out: {held_out.n_rows} rows at "
    f"N = {sorted(set(held_out.n))}"
)
pd.read_csv(example_path()).head()

# %% [markdown]
# ## Fit
#
# `mj.fit` fits every target at once (one batched program). The default screens 16,384 random starts per
# target and refines the best by successive halving; `fit.summary()` shows the objective, how many of the final
# starts reached the best basin, and any parameter that ended at a bound.

# %%
fits = {law: mj.fit(train, law, search=mj.Search(**SEARCH)) for law in LAWS}
fits[LAWS[-1]].summary()

# %%
fits[LAWS[-1]].params["arxiv_loss"]

# %% [markdown]
# ## Score on the held-out larger model
#
# Mean relative error (%) on the training rows and on the held-out rows, per target.

# %%
scores = pd.DataFrame(
    {
        f"{law} {part}": fit.mre(rows)
        for law, fit in fits.items()
        for part, rows in (("train", train), ("held-out", held_out))
    }
)
scores.loc["mean"] = scores.mean()
assert (scores.filter(like="held-out") < 5).all().all()
scores.round(3)

# %%
figures.predicted_vs_observed(fits[LAWS[-1]], train, held_out)

# %%
figures.loss_curves(fits[LAWS[-1]], train, held_out, max_runs_per_size=3)

# %% [markdown]
# ## Optimal mixture
#
# h* minimises the mean predicted loss over the targets at a budget (N, D), by default within the range of
# weights each domain has in the fitted runs. Under the additive law h* does not depend on (N, D); under the
# joint law it does, so we also follow it along a path of budgets.

# %%
opt = mj.optimal_mixture(fits[LAWS[-1]], N=7e9, D=1.5e11)
print(f"predicted mean loss at h*: {opt.objective[0, -1]:.4f}, {opt.gain[0, -1]:.4f} below the uniform mixture")
opt.mixture().T.rename(columns={0: "h*"}).round(3)

# %%
import numpy as np

n = np.geomspace(1.2e8, 7e9, 6)
path = mj.optimal_mixture(fits[LAWS[-1]], N=n, D=n * 1.5e11 / 7e9)
figures.mixture_path(path)

# %% [markdown]
# ## Save and load
#
# Results are versioned JSON files, written atomically.

# %%
import tempfile

folder = tempfile.mkdtemp()
fits[LAWS[-1]].save(f"{folder}/fit.json")
again = mj.load_fit(f"{folder}/fit.json")
assert np.allclose(again.predict(held_out), fits[LAWS[-1]].predict(held_out))
again.mre(held_out)
