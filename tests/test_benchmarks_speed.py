"""benchmarks/baselines.py and benchmarks/speed.py: the numpy models against the package's laws, the analytic
gradient against finite differences, the baseline recipes on tiny problems, and the speed report's pieces."""

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import shared_file

import mixlaw_jax as mj
from mixlaw_jax.laws import Inputs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import baselines, speed  # noqa: E402

CASES = [(law, space) for law in baselines.LAWS for space in ("raw", "log")]


def random_problem(law: str, loss_space: str, seed: int = 0, rows: int = 40, k: int = 4) -> baselines.Problem:
    """Random rows (one weight exactly 0, to cover h_i = 0) and losses; k = 1 for chinchilla."""
    rng = np.random.default_rng(seed)
    k = 1 if law == "chinchilla" else k
    h = rng.dirichlet(np.ones(k), rows)
    if k > 1:
        h[0, 1] = 0.0
        h[0] /= h[0].sum()
    n = np.exp(rng.uniform(np.log(1e8), np.log(2e9), rows))
    d = np.exp(rng.uniform(np.log(1e9), np.log(1e11), rows))
    return baselines.Problem(law, n, d, h, rng.uniform(2.0, 3.0, rows), loss_space=loss_space)


@pytest.mark.parametrize("law,loss_space", CASES)
def test_numpy_model_matches_the_package_law(law, loss_space):
    problem = random_problem(law, loss_space)
    package_law = mj.get_law(law)
    x = Inputs.from_arrays(np.exp(problem.log_n), np.exp(problem.log_d), problem.h)
    for theta in problem.random_points(5, np.random.default_rng(1)):
        u = problem.to_engine(theta)
        expected = np.asarray(package_law.predict(package_law.unflatten(jnp.asarray(u), problem.k), x))
        ours = problem.predict(theta)
        np.testing.assert_allclose(np.exp(ours) if loss_space == "log" else ours, expected, rtol=1e-12)
        np.testing.assert_allclose(problem.to_natural(u), theta, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("law,loss_space", CASES)
def test_analytic_gradient_matches_finite_differences(law, loss_space):
    problem = random_problem(law, loss_space, seed=2)
    for theta in problem.random_points(3, np.random.default_rng(3)):
        value, grad = problem.objective(theta)
        step = 1e-6
        numeric = np.array(
            [
                (problem.objective(theta + step * e)[0] - problem.objective(theta - step * e)[0]) / (2 * step)
                for e in np.eye(len(theta))
            ]
        )
        assert np.isfinite(value)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7 * np.max(np.abs(numeric)))


#: (log E, log A, alpha, log B, beta) of the tiny Chinchilla table.
TRUTH = np.array([np.log(1.8), np.log(400.0), 0.34, np.log(2000.0), 0.37])


def tiny_chinchilla(loss_space: str = "log", reduction: str = "sum"):
    """A 30-row Chinchilla table (6 sizes x 5 token counts) from TRUTH, with 0.5% noise."""
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e8, 3.2e9, 6), 5)
    d = np.tile(np.geomspace(2e9, 2e11, 5), 6)
    e, a, alpha, b, beta = TRUTH
    loss = (np.exp(e) + np.exp(a) / n**alpha + np.exp(b) / d**beta) * (1 + 0.005 * rng.standard_normal(30))
    frame = pd.DataFrame({"h": 1.0, "N": n, "D": d, "loss": loss})
    runs = mj.load_runs(frame, weights=["h"], N="N", D="D", targets=["loss"], warn=False)
    return runs, baselines.Problem.from_runs(runs, "loss", "chinchilla", loss_space=loss_space, reduction=reduction)


def test_paper_recipe_improves_on_its_random_search():
    _, problem = tiny_chinchilla()
    out = baselines.paper_recipe(problem, tolerance="tight", n_random=32, niter=2, seed=0)
    assert out["objective"] < out["random_search_objective"]
    assert out["objective"] <= problem.objective(TRUTH)[0]
    assert out["local_searches"] == 3 and out["stopped"] == "niter"  # the first minimisation and 2 hops
    trace = np.array(out["trace"])
    assert np.all(np.diff(trace[:, 0]) >= 0) and np.all(np.diff(trace[:, 1]) < 0)
    assert trace[-1, 1] == out["objective"]
    assert problem.objective(out["theta"])[0] == out["objective"]
    json.dumps(out, allow_nan=False)


