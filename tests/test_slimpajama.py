"""SlimPajama (Shukor et al. 2025, LLM table): best-known objectives, Table 2 MREs, protocols and bounds.

Heavy (minutes): each law is fitted once per protocol and shared by the tests below.
"""

import numpy as np
import pytest

import mixlaw_jax as mj

DOMAINS = ["arxiv", "book", "c4", "github", "commoncrawl", "stackexchange", "wikipedia"]
BEST_KNOWN = {
    "additive": [1.6233, 1.6723, 1.7984, 1.4519, 1.7403, 1.6993, 3.3617],
    "joint": [1.2883, 1.6111, 1.7285, 1.0494, 1.6662, 1.2810, 2.0615],
}
PAPER_TABLE2 = {
    "additive": [(0.50, 2.09), (0.29, 0.80), (0.29, 0.31), (0.65, 1.17), (0.29, 0.58), (0.51, 0.36), (0.92, 4.45)],
    "joint": [(0.39, 1.62), (0.24, 1.19), (0.24, 0.34), (0.54, 2.51), (0.24, 0.90), (0.38, 0.47), (0.57, 2.09)],
}
#: A light schedule for the protocol tests, whose bar is an MRE rather than an objective: the mean train / val MREs
#: are those of the default schedule to 0.01 (additive 0.48 / 1.67, joint 0.34 / 1.06:
#: benchmarks/results/accuracy.json), in 33 s and 49 s instead of 43 s and 86 s with (4096; 128, 32, 8).
LIGHT = mj.Search(2048, ((64, 30, 0.25), (16, 100, 1.0), (4, 200, 1.0)))


def split(runs, drop_first=0):
    train, val = runs.query("model_size <= 1.3e9"), runs.query("model_size > 1.3e9")
    if drop_first:
        train, val = train.drop_first_checkpoints(drop_first), val.drop_first_checkpoints(drop_first)
    return train, val


def print_table(law, result, train, val):
    tr, va = result.mre(train), result.mre(val)
    print(f"\n{law}: target  objective(x1e-5)  train MRE (paper)  val MRE (paper)")
    for j, d in enumerate(DOMAINS):
        t = f"{d}_loss"
        paper = PAPER_TABLE2[law][j]
        print(
            f"  {d:14s} {result.objective[result.targets.index(t)] / 1e-5:9.5f}  {tr[t]:5.2f} ({paper[0]:.2f})"
            f"  {va[t]:5.2f} ({paper[1]:.2f})  {'; '.join(result.diagnostics[t].flags[:2])}"
        )

    def mean(m):
        return np.mean([m[f"{d}_loss"] for d in DOMAINS])

    print(f"  mean train {mean(tr):.2f}  val {mean(va):.2f}")
    return mean(tr), mean(va)


@pytest.fixture(scope="module", params=["additive", "joint"])
def unbounded(request, slimpajama):
    train, val = split(slimpajama)
    return request.param, mj.fit(train, request.param, parameter_bounds=None), train, val


#: Issue 2's bar: every domain within 1e-4 of the best known, for both laws, unbounded, seed 0.
TOLERANCE = 1e-4


def test_unbounded_fit_reaches_the_best_known_objectives(unbounded):
    law, result, train, val = unbounded
    assert result.targets[-1] == "openhermes_loss" and len(result.targets) == 8
    print_table(law, result, train, val)
    ratios = {
        d: result.objective[result.targets.index(f"{d}_loss")] / (b * 1e-5) for d, b in zip(DOMAINS, BEST_KNOWN[law])
    }
    print({d: round(r, 6) for d, r in ratios.items()})
    assert all(r <= 1 + TOLERANCE for r in ratios.values()), ratios


@pytest.mark.parametrize("law, bar", [("additive", 0.50), ("joint", 0.41)])
def test_dropping_first_two_checkpoints_reproduces_the_papers_train_mre(slimpajama, law, bar):
    train, val = split(slimpajama, drop_first=2)
    assert train.n_rows == 2408 - 2 * 220
    result = mj.fit(train, law, search=LIGHT)
    mean_train, mean_val = print_table(law, result, train, val)
    assert mean_train <= bar


def test_default_bounds_flag_parameters_and_keep_exponents_plausible(slimpajama, slimpajama_additive):
    train, val = split(slimpajama)
    result = slimpajama_additive
    for target in result.targets:
        p = result.params[target]
        assert 0 <= p["E"] <= 20 and 0 <= p["alpha"] <= 2.5 and 0 <= p["beta"] <= 2.5
        assert all(0 <= g <= 10 for g in p["gamma"])
    flags = result.diagnostics["wikipedia_loss"].flags
    print(result.summary(), result.mre(val))
    assert any("E=" in f and "bound" in f for f in flags), flags  # unbounded, E goes negative (-0.44)
