"""benchmarks/scaling.py: the many-domain tables (issue 25) and a partial run merged into the result file."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import common, scaling  # noqa: E402


def test_many_domain_table_has_six_k_mixtures_at_every_size_and_checkpoint():
    k = 16
    runs, truth = scaling.many_domain_table("joint", k, seed=3)
    assert runs.k == k and len(truth) == 4 * k + 5
    assert runs.n_rows == scaling.MIXTURES_PER_DOMAIN * k * len(scaling.DOMAIN_SIZES) * len(scaling.DOMAIN_TOKENS)
    assert len(np.unique(runs.h, axis=0)) == scaling.MIXTURES_PER_DOMAIN * k
    assert runs.h.min() >= 0.2 / k - 1e-12
    # 0.1% relative noise: the truth's mean Huber objective sits near delta-scale residuals, not at 0
    assert 0 < common.objective_at("joint", truth, runs) < 1e-4
    additive, u = scaling.many_domain_table("additive", k)
    assert len(u) == 2 * k + 5 and np.isfinite(common.objective_at("additive", u, additive))


def test_a_run_of_some_axes_keeps_the_other_sweeps_of_the_file_it_replaces():
    old = {
        "compilation_cache": False,
        "provenance": {"commit": "old"},
        "sweeps": {"starts": {"points": [1]}, "domains_joint": {"points": [2]}},
        "chunking": {"default": 1},
    }
    new = {"compilation_cache": False, "provenance": {"commit": "new"}, "sweeps": {"domains_joint": {"points": [3]}}}
    merged = scaling.merge(old, new)
    assert merged["sweeps"]["domains_joint"] == {"points": [3]}
    assert merged["sweeps"]["starts"] == {"points": [1], "provenance": {"commit": "old"}}
    assert merged["provenance"] == {"commit": "new"} and merged["chunking"] == {"default": 1}
    assert scaling.merge(dict(old, compilation_cache=True), new) == new  # a quick file is not merged into a full one
