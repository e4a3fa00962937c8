"""Figures of fits, held-out scores and optimal mixtures.

Every function takes result objects or frames and returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global state, no GUI backend); ``fig.savefig("x.png")`` renders it with Agg.

Every text is plain text: titles, labels, legends and tick labels come from column, law and domain names, which may
hold ``$``, ``_``, ``^`` or ``\\`` (a name such as ``$\\badcmd{x$_loss`` must not go to mathtext). Each figure is
built with ``text.parse_math`` off, which a Text reads when it is created, so it holds when the figure is saved
later; log axes get plain tick labels (``2e9``) instead of mathtext powers of ten.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colormaps, colors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter
from matplotlib.tri import Triangulation

from . import metrics
from .comparison import Comparison
from .data import RunTable, index_of
from .errors import MixlawError
from .mixture import WEIGHTED, MixtureResult
from .results import FitResult

TRAIN_COLOR, HELD_OUT_COLOR = "#1f77b4", "#d62728"
PANEL = 3.4  # inches per panel


def domain_labels(columns: Sequence[str]) -> list[str]:
    """Weight-column names without a shared prefix such as ``weight_``."""
    names = list(columns)
    prefix = names[0].split("_")[0] + "_" if "_" in names[0] else ""
    if prefix and len(names) > 1 and all(n.startswith(prefix) and len(n) > len(prefix) for n in names):
        return [n[len(prefix) :] for n in names]
    return names


def _mantissa(value: float) -> int:
    return round(value / 10 ** np.floor(np.log10(value))) if value > 0 else 0


def _short_power(value: float, _pos=None) -> str:
    """2e9, 1e10: tick labels for a log axis."""
    if value <= 0:
        return ""
    exponent = int(np.floor(np.log10(value) + 1e-9))
    return f"{_mantissa(value)}e{exponent}"


def _plain_log_ticks(axis, minor_decades: float = np.inf) -> None:
    """Plain tick labels on a log axis: ``2e9`` at the major ticks, and at the minor ticks of mantissa 2 and 5
    while the view spans fewer than ``minor_decades`` decades."""

    def minor(value, pos=None):
        lo, hi = sorted(axis.get_view_interval())
        few = lo > 0 and np.log10(hi / lo) < minor_decades
        return _short_power(value, pos) if few and _mantissa(value) in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(_short_power))
    axis.set_minor_formatter(FuncFormatter(minor))


def _plain_text(draw):
    """Build the figure with ``text.parse_math`` off: every Text it creates (titles, labels, legends, tick labels,
    annotations) is drawn as given, never parsed as mathtext, now and whenever the figure is saved."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper


def _panels(n: int, ncols: int = 3):
    """A figure with n panels on rows of ``ncols``; returns (figure, the n axes)."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = Figure(figsize=(PANEL * 1.1 * ncols, PANEL * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _targets(fit: FitResult, targets) -> list[str]:
    return list(fit.targets) if targets is None else [fit.targets[index_of(fit.targets, t, "target")] for t in targets]


@_plain_text
def predicted_vs_observed(
    fit: FitResult, train: RunTable, held_out: RunTable | None = None, *, targets: Sequence[str] | None = None
) -> Figure:
    """Predicted against observed loss, one panel per target: training rows and held-out rows marked apart,
    the line y = x, and each set's MRE in the legend."""
    chosen = _targets(fit, targets)
    fig, axes = _panels(len(chosen))
    sets = [("train", train, TRAIN_COLOR, "o")]
    if held_out is not None:
        sets.append(("held-out", held_out, HELD_OUT_COLOR, "^"))
    predictions = {name: fit.predict(table) for name, table, _, _ in sets}
    for ax, t in zip(axes, chosen):
        lo, hi = np.inf, -np.inf
        for name, table, color, marker in sets:
            if t not in table.targets:
                continue
            observed = table.losses[:, table.targets.index(t)]
            predicted = predictions[name][t].to_numpy()
            ok = np.isfinite(observed)
            mre = metrics.mre(observed[ok], predicted[ok])
            ax.scatter(
                observed[ok],
                predicted[ok],
                s=12,
                marker=marker,
                color=color,
                alpha=0.7,
                label=f"{name} ({ok.sum()} rows, MRE {mre:.2f}%)",
            )
            lo, hi = min(lo, observed[ok].min(), predicted[ok].min()), max(hi, observed[ok].max(), predicted[ok].max())
        pad = 0.03 * (hi - lo)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=0.8, ls="--")
        ax.set(title=t, xlabel="observed loss", ylabel="predicted loss")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{fit.law} law: predicted vs observed")
    return fig


