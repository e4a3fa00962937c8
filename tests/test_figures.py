"""Figures (mixlaw_jax.figures) drawn from a fit with known coordinates (no fitting): what each panel shows."""

import io

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

import mixlaw_jax as mj
from mixlaw_jax import figures
from mixlaw_jax.simulate import design, random_mixtures, simulate

#: additive-law coordinates (E, log A, alpha, log B, beta, log C_i, gamma_i) of two targets, k = 3.
TRUTH = np.array(
    [[1.5, 8.0, 0.3, 9.0, 0.3, 0.1, 0.2, 0.0, 0.5, 0.7, 0.9], [2.0, 7.0, 0.3, 8.0, 0.25, 0.0, 0.3, 0.5, 0.6, 0.4, 1.2]]
)
SIZES = [1e8, 3e8, 2e9]


@pytest.fixture(scope="module")
def tables():
    h = random_mixtures(6, 3, seed=1)
    frame = design(h, SIZES, [2e9, 5e9, 1e10, 2e10])
    for j, t in enumerate(["a_loss", "b_loss"]):
        frame[t] = simulate(
            "additive", TRUTH[j], frame.N, frame.D, frame.filter(like="weight_").to_numpy(), noise=0.003, seed=j
        )
    runs = mj.load_runs(frame, weights="weight_*", N="N", D="D", targets="*_loss")
    return runs.query("N < 1e9"), runs.query("N > 1e9")


@pytest.fixture(scope="module")
def fit(tables):
    train, _ = tables
    return mj.FitResult(
        law="additive",
        k=3,
        targets=("a_loss", "b_loss"),
        weight_columns=train.weight_columns,
        n_column="N",
        d_column="D",
        weight_range=np.stack([train.h.min(0), train.h.max(0)], axis=1),
        coordinates=TRUTH,
        objective=np.zeros(2),
        diagnostics={},
        settings={},
        provenance={},
    )


def png_pixels(fig: Figure) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return matplotlib.image.imread(io.BytesIO(buffer.getvalue()), format="png")


def test_predicted_vs_observed_marks_train_and_held_out_rows(fit, tables):
    train, held = tables
    fig = figures.predicted_vs_observed(fit, train, held)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["a_loss", "b_loss"]
    for ax, t in zip(axes, fit.targets):
        train_points, held_points = (c.get_offsets() for c in ax.collections)
        assert len(train_points) == train.n_rows and len(held_points) == held.n_rows
        np.testing.assert_allclose(held_points[:, 1], fit.predict(held)[t])
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert labels[1] == f"held-out ({held.n_rows} rows, MRE {fit.mre(held)[t]:.2f}%)"
    assert png_pixels(fig).std() > 0


def test_loss_curves_follow_the_law_along_each_run(fit, tables):
    train, held = tables
    fig = figures.loss_curves(fit, train, held, max_runs_per_size=2)
    ax = fig.axes[0]
    assert len(ax.lines) == len(ax.collections) == 2 * 3  # 2 runs for each of 3 sizes (one held out)
    assert sum(line.get_linestyle() == "--" for line in ax.lines) == 2
    runs = [(t.n[t.run_id == r][0], t.h[t.run_id == r][0]) for t in tables for r in range(t.n_runs)]
    for line in ax.lines:
        d = line.get_xdata()
        assert d.min() == pytest.approx(2e9) and d.max() == pytest.approx(2e10)
        errors = [
            np.abs(fit.predict_arrays(np.full(d.size, n), d, np.tile(h, (d.size, 1)))[:, 0] - line.get_ydata()).max()
            for n, h in runs
        ]
        assert min(errors) < 1e-12
    assert ax.get_xscale() == "log" and png_pixels(fig).std() > 0


