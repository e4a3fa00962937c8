"""Generate the bundled example table ``mixlaw_jax/datasets/synthetic_mixtures.csv``.

The SlimPajama table of Shukor et al. states no licence, so it is not bundled. Instead the joint law is
fitted (default bounds) to three of its targets, and a synthetic table is drawn from those fits on a
design like the paper's: 30 mixtures of the 7 domains at 4 model sizes with 6 token checkpoints each,
plus 4 mixtures at a larger model for held-out evaluation, with 0.3% relative noise.

    python -m benchmarks.make_example_data ../shared/data/slimpajama/dmsl_llm_slimpajama.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import mixlaw_jax as mj
from mixlaw_jax.simulate import random_mixtures, simulate

DOMAINS = ["arxiv", "book", "c4", "github", "commoncrawl", "stackexchange", "wikipedia"]
TARGETS = ["arxiv_loss", "c4_loss", "wikipedia_loss"]
OUT = Path(__file__).resolve().parents[1] / "mixlaw_jax" / "datasets" / "synthetic_mixtures.csv"


def main(source: str) -> None:
    runs = mj.load_runs(source, weights="weight_*", N="model_size", D="n_tokens", targets=TARGETS)
    result = mj.fit(runs.query("model_size <= 1.3e9"), "joint", progress=True)
    rng = np.random.default_rng(0)
    train = random_mixtures(30, len(DOMAINS), min_weight=0.02, seed=1)
    held_out = random_mixtures(4, len(DOMAINS), min_weight=0.02, seed=2)
    tokens = [2e9, 4e9, 6e9, 1e10, 1.4e10, 2e10]
    rows = []
    for mixtures, sizes in ((train, [1.22e8, 3.1e8, 6.8e8, 1.235e9]), (held_out, [2.718e9])):
        for h in mixtures:
            for n in sizes:
                for d in tokens:
                    rows.append(
                        {**{f"weight_{name}": w for name, w in zip(DOMAINS, h)}, "model_size": n, "n_tokens": d}
                    )
    table = pd.DataFrame(rows)
    h = table.filter(like="weight_").to_numpy()
    for j, target in enumerate(TARGETS):
        table[target] = simulate(
            "joint",
            result.coordinates[j],
            table.model_size,
            table.n_tokens,
            h,
            noise=0.003,
            seed=int(rng.integers(1 << 31)),
        )
    table.to_csv(OUT, index=False, float_format="%.6g")
    print(f"wrote {OUT} ({len(table)} rows)")


if __name__ == "__main__":
    main(sys.argv[1])
