"""design_swarm and `mixlaw design`: bounds and fixed domains on every row, reproducibility, space-filling spread,
coverage of each domain's range, the table load_runs reads back, and bad input."""

import numpy as np
import pandas as pd
import pytest

import mixlaw_jax as mj
from mixlaw_jax.cli import main
from mixlaw_jax.design import min_distance

SCALES = [(1e8, 2e9), (1e8, 4e9), (3e8, 6e9)]  # two sizes: the first two scales are checkpoints of one run
BOUNDS = {"weight_0": (0.1, 0.3), "weight_1": (0.0, 0.2), "weight_2": (0.2, 0.9)}
FIXED = {"weight_4": 0.05}
METHODS = ["dirichlet", "space-filling"]


def weights(table, k):
    return table[[f"weight_{i}" for i in range(k)]].to_numpy()


def with_losses(table):
    """The table as if trained: a loss per row that depends on the mixture and the scale."""
    out = table.copy()
    h0 = out.iloc[:, 2]  # the first weight column
    out["x_loss"] = 2.0 + 1.0 / (1.0 + h0) + 1e3 / out["model_size"] ** 0.3 + 1e3 / out["n_tokens"] ** 0.3
    return out


@pytest.mark.parametrize("method", METHODS)
def test_bounds_and_fixed_domains_hold_on_every_row(method):
    table = mj.design_swarm(5, 40, scales=SCALES, weight_bounds=BOUNDS, fixed=FIXED, method=method, seed=2)
    h = weights(table, 5)
    assert h.shape == (40 * len(SCALES), 5)
    lo = np.array([0.1, 0.0, 0.2, 0.0, 0.05])
    hi = np.array([0.3, 0.2, 0.9, 1.0, 0.05])
    assert (h >= lo).all() and (h <= hi).all()
    assert (h[:, 4] == 0.05).all()
    np.testing.assert_allclose(h.sum(axis=1), 1.0, atol=1e-12)
    assert table.attrs["method"] == method and table.attrs["min_distance"] > 0


def test_dirichlet_draws_outside_the_bounds_are_rejected_not_clipped():
    table = mj.design_swarm(3, 200, scales=[(1e8, 2e9)], weight_bounds={"weight_0": (0.2, 0.5)}, seed=0)
    h0 = weights(table, 3)[:, 0]
    assert ((h0 > 0.2) & (h0 < 0.5)).all()  # clipping would pile draws onto 0.2 and 0.5
    assert 0 < table.attrs["acceptance"] < 1


def test_dirichlet_centres_on_the_prior():
    prior = [0.5, 0.3, 0.1, 0.1]
    table = mj.design_swarm(4, 400, scales=[(1e8, 2e9)], prior=prior, concentration=200, seed=1)
    np.testing.assert_allclose(weights(table, 4).mean(axis=0), prior, atol=0.01)
    flat = mj.design_swarm(4, 400, scales=[(1e8, 2e9)], prior=prior, concentration=2, seed=1)
    assert weights(flat, 4).std(axis=0).mean() > 3 * weights(table, 4).std(axis=0).mean()


@pytest.mark.parametrize("method", METHODS)
def test_the_same_seed_gives_the_same_table_and_another_seed_another(method):
    kwargs = dict(scales=SCALES, weight_bounds=BOUNDS, fixed=FIXED, method=method)
    a = mj.design_swarm(5, 12, seed=7, **kwargs)
    b = mj.design_swarm(5, 12, seed=7, **kwargs)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    c = mj.design_swarm(5, 12, seed=8, **kwargs)
    assert not np.allclose(weights(a, 5), weights(c, 5))


def test_space_filling_spreads_seven_domains_wider_than_dirichlet():
    spread = mj.design_swarm(7, 30, scales=[(1e8, 2e9)], method="space-filling", seed=0)
    drawn = mj.design_swarm(7, 30, scales=[(1e8, 2e9)], method="dirichlet", seed=0)
    assert spread.attrs["min_distance"] > 2 * drawn.attrs["min_distance"]
    for table in (spread, drawn):  # the reported distance is the brute-force one
        h = weights(table, 7)
        d = np.sqrt(((h[:, None] - h[None]) ** 2).sum(-1))
        assert table.attrs["min_distance"] == pytest.approx(d[np.triu_indices(len(h), 1)].min(), rel=1e-12)


def test_min_distance_of_few_rows():
    assert min_distance(np.array([[0.5, 0.5]])) is None
    assert min_distance(np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.4]])) == pytest.approx(np.sqrt(0.32))


