"""The RegMix and scaling benchmarks: data join, baselines, exponent fit and the per-point subprocess runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file

from benchmarks import regmix, scaling


@pytest.fixture(scope="module")
def root():
    return shared_file("regmix/train_mixture_1m.csv").parent


@pytest.fixture(scope="module")
def tables(root):
    return regmix.load_tables(root)


def test_regmix_join(root, tables):
    assert {name: len(frame) for name, frame in tables.items()} == {"train": 512, "1m": 256, "60m": 256, "1b": 64}
    for name, (mixture_file, loss_file) in regmix.FILES.items():
        ids = set(pd.read_csv(root / mixture_file)[regmix.ID])
        assert ids == set(pd.read_csv(root / loss_file)[regmix.ID]) == set(tables[name][regmix.ID])
        frame = tables[name]
        assert len(regmix.weight_columns(frame)) == 17
        assert regmix.PRIMARY in frame.columns
        assert np.isfinite(frame[regmix.target_columns(frame)].to_numpy()).all()
    # the 60M runs repeat the 1M test mixtures
    w = regmix.weight_columns(tables["1m"])
    assert np.array_equal(tables["1m"][w].to_numpy(), tables["60m"][w].to_numpy())


def test_join_mismatch_is_loud(tmp_path):
    pd.DataFrame({"index": [1, 2, 3], "train_the_pile_a": [1.0, 0.5, 0.0], "train_the_pile_b": [0.0, 0.5, 1.0]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    pd.DataFrame({"index": [1, 2, 4], "metric/x_val_loss": [3.0, 3.1, 3.2]}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(ValueError, match=r"only in the mixture file \[3\], only in the loss file \[4\]"):
        regmix.load_split(tmp_path / "m.csv", tmp_path / "l.csv")


def test_baselines_beat_constant(tables):
    train = tables["train"].iloc[:256]
    tests = {name: tables[name].iloc[:64] for name in ("1m", "60m", "1b")}
    targets = [regmix.PRIMARY]
    actual = tests["1m"][regmix.PRIMARY].to_numpy()
    assert regmix.spearman(np.full(len(actual), actual.mean()), actual) is None  # a constant ranks nothing
    linear = regmix.linear_predictions(train, targets, tests)
    boosted, rounds = regmix.lightgbm_predictions(train, targets, tests)
    for predictions in (linear, boosted):
        assert set(predictions) == {"1m", "60m", "1b"}
        assert regmix.spearman(predictions["1m"][:, 0], actual) > 0.5
    assert 1 <= rounds[0] <= regmix.ROUNDS


def test_loglog_slope_recovers_exponent():
    x = np.array([1, 2, 4, 8, 16, 32, 64], float)
    assert scaling.loglog_slope(x, 3.0 * x**1.5) == pytest.approx(1.5)
    assert scaling.loglog_slope([1, 2], [0.0, 1.0]) is None  # one usable point
    # a fixed overhead at small sizes, linear growth above: the upper half sees the exponent
    points = [
        {
            "size": s,
            "time_first_s": 5.0 + s,
            "time_warm_s": 0.01 * s,
            "peak_first_net_bytes": 1e8,
            "peak_warm_net_bytes": None,
        }
        for s in (1, 10, 1e3, 1e4, 1e5)
    ]
    e = scaling.exponents(points)
    assert e["time_first_s"] == pytest.approx(1.0, abs=0.01)
    assert e["time_warm_s"] == pytest.approx(1.0)
    assert e["peak_first_net_bytes"] == pytest.approx(0.0)
    assert e["peak_warm_net_bytes"] is None
    assert scaling.upper_half(5) == slice(2, 5) and scaling.upper_half(2) == slice(0, 2)


def test_scaling_point_runs_in_a_subprocess():
    p = scaling.measure({"axis": "starts", "size": 64, "quick": True}, timeout=300)
    assert "error" not in p, p.get("error")
    assert p["time_first_s"] > 0 and p["time_warm_s"] > 0
    assert p["baseline_bytes"] > 0 and p["peak_first_bytes"] >= p["baseline_bytes"] / 2
    assert p["rows"] == 60 and len(p["objective"]) == 1 and p["objective"][0] > 0


def test_merge_keeps_the_implicit_laws_a_run_left_out_and_judges_them_again():
    def method(rho_1m, rho_1b, tag):
        scores = {"spearman_1m": rho_1m, "spearman_1b": rho_1b}
        return {"mean": scores, "primary": scores, "provenance": tag}

    m4, m8, m16 = regmix.IMPLICIT
    previous = {
        "targets": ["a"],
        "latent_domains": [4, 8],
        "provenance": "old",
        "methods": {"lightgbm": method(0.9, 0.95, "old"), m4: method(0.91, 0.96, "old"), m8: method(0.8, 0.8, None)},
    }
    new = {
        "targets": ["a"],
        "latent_domains": [16],
        "provenance": "new",
        "methods": {"lightgbm": method(0.9, 0.95, "new"), m16: method(0.85, 0.9, "new")},
    }
    merged = regmix.merge(previous, new)
    assert list(merged["methods"]) == [m4, m8, m16, "lightgbm"] and merged["latent_domains"] == [4, 8, 16]
    assert merged["methods"]["lightgbm"]["provenance"] == "new" and merged["methods"][m8]["provenance"] == "old"
    assert merged["issue_bar"]["met_by_one_law_at_both"] == [m4]
    assert regmix.merge({**previous, "targets": ["b"]}, new) is new  # another target set: nothing carried