def test_mixture_intervals_draws_h_star_with_error_bars():
    frame = pd.DataFrame(
        {"h_star": [0.2, 0.5, 0.3], "lo": [0.1, 0.45, 0.2], "hi": [0.25, 0.6, 0.35]},
        index=pd.Index(["weight_a", "weight_b", "weight_c"], name="domain"),
    )
    fig = figures.mixture_intervals(frame)
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    np.testing.assert_allclose(heights, frame["h_star"])
    (container,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    (bars,) = container.errorbar.lines[2]
    segments = bars.get_segments()
    np.testing.assert_allclose([s[:, 1] for s in segments], frame[["lo", "hi"]].to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    two = figures.mixture_intervals({"additive": frame, "joint": frame[["h_star"]]})
    assert len(two.axes[0].patches) == 6 and len(two.axes[0].get_legend().get_texts()) == 2


@pytest.fixture(scope="module")
def path(fit):
    """h* over the simplex at four budgets N = 1e8 .. 7e9, D = 20 N."""
    n = np.geomspace(1e8, 7e9, 4)
    return mj.optimal_mixture(fit, N=n, D=20 * n, weight_bounds="simplex")


def test_mixture_path_stacks_h_star_over_the_budgets(path):
    fig = figures.mixture_path(path)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    compute = 6 * path.n[:, -1] * path.d[:, -1]
    bands = [c.get_paths()[0].vertices for c in ax.collections]
    top = bands[-1]
    assert top[:, 1].max() == pytest.approx(1.0)
    first = bands[0]  # the first domain's band: from 0 up to h*_0
    for c, h0 in zip(compute, path.h[:, -1, 0]):
        at = first[np.isclose(first[:, 0], c), 1]
        assert np.isclose(at, h0).any() and np.isclose(at, 0).any()
    assert ax.get_xlim() == pytest.approx((compute.min(), compute.max()))


def test_simplex_heatmap_spans_the_predicted_losses_and_marks_h_star(fit, tables, path):
    train, _ = tables
    n, d, h_star = path.n[-1, -1], path.d[-1, -1], path.h[-1, -1]
    fig = figures.simplex_heatmap(fit, N=n, D=d, runs=train, optimum=h_star, resolution=40)
    ax = fig.axes[0]
    shade = ax.collections[0]
    grid = np.array([[i / 40, j / 40, 1 - i / 40 - j / 40] for i in range(41) for j in range(41 - i)])
    loss = fit.predict_arrays(n, d, grid).mean(axis=1)
    assert shade.get_array().min() == pytest.approx(loss.min())
    assert shade.get_array().max() == pytest.approx(loss.max())
    assert path.objective[-1, -1] <= loss.min() + 1e-9  # h* is at least as good as every grid point
    star = ax.collections[-1].get_offsets()[0]
    np.testing.assert_allclose(star, [h_star[1] + 0.5 * h_star[2], np.sqrt(3) / 2 * h_star[2]])
    assert png_pixels(fig).std() > 0


def test_simplex_heatmap_leaves_overflowing_points_blank_and_counts_them(fit, monkeypatch):
    exact = mj.FitResult.predict_unchecked

    def overflowing(self, n, d, h):  # the law overflows where the first domain's weight passes 0.8
        pred = exact(self, n, d, h)
        return np.where(np.asarray(h)[:, :1] > 0.8, np.inf, pred)

    monkeypatch.setattr(mj.FitResult, "predict_unchecked", overflowing)
    fig = figures.simplex_heatmap(fit, N=1e9, D=2e10, resolution=20)
    over = sum(1 for i in range(21) for j in range(21 - i) if i / 20 > 0.8)
    shade = fig.axes[0].collections[0]
    assert np.isfinite(shade.get_array()).all() and shade.get_array().size == 231 - over
    assert f"the law overflows at {over} of 231 points" in fig.axes[0].get_title()
    monkeypatch.setattr(mj.FitResult, "predict_unchecked", lambda self, n, d, h: np.full((len(h), 2), np.inf))
    with pytest.raises(mj.MixlawError, match="overflows over"):
        figures.simplex_heatmap(fit, N=1e9, D=2e10, resolution=20)


def test_simplex_heatmap_needs_three_domains(fit):
    wider = mj.FitResult(**{**fit.__dict__, "k": 4})
    with pytest.raises(mj.MixlawError, match="needs k = 3"):
        figures.simplex_heatmap(wider, N=1e9, D=2e10)