def test_space_filling_covers_every_domain_range():
    simplex = mj.design_swarm(4, 10, scales=[(1e8, 2e9)], method="space-filling", seed=0)
    assert all(r == [0.0, 1.0] for r in simplex.attrs["weight_range"].values())  # the vertices come first
    bounded = mj.design_swarm(5, 20, scales=[(1e8, 2e9)], weight_bounds=BOUNDS, method="space-filling", seed=1)
    h, gap = weights(bounded, 5), bounded.attrs["min_distance"]
    feasible = bounded.attrs["feasible_range"]
    assert feasible["weight_0"] == [0.1, 0.3] and feasible["weight_2"][1] == pytest.approx(0.9)
    for i, (lo, hi) in enumerate(feasible.values()):  # farthest-point traversal: every candidate within the gap
        assert h[:, i].min() - lo <= gap and hi - h[:, i].max() <= gap
        assert bounded.attrs["weight_range"][f"weight_{i}"] == [h[:, i].min(), h[:, i].max()]


@pytest.mark.parametrize("method", METHODS)
def test_the_design_loads_back_through_load_runs(method, tmp_path):
    table = mj.design_swarm(3, 8, scales=SCALES, method=method, seed=4)
    assert list(table.columns) == ["run_id", "mixture", "weight_0", "weight_1", "weight_2", "model_size", "n_tokens"]
    path = tmp_path / "swarm.csv"
    with_losses(table).to_csv(path, index=False)
    runs = mj.load_runs(path, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss", run_id="run_id")
    np.testing.assert_array_equal(runs.h, weights(table, 3))  # CSV keeps every digit
    np.testing.assert_array_equal(runs.n, table["model_size"]) and np.testing.assert_array_equal(runs.d, table.n_tokens)
    assert runs.n_runs == 8 * 2  # one run per mixture and model size
    default = mj.load_runs(path, weights="weight_*", N="model_size", D="n_tokens", targets="x_loss")
    assert len(set(zip(default.run_id, runs.run_id))) == runs.n_runs  # the same runs as load_runs counts them


def test_named_domains_are_the_weight_columns():
    names = ["weight_web", "weight_code", "weight_books"]
    table = mj.design_swarm(names, 5, scales=[(1e8, 2e9)], fixed={"weight_books": 0.1}, method="space-filling")
    assert list(table.columns[2:5]) == names and (table["weight_books"] == 0.1).all()
    with pytest.warns(mj.MixlawWarning, match="'weight_books' is 0.1 in every row"):
        runs = mj.load_runs(with_losses(table), weights=names, N="model_size", D="n_tokens", targets="x_loss")
    assert runs.weight_columns == tuple(names) and runs.n_rows == 5
    np.testing.assert_array_equal(runs.h, table[names].to_numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be >= 1, not 0"),
        (dict(n=2.5), "n must be a whole number, not 2.5"),
        (dict(domains=1), "k >= 2 domains, not 1"),
        (dict(domains=["weight_a"]), "k >= 2 domains, not 1"),
        (dict(domains=["a", "a"]), "domain 'a' is named 2 times"),
        (dict(domains=["a", "model_size"]), "'model_size' is a column of the design table"),
        (dict(weight_bounds={"weight_0": (0.6, 1), "weight_1": (0.5, 1)}), "lower bounds sum to 1.1 > 1"),
        (dict(weight_bounds=[(0, 0.2), (0, 0.3), (0, 0.4)]), "upper bounds sum to 0.9 < 1"),
        (dict(weight_bounds="data"), "weight_bounds='data'"),
        (dict(weight_bounds={"weight_9": (0, 1)}), "unknown domain 'weight_9'"),
        (dict(fixed={"weight_0": 0.5, "weight_1": 0.5}), "one feasible mixture"),
        (dict(prior=[0.5, 0.5]), r"prior has shape \(2,\); expected \(3,\)"),
        (dict(prior=[1.2, -0.2, 0.0]), "prior of domain 'weight_1' must be finite and >= 0, not -0.2"),
        (dict(prior=[0.5, 0.5, 0.5]), r"prior must be a mixture summing to 1, not \[0.5, 0.5, 0.5\]"),
        (dict(prior={"weight_0": 0.5, "weight_1": 0.5}), "prior of domain 'weight_2' is 0"),
        (dict(prior="uniform"), "prior must be 3 weights or a dict"),
        (dict(concentration=0), "concentration must be > 0, not 0.0"),
        (dict(concentration=-1.5), "concentration must be > 0, not -1.5"),
        (dict(method="grid"), "method must be 'dirichlet' or 'space-filling', not 'grid'"),
        (dict(method="space-filling", prior=[0.2, 0.3, 0.5]), "method='space-filling' takes none"),
        (dict(scales=[(0, 2e9)]), r"scales\[0\]: N = 0.0 must be finite and > 0"),
        (dict(scales=[(1e8, 2e9), (1e8, -1)]), r"scales\[1\]: D = -1.0 must be finite and > 0"),
        (dict(scales=[]), "non-empty list of \\(N, D\\) pairs"),
        (dict(scales=[(1e8, 2e9), (1e8, 2e9)]), "scales repeats"),
        (dict(seed=-1), "seed must be in"),
        (
            dict(n=50, prior=[0.98, 0.01, 0.01], concentration=500, weight_bounds={"weight_0": (0, 0.5)}),
            "lie inside the weight bounds.*method='space-filling'",
        ),
    ],
)
def test_bad_input_is_a_mixlaw_error_naming_the_value(kwargs, message):
    args = dict(domains=3, n=4, scales=[(1e8, 2e9)]) | kwargs
    domains, n = args.pop("domains"), args.pop("n")
    with pytest.raises(mj.MixlawError, match=message):
        mj.design_swarm(domains, n, **args)