@_plain_text
def loss_curves(
    fit: FitResult,
    runs: RunTable,
    held_out: RunTable | None = None,
    *,
    targets: Sequence[str] | None = None,
    max_runs_per_size: int = 6,
    seed: int = 0,
) -> Figure:
    """Loss against training tokens: observed checkpoints (markers) and the fitted law along each run (lines),
    coloured by model size; held-out runs dashed with open markers. At most ``max_runs_per_size`` runs
    (mixtures) are drawn per model size, chosen at random with ``seed``."""
    if runs.d is None or runs.n is None:
        raise MixlawError("loss_curves needs N and D columns")
    chosen = _targets(fit, targets)
    tables = [(runs, False)] + ([(held_out, True)] if held_out is not None else [])
    sizes = np.unique(np.concatenate([t.n for t, _ in tables]))
    norm = colors.LogNorm(sizes.min(), sizes.max() * 1.0001)

    def palette(n):
        return colormaps["viridis"](0.85 * norm(n))

    rng = np.random.default_rng(seed)
    fig, axes = _panels(len(chosen))
    grid_size = 40
    for table, dashed in tables:
        picked = []
        for size in np.unique(table.n):
            ids = np.unique(table.run_id[table.n == size])
            picked += list(rng.permutation(ids)[:max_runs_per_size])
        rows = [np.flatnonzero(table.run_id == run) for run in picked]
        grids = np.concatenate([np.geomspace(table.d[r].min(), table.d[r].max(), grid_size) for r in rows])
        first = np.repeat([r[0] for r in rows], grid_size)
        curves = fit.predict_arrays(table.n[first], grids, table.h[first])  # one call for every run's curve
        for i, r in enumerate(rows):
            color = palette(table.n[r[0]])
            span = slice(i * grid_size, (i + 1) * grid_size)
            for ax, t in zip(axes, chosen):
                ax.plot(
                    grids[span],
                    curves[span, fit.targets.index(t)],
                    color=color,
                    lw=0.9,
                    ls="--" if dashed else "-",
                    alpha=0.8,
                )
                if t in table.targets:
                    ax.scatter(
                        table.d[r],
                        table.losses[r, table.targets.index(t)],
                        s=14,
                        marker="^" if dashed else "o",
                        facecolors="none" if dashed else color,
                        edgecolors=color,
                        lw=0.9,
                    )
    for ax, t in zip(axes, chosen):
        ax.set(xscale="log", title=t, xlabel="training tokens D", ylabel="loss")
        _plain_log_ticks(ax.xaxis)
    handles = [Line2D([], [], color=palette(n), marker="o", lw=1, label=f"N = {n:.3g}") for n in sizes]
    if held_out is not None:
        handles.append(Line2D([], [], color="0.3", ls="--", marker="^", mfc="none", label="held-out runs"))
    fig.legend(handles=handles, loc="outside right center", fontsize=7)
    fig.suptitle(f"{fit.law} law: loss vs tokens (lines: fit; markers: observed)")
    return fig


