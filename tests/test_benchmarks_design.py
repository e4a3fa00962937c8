"""The design benchmark (benchmarks/design.py): the grid lattice, the bar's arithmetic, a one-campaign smoke run."""

from __future__ import annotations

import json
import math

import numpy as np

from benchmarks import design


def test_lattice_one_hot_heavy_first_then_uniform_then_degree_two():
    lower = np.full(3, 0.02)
    grid = design.lattice(3, lower, 7)
    assert grid.shape == (7, 3)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert (grid >= lower - 1e-12).all()
    np.testing.assert_allclose(grid[:3], lower + 0.94 * np.eye(3))  # one-hot-heavy mixtures
    np.testing.assert_allclose(grid[3], np.full(3, 1 / 3))  # the uniform mixture
    np.testing.assert_allclose(grid[4], lower + 0.94 * np.array([0.5, 0.5, 0.0]))  # degree 2
    assert len(np.unique(np.round(grid, 12), axis=0)) == 7


def record(compute, h_l1):
    return {"compute": compute, "h_l1": h_l1} | {m: h_l1 for m in ("h_l2", "loss_error", "regret")}


def one_met_campaign() -> list[dict]:
    """One campaign whose proposals reach the grid's final error (0.2) at 1.2 of the grid's 3.0 compute units."""
    return [
        {
            "campaign": 0,
            "strategies": {
                "grid": record([1.0, 2.0, 3.0], [1.0, 0.5, 0.2]),
                "proposals": record([1.0, 1.2, 1.4], [1.0, 0.1, 0.05]),
            },
        }
    ]


def test_bar_reads_the_compute_at_which_proposals_reach_the_grids_final_error():
    campaigns = [
        {
            "campaign": c,
            "strategies": {
                "grid": record([1.0, 2.0, 3.0], [1.0, 0.5, 0.2]),
                "random": record([1.0, 2.0, 3.0], [1.0, 0.8, 0.6]),
                "proposals": record([1.0, 1.2, 1.4], [1.0, [0.0, 0.4][c], 0.05]),
            },
        }
        for c in range(2)
    ]
    summary = design.summarize(campaigns)
    bar = summary["bar"]
    assert bar["grid_final_h_l1_mean"] == 0.2 and bar["grid_final_compute"] == 3.0
    # mean proposals' error: 1.0, 0.2, 0.05: first at or below 0.2 at the second step (compute 1.2)
    assert bar["proposals_compute_to_reach"] == 1.2
    assert math.isclose(bar["ratio"], 0.4) and bar["met"]
    # campaign 0 reaches its grid's 0.2 at step 1 (0.0), campaign 1 only at step 2 (0.4 > 0.2, then 0.05)
    assert bar["per_campaign_ratio"] == [1.2 / 3.0, 1.4 / 3.0]
    assert summary["grid"]["h_l1_q25"][-1] == 0.2 and summary["proposals"]["campaigns"] == 2
    assert bar["met_share_resampled"] == 1.0  # every resample of the two campaigns meets it


def test_the_bar_is_judged_on_the_campaigns_that_have_both_records():
    """Campaign 1's grid (final 0.8) has no proposals beside it (a re-run stopped part-way): it moves neither the
    goal nor the compute the bar is read against."""
    campaigns = one_met_campaign() + [{"campaign": 1, "strategies": {"grid": record([1.0, 4.0, 9.0], [1.0, 0.9, 0.8])}}]
    summary = design.summarize(campaigns)
    bar = summary["bar"]
    assert summary["grid"]["campaigns"] == 2 and bar["campaigns"] == 1
    assert bar["grid_final_h_l1_mean"] == 0.2 and bar["grid_final_compute"] == 3.0
    assert math.isclose(bar["ratio"], 0.4) and bar["met"] and bar["proposals_compute_to_reach"] == 1.2


def test_the_bar_is_resampled_over_campaigns_to_show_how_few_decide_it():
    """Campaign 0 meets the bar alone, campaign 1 never reaches the grid: only resamples of campaign 0 twice (1 in 4)
    meet it, and the summary over both does not."""
    grid = record([1.0, 2.0, 3.0], [1.0, 0.5, 0.2])
    campaigns = [
        {"campaign": 0, "strategies": {"grid": grid, "proposals": record([1.0, 1.2, 1.4], [1.0, 0.1, 0.1])}},
        {"campaign": 1, "strategies": {"grid": grid, "proposals": record([1.0, 1.2, 1.4], [1.0, 0.5, 0.5])}},
    ]
    bar = design.summarize(campaigns)["bar"]
    assert not bar["met"]
    assert 0.2 < bar["met_share_resampled"] < 0.3
    assert design.resampled_met_share([]) is None
    failed = record([1.0, 1.2, 1.4], [1.0, None, 0.1])  # a failed fit is left out of its step's mean
    assert design.resampled_met_share([{"grid": grid, "proposals": failed}]) == 1.0