# ---------------------------------------------------------------------------------------------------- mixlaw design


def test_the_command_writes_a_table_that_load_runs_reads(tmp_path, capsys):
    out = tmp_path / "swarm.csv"
    args = ["design", "4", "6", "--scales", "1e8:2e9,3e8:6e9", "--method", "space-filling", "--seed", "3"]
    assert main([*args, "--weight-bounds", "weight_0=0.1:0.4", "--fixed", "weight_3=0.2", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "6 mixtures x 2 scales = 12 rows, 12 runs" in stdout and f"wrote {out}" in stdout
    frame = pd.read_csv(out)
    expected = mj.design_swarm(
        4, 6, scales=[(1e8, 2e9), (3e8, 6e9)], weight_bounds={"weight_0": (0.1, 0.4)}, fixed={"weight_3": 0.2},
        method="space-filling", seed=3,
    )  # fmt: skip
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert f"{expected.attrs['min_distance']:.4g}" in stdout
    with_losses(frame).to_csv(out, index=False)
    with pytest.warns(mj.MixlawWarning, match="'weight_3' is 0.2 in every row"):  # a fixed domain never varies
        runs = mj.load_runs(out, weights="weight_*", N="model_size", D="n_tokens", targets="*_loss", run_id="run_id")
    assert runs.n_runs == 12 and (runs.h[:, 3] == 0.2).all() and (runs.h[:, 0] >= 0.1).all()


def test_the_command_writes_parquet_and_prints_without_out(tmp_path, capsys):
    out = tmp_path / "swarm.parquet"
    assert main(["design", "a,b,c", "3", "--scales", "1e8:2e9", "--prior", "a=0.5,b=0.3,c=0.2", "--out", str(out)]) == 0
    assert list(pd.read_parquet(out).columns) == ["run_id", "mixture", "a", "b", "c", "model_size", "n_tokens"]
    capsys.readouterr()
    assert main(["design", "3", "2", "--scales", "1e8:2e9"]) == 0
    stdout = capsys.readouterr().out
    assert "Dirichlet draws inside the bounds: 100%" in stdout and "weight_2" in stdout and "n_tokens" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["3", "0", "--scales", "1e8:2e9"], "n must be >= 1, not 0"),
        (["3", "4", "--scales", "1e8:2e9", "--concentration", "0"], "concentration must be > 0"),
        (["3", "4", "--scales", "1e8:2e9", "--bounds", "weight_0=0.6:1,weight_1=0.6:1"], "lower bounds sum to 1.2"),
        (["3", "4", "--scales", "1e8"], "invalid scale '1e8'"),
        (["3", "4", "--scales", "1e8:-2e9"], "N and D must be finite and > 0"),
        (["3", "4", "--scales", "1e8:2e9", "--method", "grid"], "invalid choice: 'grid'"),
        (["3", "4", "--scales", "1e8:2e9", "--unique-tokens", "weight_0=1e9"], "both --unique-tokens and --target"),
    ],
)
def test_bad_design_request_is_one_line_with_exit_code_2(args, message, tmp_path, capsys):
    out = tmp_path / "swarm.csv"
    assert main(["design", *args, "--out", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_the_command_refuses_to_write_over_a_folder(tmp_path, capsys):
    assert main(["design", "3", "4", "--scales", "1e8:2e9", "--out", str(tmp_path)]) == 2
    assert "it is a folder, not a regular file" in capsys.readouterr().err


def test_help_has_examples(capsys):
    assert main(["design", "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "mixlaw design 7 40 --scales" in text and "never clipped" in text
    assert main(["--help"]) == 0 and "design" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["dirichlet", "space-filling"])
def test_data_limits_give_proxies_the_target_repetition_rates_and_cap_the_epochs(method):
    limits = mj.DataLimits(unique_tokens={"weight_0": 2e10, "weight_2": 5e10}, target_tokens=1e11, max_epochs=4.0)
    scales = [(1e8, 2e9), (3e8, 6e9)]
    table = mj.design_swarm(3, 30, scales=scales, method=method, data_limits=limits, seed=5)
    h = table[["weight_0", "weight_1", "weight_2"]].to_numpy()
    assert np.all(h[:, 0] <= 4 * 2e10 / 1e11 + 1e-12) and np.all(h[:, 2] <= 4 * 5e10 / 1e11 + 1e-12)
    assert table.attrs["unique_tokens"] == {
        "weight_0": "unique_weight_0",
        "weight_1": None,
        "weight_2": "unique_weight_2",
    }
    for domain, u in (("weight_0", 2e10), ("weight_2", 5e10)):
        proxy_epochs = table[domain] * table["n_tokens"] / table[f"unique_{domain}"]
        assert np.allclose(proxy_epochs, table[domain] * 1e11 / u, rtol=1e-12)  # as the target would repeat it
    assert max(table.attrs["epochs"]["weight_0"]) <= 4.0 + 1e-9
    runs = mj.load_runs(
        table.assign(x_loss=3.0),
        weights="weight_*",
        N="model_size",
        D="n_tokens",
        targets="x_loss",
        run_id="run_id",
        unique_tokens=table.attrs["unique_tokens"],
    )
    assert np.isinf(runs.u[:, 1]).all() and np.allclose(runs.u[:, 0], 2e10 * table["n_tokens"] / 1e11)


def test_bad_data_limits_are_named():
    with pytest.raises(mj.MixlawError, match="target_tokens must be > 0"):
        mj.design_swarm(3, 4, scales=[(1e8, 2e9)], data_limits=mj.DataLimits({"weight_0": 1e9}, 0.0))
    with pytest.raises(mj.MixlawError, match="unique_tokens of 'weight_1' must be > 0"):
        mj.design_swarm(3, 4, scales=[(1e8, 2e9)], data_limits=mj.DataLimits({"weight_1": -1.0}, 1e10))
    with pytest.raises(mj.MixlawError, match="weight_9"):
        mj.design_swarm(3, 4, scales=[(1e8, 2e9)], data_limits=mj.DataLimits({"weight_9": 1e9}, 1e10))
    with pytest.raises(mj.MixlawError, match="token budget"):  # caps of 0.1 + 0.1 + 0.1 leave no mixture
        caps = {f"weight_{i}": 1e9 for i in range(3)}
        mj.design_swarm(3, 4, scales=[(1e8, 2e9)], data_limits=mj.DataLimits(caps, 1e10, max_epochs=1.0))
    with pytest.raises(mj.MixlawError, match="target_tokens .* is needed"):
        mj.design_swarm(3, 4, scales=[(1e8, 2e9)], data_limits=mj.DataLimits({"weight_0": 1e9}))
    with pytest.raises(mj.MixlawError, match="data_limits must be a DataLimits"):
        mj.design_swarm(3, 4, scales=[(1e8, 2e9)], data_limits={"weight_0": 1e9})


def test_the_command_writes_the_proxies_pools(tmp_path, capsys):
    out = tmp_path / "swarm.csv"
    args = ["design", "3", "5", "--scales", "1e8:2e9", "--unique-tokens", "weight_1=3e10", "--target-tokens", "1e11"]
    assert main([*args, "--max-epochs", "2", "--method", "space-filling", "--out", str(out)]) == 0
    assert "pool per row: column unique_weight_1" in capsys.readouterr().out
    frame = pd.read_csv(out)
    assert np.allclose(frame["unique_weight_1"], 3e10 * 2e9 / 1e11) and (frame["weight_1"] <= 0.6 + 1e-12).all()


def test_proxy_pools_keep_the_target_repetition_rate():
    limits = mj.DataLimits({"weight_code": 2e10, "weight_books": 5e9}, target_tokens=1e12)
    pools = limits.proxy_pools(6.25e10)  # a proxy with 1/16 of the target's tokens
    assert pools == {"weight_code": pytest.approx(1.25e9), "weight_books": pytest.approx(3.125e8)}
    h = 0.3  # the same weight repeats the pool equally often at both scales
    assert h * 6.25e10 / pools["weight_code"] == pytest.approx(h * 1e12 / 2e10)
    assert np.allclose(limits.proxy_pools(np.array([1e11, 1e12]))["weight_books"], [5e8, 5e9])
    with pytest.raises(mj.MixlawError, match="proxy_tokens must be finite and > 0"):
        limits.proxy_pools(0.0)