def test_a_recipe_process_runs_from_handed_metadata_without_jax(tmp_path):
    """The cold-start benchmark's recipe process: the law's layout and start box as JSON, the table through pandas,
    and neither JAX nor mixlaw_jax imported; the same random points and objective as a problem built with them."""
    runs, problem = tiny_chinchilla()
    frame = pd.DataFrame({"N": np.exp(problem.log_n), "D": np.exp(problem.log_d), "loss": np.exp(problem.y)})
    frame.to_csv(tmp_path / "table.csv", index=False)
    metadata = json.dumps(baselines.law_metadata("chinchilla", 1, "log").to_json())
    script = (
        "import json, sys\n"
        "import pandas as pd\n"
        "from benchmarks import baselines\n"
        "frame = pd.read_csv(sys.argv[1])\n"
        "problem = baselines.Problem('chinchilla', frame['N'], frame['D'], [[1.0]] * len(frame), frame['loss'],\n"
        "    loss_space='log', reduction='sum', metadata=baselines.LawMetadata.from_json(json.loads(sys.argv[2])))\n"
        "points = problem.random_points(4, __import__('numpy').random.default_rng(0))\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'mixlaw_jax')),\n"
        "    'objectives': [problem.objective(p)[0] for p in points]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "table.csv"), metadata],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["modules"] == []
    expected = [problem.objective(p)[0] for p in problem.random_points(4, np.random.default_rng(0))]
    np.testing.assert_allclose(report["objectives"], expected, rtol=1e-12)


def test_time_cap_stops_a_run_with_its_best_point():
    _, problem = tiny_chinchilla()
    out = baselines.paper_recipe(problem, n_random=10**5, max_seconds=0.2)
    assert out["stopped"] == "time cap" and out["seconds"] < 2
    assert np.isfinite(out["objective"])


def test_hoffmann_recipe_on_a_slice_of_the_grid():
    _, problem = tiny_chinchilla()
    out = baselines.hoffmann_recipe(problem, every=300)
    assert out["starts"] == out["grid_size"] == 15 and out["stopped"] == "grid"
    assert out["objective"] <= problem.objective(TRUTH)[0]
    with pytest.raises(ValueError):
        baselines.hoffmann_recipe(tiny_chinchilla(loss_space="raw")[1])


def test_best_at_reads_the_anytime_trace():
    trace = [[0.5, 3.0], [2.0, 2.0], [4.0, 1.0]]
    assert baselines.best_at(trace, 0.1) is None
    assert baselines.best_at(trace, 2.0) == 2.0
    assert baselines.best_at(trace, 100.0) == 1.0


def test_thinned_trace_keeps_the_first_and_last_improvements_and_log_spaced_ones():
    trace = [(1e-3 * 1.001**i, 1.0 / (1 + i)) for i in range(10_000)]
    thinned = baselines.thin(trace, points=100)
    assert len(thinned) <= 100 and thinned[0] == trace[0] and thinned[-1] == trace[-1]
    for seconds in (0.002, 0.5, 7.0):  # the best at a time as it was within one grid step (1.001^100 ~ 11%)
        exact = baselines.best_at(trace, seconds)
        assert exact <= baselines.best_at(thinned, seconds) <= baselines.best_at(trace, seconds / 1.11)


def test_epoch_objective_at_epochs_parameters():
    """The log-space summed objective on Epoch's 240 points at their published fit is their 1.01827e-3."""
    shared_file("chinchilla_epoch/svg_extracted_data.csv")
    runs = speed.chinchilla_runs()
    problem = baselines.Problem.from_runs(runs, "loss", "chinchilla", loss_space="log", reduction="sum")
    theta = [np.log(1.8172), np.log(477.84), 0.34731, np.log(2143.86), 0.36718]
    assert runs.n_rows == 240
    assert problem.objective(theta)[0] == pytest.approx(1.01827e-3, rel=1e-4)


def test_speed_pieces_end_to_end_on_a_tiny_problem(tmp_path, monkeypatch):
    monkeypatch.setattr(speed, "QUICK_BASELINE", {"n_random": 16, "niter": 1, "max_seconds": 2.0})
    runs, _ = tiny_chinchilla()
    spec = {
        "name": "chinchilla",
        "law": "chinchilla",
        "runs": runs,
        "targets": ["loss"],
        "objective": {"loss_space": "log", "reduction": "sum", "delta": 1e-3},
        "baselines": ["paper_default", "paper_tight", "paper_tight_wide", "hoffmann"],
    }
    rungs = [speed.run_engine(spec, mj.Search(16, ((2, 20, 1.0),)))]
    for r in rungs:  # warm: the median of the repeats
        assert len(r["warm_repeats_seconds"]) == speed.WARM_REPEATS and min(r["warm_repeats_seconds"]) > 0
        assert r["warm_seconds"] == sorted(r["warm_repeats_seconds"])[speed.WARM_REPEATS // 2]
    for r in rungs:  # the numpy objective at the engine's optimum is the engine's objective
        assert r["numpy_objective"][0] == pytest.approx(r["objective"][0], rel=1e-10)
    by_method = {m: [speed.run_baseline(spec, m, "loss", quick=True)] for m in spec["baselines"]}
    comparison = {m: speed.compare(rungs, r) for m, r in by_method.items()}
    assert by_method["paper_tight_wide"][0]["method"] == "paper (tight)"  # tight tolerances, a wider search
    for c in comparison.values():
        assert (c["reach_rung"] is None) == (c["speedup"] is None)
        assert c["engine_at_or_below"] == (c["objective_ratio"][0] <= 1 + speed.EQUAL_RTOL)
    problem = {
        "name": "chinchilla",
        "law": "chinchilla",
        "targets": ["loss"],
        "rows": runs.n_rows,
        "objective_settings": spec["objective"],
        "truth_objective": None,
        "engine": rungs,
        "baselines": by_method,
        "comparison": comparison,
    }
    result = {"quick": True, "problems": [problem], "bars": speed.bars([problem]), "cap_seconds": 10.0}
    result = json.loads(json.dumps(result, allow_nan=False))
    text = speed.markdown(result, tmp_path)
    assert text.startswith("## Speed and quality") and "speed-up to paper_tight" in text
    assert {b["bar"] for b in result["bars"] if "speed-up" in b["bar"]} == {
        "chinchilla: speed-up to paper_tight's objective",
        "chinchilla: speed-up to paper_tight_wide's objective",
    }
    assert (tmp_path / "speed_chinchilla.png").stat().st_size > 0


def test_compare_finds_the_fastest_rung_that_reaches_every_target():
    rungs = [
        {"seconds": 1.0, "warm_seconds": 0.5, "objective": [2.0, 1.0]},
        {"seconds": 3.0, "warm_seconds": 1.0, "objective": [1.0, 1.0]},
        {"seconds": 9.0, "warm_seconds": 4.0, "objective": [0.9, 0.9]},
    ]
    runs = [
        {"objective": 1.0, "seconds": 40.0, "seconds_to_best": 30.0, "trace": [[1.0, 5.0], [30.0, 1.0]]},
        {"objective": 1.0, "seconds": 40.0, "seconds_to_best": 30.0, "trace": [[10.0, 3.0], [30.0, 1.0]]},
    ]
    c = speed.compare(rungs, runs)
    assert c["reach_rung"] == 1 and c["speedup"] == pytest.approx(60 / 3) and c["speedup_warm"] == 60.0
    assert c["baseline_at_equal_time"] == [5.0, None]  # each target's share of the engine's 9 s
    assert c["engine_at_or_below"] and c["engine_better_at_equal_time"]
    unreached = speed.compare(rungs[:1], runs)
    assert unreached["reach_rung"] is None and unreached["speedup"] is None


def test_merge_carries_over_the_problems_a_run_left_out_with_their_provenance():
    def problem(name, ratio):
        c = {"objective_ratio": [ratio], "engine_at_or_below": ratio <= 1, "speedup": 2.0, "speedup_warm": 30.0}
        return {"name": name, "comparison": {"paper_tight": c}}

    previous = {
        "quick": False,
        "cap_seconds": 900.0,
        "provenance": {"commit": "old"},
        "problems": [problem("chinchilla", 1.0), problem("synthetic", 2.0)],
    }
    new = {
        "quick": False,
        "cap_seconds": 300.0,
        "provenance": {"commit": "new"},
        "problems": [problem("synthetic", 0.5), problem("additive", 0.9)],
    }
    merged = speed.merge(previous, new)
    assert [p["name"] for p in merged["problems"]] == ["chinchilla", "additive", "synthetic"]
    carried = merged["problems"][0]
    assert carried["provenance"] == {"commit": "old"} and carried["cap_seconds"] == 900.0
    assert all("provenance" not in p for p in merged["problems"][1:])
    assert merged["provenance"] == {"commit": "new"}
    # bars are recomputed over every problem: the re-run synthetic now meets its quality bar
    quality = {b["bar"]: b["met"] for b in merged["bars"] if "engine objective" in b["bar"]}
    assert quality == {
        "chinchilla: engine objective ≤ paper_tight": True,
        "additive: engine objective ≤ paper_tight": True,
        "synthetic: engine objective ≤ paper_tight": True,
    }
    # speed bars are judged cold and warm: Chinchilla's 20x bar is missed at 2x cold and met at 30x warm
    chinchilla = next(b for b in merged["bars"] if b["bar"] == "chinchilla: speed-up to paper_tight's objective")
    assert (chinchilla["met"], chinchilla["met_warm"]) == (False, True)
    assert speed.merge({**previous, "quick": True}, new) is new