def test_a_longer_record_gets_a_verdict_per_block_of_the_issues_twenty_campaigns(tmp_path):
    """40 campaigns: the first 20 reach the grid's final error at 0.4 of its compute, the last 20 never; the pooled
    mean misses, and each block's verdict is stated beside it."""
    grid = record([1.0, 2.0, 3.0], [1.0, 0.5, 0.2])
    fast, stuck = record([1.0, 1.2, 1.4], [1.0, 0.1, 0.1]), record([1.0, 1.2, 1.4], [1.0, 0.6, 0.6])
    campaigns = [
        {"campaign": c, "strategies": {"grid": grid, "proposals": fast if c < 20 else stuck}} for c in range(40)
    ]
    summary = design.summarize(campaigns)
    ratios = summary["bar"]["block_ratios"]
    assert len(ratios) == 2 and math.isclose(ratios[0], 0.4) and ratios[1] is None
    assert not summary["bar"]["met"]
    text = design.markdown({"settings": {"k3": {"summary": summary}}}, tmp_path)
    assert "; on each block of 20 campaigns: 0.40 (met), never;" in text
    assert len(design.summarize(campaigns[:25])["bar"]["block_ratios"]) == 1  # a partial block gets no verdict
    assert "on each block" not in design.markdown(
        {"settings": {"k3": {"summary": design.summarize(campaigns[:25])}}}, tmp_path
    )


def test_markdown_tabulates_each_strategy_and_states_the_bar(tmp_path):
    campaigns = one_met_campaign()
    text = design.markdown({"settings": {"k3": {"summary": design.summarize(campaigns)}}}, tmp_path)
    assert "| k3 | grid | 1 | 1.0000 | 0.2000 | 0.2000 | 2.00e-01 | 0.2000 | 3 |" in text
    assert "| k3 | proposals | 1 | 1.0000 | 0.0500 | 0.0500 | 5.00e-02 | 0.0500 | 1.4 |" in text
    assert "reached by the proposals at 0.40 of the grid's compute" in text
    assert "**met** (met in 100% of 1000 resamples of the campaigns)" in text
    assert (tmp_path / "design.png").stat().st_size > 0
    assert "loss criterion" not in text  # no proposals_loss records, no line about them


def test_the_loss_criterions_proposals_are_judged_on_the_loss_error(tmp_path):
    """proposals_loss's mean loss error (0.9, 0.3, 0.1) first reaches the grid's final 0.2 at compute 2.4 of 3.0."""
    campaigns = one_met_campaign()
    campaigns[0]["strategies"]["proposals_loss"] = record([1.0, 1.5, 2.4], [1.0, 0.1, 0.1]) | {
        "loss_error": [0.9, 0.3, 0.1]
    }
    summary = design.summarize(campaigns)
    assert math.isclose(summary["loss_reach"], 0.8)
    assert "bar" in summary  # the h* bar is still the proposals'
    text = design.markdown({"settings": {"k3": {"summary": summary}}}, tmp_path)
    assert "| k3 | proposals_loss | 1 | 1.0000 | 0.1000 | 0.1000 | 1.00e-01 | 0.1000 | 2.4 |" in text
    assert "final mean loss error 0.2000; the loss criterion's proposals reach it at 0.80 of its compute" in text


def test_quick_campaign_writes_the_results_and_the_figure(tmp_path):
    design.main(
        [
            *("--quick", "--campaigns", "1", "--settings", "k3", "--steps", "1", "--proposal-steps", "1"),
            *("--skip-timing", "--out", str(tmp_path)),
        ]
    )
    results = json.loads((tmp_path / "design.json").read_text())
    assert (tmp_path / "design.png").stat().st_size > 0
    entry = results["settings"]["k3"]
    assert (
        entry["campaigns_run"] == 1
        and entry["config"]["quick"]
        and entry["config"]["steps"] == dict.fromkeys(design.STRATEGIES, 1)
    )
    (campaign,) = entry["campaigns"]
    assert set(campaign["strategies"]) == set(design.STRATEGIES)
    assert len(campaign["h_star"]) == 3 and math.isclose(sum(campaign["h_star"]), 1.0)
    for strategy, rec in campaign["strategies"].items():
        assert rec["runs"] == [entry["config"]["initial_runs"], entry["config"]["initial_runs"] + design.BATCH]
        assert rec["compute"][1] > rec["compute"][0] > 0, strategy
        for metric in design.METRICS:
            assert all(v is not None and np.isfinite(v) for v in rec[metric]), (strategy, metric)
        assert all(v >= 0 for v in rec["h_l1"])
    assert campaign["strategies"]["grid"]["compute"][0] == campaign["strategies"]["proposals"]["compute"][0]
    assert "proposed" in campaign["strategies"]["proposals"], campaign["strategies"]["proposals"]["failures"]
    assert "proposed" in campaign["strategies"]["proposals_loss"], campaign["strategies"]["proposals_loss"]["failures"]
    assert set(entry["summary"]) == {*design.STRATEGIES, "bar", "loss_reach"}
    assert {"ratio", "met", "grid_final_compute", "per_campaign_ratio"} <= set(entry["summary"]["bar"])


def test_plot_only_summarizes_the_records_again_and_keeps_their_provenance(tmp_path):
    campaigns = one_met_campaign()
    stale = {"settings": {"k3": {"campaigns": campaigns, "summary": {}}}, "provenance": {"commit": "measured-here"}}
    (tmp_path / "design.json").write_text(json.dumps(stale))
    design.main(["--plot-only", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "design.json").read_text())
    assert results["settings"]["k3"]["summary"]["bar"]["met_share_resampled"] == 1.0
    assert results["provenance"] == {"commit": "measured-here"}  # nothing was measured again
    assert (tmp_path / "design.png").stat().st_size > 0
