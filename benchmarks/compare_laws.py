"""Choosing a law on the real tables: ``mj.compare_laws`` under every split that makes sense for each table.

    python -m benchmarks.compare_laws                 # full tables (1-2 hours on a loaded 2-core CPU)
    python -m benchmarks.compare_laws --quick         # one target, light fits (a few minutes): checks the script
    python -m benchmarks.compare_laws --only regmix   # one table

Writes ``results/compare_laws_slimpajama.json`` and ``results/compare_laws_regmix.json`` (under
``results/quick/``, not kept, with ``--quick``), again after each split: per split, the comparison as
``Comparison.save`` writes it (scores per law x target x fold with 95% bootstrap intervals over the held-out
mixtures, winners per metric), with the machine, versions and commit.

* SlimPajama (Shukor et al.; 61 mixtures, 6 model sizes, every run's first two checkpoints dropped as in their
  protocol): ``additive`` and ``joint`` (and ``chinchilla``, which ignores the mixture, as a floor) with the
  largest size (2.7e9) held out, each size held out in turn, and 5 folds over mixtures. ``mixing_exp`` and
  ``additive_mixture`` hold N and D fixed, so they do not apply to a table that spans sizes.
* RegMix (Liu et al.; 17 domains, 13 targets, no N or D within a scale): ``mixing_exp``, ``additive_mixture`` and
  RegMix's LightGBM (as a :class:`mj.Candidate`, the settings of ``benchmarks/regmix.py``) on the 256 held-out
  1M mixtures (fitted on the 512 training runs), 5 folds over all 768 1M mixtures, and the 64 1B runs (fitted on
  the 512 1M runs: only Spearman's rho is meaningful there, the loss level differs by scale).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import mixlaw_jax as mj
from benchmarks import regmix
from benchmarks.common import RESULTS, SLIMPAJAMA, provenance, require
from mixlaw_jax._io import atomic_write_json

#: Each law's fit per fold (lighter than the library default, as benchmarks/regmix.py; recorded in the result).
FIT = mj.Search(4096, ((256, 30, 0.25), (64, 100), (16, 300)))
#: SlimPajama's fits per fold: 25 fits of every target, so a quarter of the starts of FIT.
SLIMPAJAMA_FIT = mj.Search(1024, ((64, 30, 0.25), (16, 100), (4, 300)))
QUICK_FIT = mj.Search(256, ((16, 30), (4, 100)))
REPLICATES = 1000
QUICK_REPLICATES = 200


class LightGBM:
    """RegMix's regressor as a comparison candidate: boosted trees on the mixture weights, one per target
    (``benchmarks.regmix.lightgbm_predictions``: early-stopped on the first training runs, refitted on all)."""

    name = "lightgbm"

    def fit(self, train: mj.RunTable):
        self.train = train
        return self

    def predict(self, test: mj.RunTable) -> pd.DataFrame:
        frame = self.train.frame.assign(**{t: self.train.losses[:, j] for j, t in enumerate(self.train.targets)})
        predicted, _ = regmix.lightgbm_predictions(frame, list(self.train.targets), {"test": test.frame})
        return pd.DataFrame(predicted["test"], columns=list(self.train.targets), index=test.frame.index)


def _summary(comparison: mj.Comparison) -> dict:
    """Mean over targets of each law's pooled scores, and the winners by MRE and by Spearman's rho."""
    pooled = comparison.scores[comparison.scores["fold"] == comparison.pooled_fold]
    means = pooled.groupby(["candidate", "metric"])["value"].mean().unstack().round(6)
    return {
        "mean_over_targets": {law: row.to_dict() for law, row in means.iterrows()},
        "wins_by_mre": comparison.winners("mre")["winner"].value_counts().to_dict(),
        "wins_by_spearman": comparison.winners("spearman")["winner"].value_counts().to_dict(),
    }


def _compare(runs, laws, split, targets, search, replicates, label) -> dict:
    start = time.perf_counter()
    comparison = mj.compare_laws(runs, laws, split=split, targets=targets, search=search, n_replicates=replicates)
    seconds = time.perf_counter() - start
    summary = _summary(comparison)
    print(f"  {label}: {seconds:.0f} s", flush=True)
    for law, scores in summary["mean_over_targets"].items():
        print(f"    {law:18s} " + "  ".join(f"{m} {v:.4f}" for m, v in scores.items()), flush=True)
    return {"seconds": seconds, "summary": summary, "comparison": comparison.to_dict()}


def slimpajama(quick: bool, save) -> dict:
    runs = mj.load_runs(require(SLIMPAJAMA), weights="weight_*", N="model_size", D="n_tokens", targets="*_loss")
    runs = runs.drop_first_checkpoints(2)
    targets = ["arxiv_loss"] if quick else None
    search, replicates = (QUICK_FIT, QUICK_REPLICATES) if quick else (SLIMPAJAMA_FIT, REPLICATES)
    splits = {
        "largest_size": (mj.LeaveOneScaleOut(largest_only=True), ["additive", "joint", "chinchilla"]),
        "k_fold_mixtures": (mj.KFold(5, seed=0), ["additive", "joint"]),
        "each_size": (mj.LeaveOneScaleOut(), ["additive", "joint"]),
    }
    if quick:
        splits = {"largest_size": splits["largest_size"]}
    result = {
        "table": "slimpajama, first two checkpoints of each run dropped",
        "rows": runs.n_rows,
        "fit_settings": {"n_starts": search.n_starts, "schedule": [list(s) for s in search.stages]},
        "splits": {},
    }
    for label, (split, laws) in splits.items():
        result["splits"][label] = _compare(runs, laws, split, targets, search, replicates, f"slimpajama {label}")
        save(result)
    return result


def regmix_table(quick: bool, save) -> dict:
    tables = regmix.load_tables()
    frame = pd.concat(
        [tables["train"].assign(part="train"), tables["1m"].assign(part="1m"), tables["1b"].assign(part="1b")],
        ignore_index=True,
    )
    targets = [regmix.PRIMARY] if quick else regmix.target_columns(tables["train"])
    weights = regmix.weight_columns(frame)
    search, replicates = (QUICK_FIT, QUICK_REPLICATES) if quick else (FIT, REPLICATES)
    laws = ["mixing_exp", "additive_mixture", LightGBM()]
    one_m = mj.load_runs(frame[frame.part != "1b"], weights=weights, N=None, D=None, targets=targets, warn=False)
    to_1b = mj.load_runs(frame[frame.part != "1m"], weights=weights, N=None, D=None, targets=targets, warn=False)
    splits = {
        "held_out_1m": (one_m, mj.HeldOut("part == '1m'")),
        "k_fold_1m": (one_m, mj.KFold(5, seed=0)),
        "transfer_1b": (to_1b, mj.HeldOut("part == '1b'")),
    }
    if quick:
        splits = {"held_out_1m": splits["held_out_1m"]}
    result = {
        "table": "regmix: 512 training and 256 held-out 1M runs, 64 1B runs",
        "targets": targets,
        "fit_settings": {"n_starts": search.n_starts, "schedule": [list(s) for s in search.stages]},
        "note": "transfer_1b: the 1B losses sit at another level than the 1M fit; read its Spearman rho only",
        "splits": {},
    }
    for label, (table, split) in splits.items():
        result["splits"][label] = _compare(table, laws, split, None, search, replicates, f"regmix {label}")
        save(result)
    return result


TABLES = {"slimpajama": slimpajama, "regmix": regmix_table}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one target, light fits")
    parser.add_argument("--only", nargs="+", choices=list(TABLES), default=list(TABLES))
    args = parser.parse_args(argv)
    for name in args.only:
        print(name, flush=True)
        path = (RESULTS / "quick" if args.quick else RESULTS) / f"compare_laws_{name}.json"

        def save(result, name=name, path=path):  # after each split: a long run keeps what it finished
            atomic_write_json(path, {"benchmark": f"compare_laws_{name}", **result, "provenance": provenance()})
            print(f"wrote {path} ({', '.join(result['splits'])})", flush=True)

        TABLES[name](args.quick, save)


if __name__ == "__main__":
    main()