@_plain_text
def mixture_intervals(intervals: pd.DataFrame | Mapping[str, pd.DataFrame], *, title: str | None = None) -> Figure:
    """Optimal weight h* per domain as bars, with error bars from the columns ``lo`` and ``hi`` where present.

    ``intervals`` is a frame indexed by domain with columns ``h_star`` (and ``lo``, ``hi``), as
    ``BootstrapResult.mixture_interval`` returns, or a dict ``{label: frame}`` (e.g. one per law) drawn as
    grouped bars.
    """
    frames = {"": intervals} if isinstance(intervals, pd.DataFrame) else dict(intervals)
    if not frames:
        raise MixlawError("mixture_intervals needs at least one frame")
    domains = list(next(iter(frames.values())).index)
    fig = Figure(figsize=(max(5.0, 0.9 * len(domains) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(frames)
    x = np.arange(len(domains))
    for j, (label, frame) in enumerate(frames.items()):
        frame = frame.reindex(domains)
        h = frame["h_star"].to_numpy(float)
        err = None
        if {"lo", "hi"} <= set(frame.columns):
            err = np.clip(np.stack([h - frame["lo"].to_numpy(float), frame["hi"].to_numpy(float) - h]), 0, None)
        ax.bar(x + (j - (len(frames) - 1) / 2) * width, h, width, yerr=err, capsize=3, label=label or None)
    ax.set_xticks(x, domain_labels([str(d) for d in domains]), rotation=30, ha="right")
    ax.set(ylabel="optimal weight h*", title=title or "optimal mixture (error bars: bootstrap interval)")
    if len(frames) > 1:
        ax.legend(fontsize=8)
    return fig


@_plain_text
def mixture_path(result: MixtureResult, *, objective: str = WEIGHTED, x: str = "compute") -> Figure:
    """h*(N, D) across the budgets of a :class:`MixtureResult`: stacked optimal weights against compute 6ND
    (``x="compute"``) or the training tokens D (``x="D"``). A result with data limits priced by the law
    (``unlimited_h``) gets a second panel: h* of the same law without limits (every U_i = ∞)."""
    if result.n is None or result.d is None:
        raise MixlawError("mixture_path needs budgets with N and D")
    if x not in ("compute", "D"):
        raise MixlawError(f"mixture_path: x must be 'compute' or 'D', not {x!r}")
    o = index_of(result.objectives, objective, "objective")
    along = 6 * result.n[:, o] * result.d[:, o] if x == "compute" else result.d[:, o]
    order = np.argsort(along)
    paths = [("h*(N, D)", result.h)]
    if result.unlimited_h is not None:
        paths = [("h*(N, D) with the data limits", result.h), ("without limits (U = inf)", result.unlimited_h)]
    fig = Figure(figsize=(7.0 if len(paths) == 1 else 11.0, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(paths), sharey=True))
    for ax, (title, h) in zip(axes, paths):
        ax.stackplot(along[order], h[order, o, :].T, labels=domain_labels(result.domains), alpha=0.85)
        ax.set(
            xscale="log",
            xlim=(along.min(), along.max()),
            ylim=(0, 1),
            xlabel="compute C = 6 N D (FLOPs)" if x == "compute" else "training tokens D",
            title=f"{result.law} law: {title}, objective {objective}",
        )
        _plain_log_ticks(ax.xaxis, minor_decades=2)
    axes[0].set_ylabel("optimal weight h*")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8, reverse=True)
    return fig


@_plain_text
def simplex_heatmap(
    fit: FitResult,
    *,
    N: float | None = None,
    D: float | None = None,
    target: str | None = None,
    runs: RunTable | None = None,
    optimum: Sequence[float] | None = None,
    resolution: int = 120,
) -> Figure:
    """Predicted loss over the simplex of a k = 3 mixture as a ternary heat map at one (N, D): ``target``, or the
    mean over targets when None; fitted mixtures (``runs``) and an optimum h* marked. Points where the law
    overflows are left blank and counted in the title."""
    if fit.k != 3:
        raise MixlawError(f"simplex_heatmap needs k = 3 domains; this fit has k = {fit.k}")
    i, j = np.meshgrid(np.arange(resolution + 1), np.arange(resolution + 1), indexing="ij")
    keep = i + j <= resolution
    a, b = i[keep] / resolution, j[keep] / resolution
    h = np.stack([a, b, 1 - a - b], axis=1).clip(0, 1)
    pred = fit.predict_unchecked(N, D, h)
    loss = (
        pred.mean(axis=1)
        if target is None
        else pred[:, fit.targets.index(fit.targets[index_of(fit.targets, target, "target")])]
    )

    def xy(w):
        w = np.atleast_2d(w)
        return w[:, 1] + 0.5 * w[:, 2], np.sqrt(3) / 2 * w[:, 2]

    x, y = xy(h)
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(loss)
    if finite.sum() < 3:
        raise MixlawError(f"the {fit.law} law overflows over (nearly) the whole simplex at N = {N}, D = {D}")
    tri = Triangulation(x[finite], y[finite])
    shade = ax.tripcolor(tri, loss[finite], shading="gouraud", cmap="magma_r")
    fig.colorbar(shade, ax=ax, label="predicted loss" + ("" if target else " (mean over targets)"))
    ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="k", lw=0.8)
    names = domain_labels(fit.weight_columns)
    for (px, py), name, align in zip([(0, 0), (1, 0), (0.5, np.sqrt(3) / 2)], names, ["right", "left", "center"]):
        ax.annotate(name, (px, py), xytext=(0, -12 if py == 0 else 6), textcoords="offset points", ha=align)
    if runs is not None:
        rx, ry = xy(np.unique(runs.h, axis=0))
        ax.scatter(rx, ry, s=10, color="white", edgecolors="k", lw=0.5, label="fitted mixtures")
    if optimum is not None:
        ox, oy = xy(np.asarray(optimum, float))
        ax.scatter(ox, oy, s=120, marker="*", color="cyan", edgecolors="k", label="h*")
    if runs is not None or optimum is not None:
        ax.legend(loc="upper right", fontsize=8)
    budget = ", ".join(f"{k} = {v:.3g}" for k, v in (("N", N), ("D", D)) if v is not None)
    blank = f"\nblank: the law overflows at {int((~finite).sum())} of {finite.size} points" if not finite.all() else ""
    title = f"{fit.law} law, {target or 'mean loss'}" + (f" at {budget}" if budget else "") + blank
    ax.set(aspect="equal", title=title)
    ax.set_axis_off()
    return fig


@_plain_text
def law_comparison(comparison: Comparison, *, fold: str | None = None) -> Figure:
    """Held-out MRE, R² and Spearman's rho per target (rows) and candidate (markers), each with its bootstrap
    interval (``compare_laws``), on one fold (default: every held-out row pooled); a filled marker is the
    target's winner by that metric."""
    fold = comparison.pooled_fold if fold is None else fold
    scores = comparison.scores[comparison.scores["fold"] == fold]
    if scores.empty:
        raise MixlawError(f"no fold {fold!r}; the folds are {', '.join(comparison.folds['fold'])}")
    targets, names = list(comparison.targets), list(comparison.candidates)
    fig, axes = _panels(3, ncols=3)
    fig.set_size_inches(PANEL * 1.1 * 3, max(PANEL, 0.45 * len(targets) * len(names) + 1.2))
    palette = colormaps["tab10"]
    offsets = np.linspace(-0.3, 0.3, len(names)) if len(names) > 1 else np.zeros(1)
    labels = {"mre": "held-out MRE (%)", "r2": "held-out R²", "spearman": "held-out Spearman rho"}
    for ax, metric in zip(axes, ("mre", "r2", "spearman")):
        winners = comparison.winners(metric)["winner"]
        for i, name in enumerate(names):
            rows = scores[(scores["candidate"] == name) & (scores["metric"] == metric)].set_index("target")
            rows = rows.loc[targets]
            y = np.arange(len(targets)) + offsets[i]
            color = palette(i % 10)
            ax.hlines(y, rows["low"], rows["high"], color=color, lw=1.2)
            won = (winners.loc[targets] == name).to_numpy()
            ax.scatter(rows["value"][won], y[won], color=color, s=30, zorder=3)
            ax.scatter(rows["value"][~won], y[~won], facecolors="white", edgecolors=color, s=30, zorder=3)
        ax.set_yticks(np.arange(len(targets)), targets)
        ax.invert_yaxis()
        ax.set(xlabel=labels[metric])
        ax.grid(axis="x", color="0.9")
    for ax in axes[1:]:
        ax.tick_params(labelleft=False)
    handles = [Line2D([], [], color=palette(i % 10), marker="o", lw=1.2, label=n) for i, n in enumerate(names)]
    axes[0].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(
        f"{comparison.split.describe()}; fold {fold}; {100 * comparison.level:.0f}% intervals over held-out "
        f"{comparison.resampled} (filled: winner)"
    )
    return fig
