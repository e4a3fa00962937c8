"""Choosing a law for a table: every candidate refitted on the training rows of each fold of a split, scored on the
held-out rows by MRE, R² and Spearman's rho, each with a bootstrap interval, and a winner per target.

Splits (frozen dataclasses, validated where they are made):

- :class:`HeldOut` — one fold: the rows where a selection (``selection``) holds are held out, e.g.
  ``HeldOut("model_size > 1.3e9")``.
- :class:`KFold` — k folds over mixtures: every distinct weight vector goes to one fold (all its rows, at every
  size and checkpoint, together), assigned by a seeded permutation; each fold is held out in turn.
- :class:`LeaveOneScaleOut` — each distinct model size N held out in turn (``largest_only=True``: only the
  largest, the usual extrapolation test).

Candidates follow a two-method protocol (:class:`Candidate`, :class:`Predictor`): ``candidate.fit(train)``
returns an object whose ``predict(test)`` gives a DataFrame with one column per target and one row per test row.
A law (a registered name or a :class:`Law`) becomes a :class:`LawCandidate`, whose ``fit`` is
:func:`mixlaw_jax.fit` (all targets in one engine call) and returns the :class:`FitResult`; any other predictor
(a pipeline, a regression baseline) implements the same two methods.

Scores, per candidate x target x fold and pooled over every held-out row (fold ``"all"``):

- MRE = 100 / n Σ_j |L̂_j − L_j| / L_j (%), as :func:`mixlaw_jax.metrics.mre`;
- R² = 1 − Σ_j (L_j − L̂_j)² / Σ_j (L_j − L̄)², L̄ the mean held-out loss;
- Spearman's rho: Pearson's correlation of the ranks of L̂ and of L (ties take their average rank; Spearman 1904).
  A candidate whose predictions are all equal ranks nothing: its rho is 0.

Intervals: a cluster bootstrap (Efron & Tibshirani 1993, percentile intervals) over the held-out *mixtures*
(distinct weight vectors; over runs for a table without mixtures): each replicate draws as many mixtures as the
fold holds, with replacement, and weights each held-out row by how often its mixture was drawn. The rows of one
mixture (its checkpoints and sizes) share the law's error in h, so they are resampled together. The same draws
serve every candidate and target, so differences between candidates are paired. Replicates in which a metric is
undefined (all drawn losses equal, for R² and rho) are left out of that metric's interval. The candidates are not
refitted per replicate: the interval is over which held-out points were drawn, not over the fits.

The winner of a target is the candidate with the lowest pooled held-out MRE (or the highest R² / rho when asked);
:meth:`Comparison.winners` says whether its interval overlaps the runner-up's, and in what fraction of the paired
replicates it beats the runner-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from . import _io
from .bootstrap import check_level
from .data import RunTable
from .errors import MixlawError
from .fitting import fit, progress_bar
from .laws import Law, get_law
from .options import MAX_SEED, Objective, ParameterBounds, Resources, Search, expect, whole_number
from .results import provenance
from .selection import select_rows

COMPARISON_SCHEMA_VERSION = 1
#: The fold label of the scores pooled over every held-out row.
ALL = "all"
#: Metric names, and whether a higher value is better.
METRICS = {"mre": False, "r2": True, "spearman": True}


# ------------------------------------------------------------------------------------------------------------ splits


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold of a split: a label and the row positions (in the table split) fitted and held out."""

    label: str
    train: np.ndarray
    test: np.ndarray


def mixture_ids(runs: RunTable) -> np.ndarray:
    """(rows,) the index of each row's mixture among the table's distinct weight vectors (0 for every row of a
    table without mixtures)."""
    if runs.k == 0:
        return np.zeros(runs.n_rows, dtype=np.int64)
    return np.unique(runs.h, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _fold(split, label: str, test: np.ndarray, n_rows: int) -> Fold:
    """The fold holding out the rows where ``test`` (boolean) is true; an empty side is a MixlawError naming the
    split, the fold and what is missing."""
    if not test.any():
        raise MixlawError(f"{split.describe()}: the test fold {label!r} is empty (no row is held out)")
    if test.all():
        raise MixlawError(
            f"{split.describe()}: the training fold of {label!r} is empty (every one of the {n_rows} rows is held out)"
        )
    return Fold(label, np.flatnonzero(~test), np.flatnonzero(test))


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """One fold: the rows where ``query`` holds are held out, the others fitted. ``query`` is a selection
    (``RunTable.query``), e.g. ``"model_size > 1.3e9"`` or ``"scale == '1b'"``."""

    query: str

    def __post_init__(self):
        if not isinstance(self.query, str) or not self.query.strip():
            raise MixlawError(f"HeldOut's query must be a non-empty selection string, not {self.query!r}")

    def describe(self) -> str:
        return f"held-out rows where {self.query}"

    def folds(self, runs: RunTable) -> tuple[Fold, ...]:
        test = select_rows(runs.frame, self.query, what="held-out selection")
        return (_fold(self, self.query, test, runs.n_rows),)

    def to_dict(self) -> dict:
        return {"split": "held_out", "query": self.query}


@dataclasses.dataclass(frozen=True)
class KFold:
    """``k`` folds over mixtures: the distinct weight vectors are shuffled by ``seed`` and dealt to the folds in
    turn (fold sizes differ by at most one mixture); every row of a mixture is in its mixture's fold."""

    k: int = 5
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "k", whole_number(self.k, "KFold's k", minimum=2))
        object.__setattr__(self, "seed", whole_number(self.seed, "KFold's seed", maximum=MAX_SEED))

    def describe(self) -> str:
        return f"{self.k}-fold over mixtures (seed {self.seed})"

    def folds(self, runs: RunTable) -> tuple[Fold, ...]:
        mixture = mixture_ids(runs)
        n_mixtures = int(mixture.max()) + 1
        if runs.k == 0:
            raise MixlawError(f"{self.describe()} needs a table with mixture weights; this table has none")
        if n_mixtures < self.k:
            raise MixlawError(
                f"{self.describe()} needs at least {self.k} distinct mixtures, one per fold; the table has "
                f"{n_mixtures}, so {self.k - n_mixtures} test folds would be empty"
            )
        fold_of_mixture = np.empty(n_mixtures, dtype=np.int64)
        fold_of_mixture[np.random.default_rng(self.seed).permutation(n_mixtures)] = np.arange(n_mixtures) % self.k
        fold_of_row = fold_of_mixture[mixture]
        return tuple(_fold(self, f"fold {i + 1}/{self.k}", fold_of_row == i, runs.n_rows) for i in range(self.k))

    def to_dict(self) -> dict:
        return {"split": "k_fold", "k": self.k, "seed": self.seed}


@dataclasses.dataclass(frozen=True)
class LeaveOneScaleOut:
    """Each distinct model size N held out in turn, the other sizes fitted (``largest_only``: only the largest
    size held out, one fold)."""

    largest_only: bool = False

    def __post_init__(self):
        if not isinstance(self.largest_only, bool):
            raise MixlawError(f"LeaveOneScaleOut's largest_only must be True or False, not {self.largest_only!r}")

    def describe(self) -> str:
        return "the largest model size held out" if self.largest_only else "leave one model size out"

    def folds(self, runs: RunTable) -> tuple[Fold, ...]:
        if runs.n is None:
            raise MixlawError(f"{self.describe()} needs a model-size (N) column; this table has none")
        sizes = np.unique(runs.n)
        if sizes.size < 2:
            raise MixlawError(
                f"{self.describe()}: the training fold is empty: the table has one model size "
                f"(N = {sizes[0]:.4g}), so holding it out leaves nothing to fit"
            )
        held = sizes[-1:] if self.largest_only else sizes
        return tuple(_fold(self, f"N = {n:.4g}", runs.n == n, runs.n_rows) for n in held)

    def to_dict(self) -> dict:
        return {"split": "leave_one_scale_out", "largest_only": self.largest_only}


Split = HeldOut | KFold | LeaveOneScaleOut
SPLITS = {"held_out": HeldOut, "k_fold": KFold, "leave_one_scale_out": LeaveOneScaleOut}


def split_from_dict(payload: Mapping) -> Split:
    """The split a ``to_dict`` describes."""
    fields = dict(payload)
    kind = fields.pop("split", None)
    if kind not in SPLITS:
        raise MixlawError(f"unknown split {kind!r}; one of {', '.join(SPLITS)}")
    return SPLITS[kind](**fields)


# -------------------------------------------------------------------------------------------------------- candidates


@runtime_checkable
class Predictor(Protocol):
    """What a candidate's ``fit`` returns: ``predict(test)`` gives a DataFrame with (at least) one column per target
    of ``test`` and one row per row of ``test``, in its order (a :class:`FitResult` is one)."""

    def predict(self, runs: RunTable) -> pd.DataFrame: ...


@runtime_checkable
class Candidate(Protocol):
    """A way of predicting losses that ``compare_laws`` can score: a ``name`` (unique in a comparison) and
    ``fit(train)``, which learns from the training rows (a :class:`RunTable`; fit every target it has) and returns a
    :class:`Predictor`.

    ``predict`` receives the held-out rows with their losses (and the frame's target columns) blanked to NaN: a
    candidate sees their weights, N, D and other columns, never what it is scored on. A candidate fitted for one
    prediction point (such as a pipeline fitted at (N*, D*)) may do its work in ``predict``, once per point the
    held-out rows need.
    """

    name: str

    def fit(self, train: RunTable) -> Predictor: ...


@dataclasses.dataclass(frozen=True)
class LawCandidate:
    """A law as a candidate: ``fit`` is :func:`mixlaw_jax.fit` with these options (every target in one engine
    call) and returns the :class:`FitResult`."""

    law: str | Law
    parameter_bounds: ParameterBounds = "default"
    objective: Objective = Objective()
    search: Search = Search()
    resources: Resources = Resources()
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "law", get_law(self.law) if isinstance(self.law, str) else self.law)
        expect(self.law, Law, "law")
        expect(self.objective, Objective, "objective")
        expect(self.search, Search, "search")
        expect(self.resources, Resources, "resources")

    @property
    def name(self) -> str:
        return self.law.name

    def fit(self, train: RunTable):
        return fit(
            train,
            self.law,
            parameter_bounds=self.parameter_bounds,
            objective=self.objective,
            search=self.search,
            resources=self.resources,
            progress=self.progress,
        )


def _only_targets(runs: RunTable, targets) -> RunTable:
    """``runs`` with only the named targets (all when None), in that order."""
    index = runs.target_index(targets)
    return dataclasses.replace(runs, losses=runs.losses[:, index], targets=tuple(runs.targets[i] for i in index))


def _blinded(test: RunTable, all_targets: Sequence[str]) -> RunTable:
    """``test`` with every loss, and every target column of its frame, set to NaN."""
    frame = test.frame.copy()
    frame[[t for t in all_targets if t in frame.columns]] = np.nan
    return dataclasses.replace(test, losses=np.full_like(test.losses, np.nan), frame=frame)


def _check_folds(runs: RunTable, split: Split, folds: Sequence[Fold]) -> None:
    """Every fold fits at least one observed loss of each target and holds out at least two distinct ones (R² and
    rho need two); otherwise a MixlawError naming the fold and the target."""
    for fold in folds:
        for j, t in enumerate(runs.targets):
            train, test = runs.losses[fold.train, j], runs.losses[fold.test, j]
            if not np.isfinite(train).any():
                raise MixlawError(
                    f"{split.describe()}: the training rows of fold {fold.label!r} have no observed {t!r} loss"
                )
            distinct = np.unique(test[np.isfinite(test)]).size
            if distinct < 2:
                raise MixlawError(
                    f"{split.describe()}: the test rows of fold {fold.label!r} hold {distinct} distinct observed "
                    f"{t!r} loss{'es' if distinct != 1 else ''}; R² and Spearman's rho need at least two"
                )


def _predicted(name: str, fold: Fold, frame, targets: Sequence[str]) -> np.ndarray:
    """A candidate's prediction frame as a (test rows, targets) array, checked for shape and finiteness."""
    if not isinstance(frame, pd.DataFrame):
        raise MixlawError(f"candidate {name!r}: predict must return a DataFrame, not {type(frame).__name__}")
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise MixlawError(f"candidate {name!r}, fold {fold.label!r}: the predictions have no column {missing[0]!r}")
    if len(frame) != fold.test.size:
        raise MixlawError(
            f"candidate {name!r}, fold {fold.label!r}: {len(frame)} predicted rows for {fold.test.size} test rows"
        )
    values = frame[list(targets)].to_numpy(float)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise MixlawError(
            f"candidate {name!r}, fold {fold.label!r}: non-finite prediction for {targets[col]!r} at test row {row}"
        )
    return values


def as_candidate(candidate, **options) -> Candidate:
    """``candidate`` when it follows the :class:`Candidate` protocol; a law name or :class:`Law` as a
    :class:`LawCandidate` with ``options``."""
    if isinstance(candidate, (str, Law)):
        return LawCandidate(candidate, **options)
    if isinstance(candidate, Candidate) and isinstance(candidate.name, str):
        return candidate
    raise MixlawError(
        f"a candidate must be a law name, a mixlaw_jax.Law or an object with a name and fit(train) -> predictor, "
        f"not {candidate!r}"
    )


def compare_laws(
    runs: RunTable,
    candidates: Sequence,
    *,
    split: Split = KFold(),
    targets: Sequence[str] | None = None,
    parameter_bounds: ParameterBounds = "default",
    objective: Objective = Objective(),
    search: Search = Search(),
    resources: Resources = Resources(),
    n_replicates: int = 1000,
    level: float = 0.95,
    progress: bool = False,
) -> Comparison:
    """Refit every candidate on the training rows of each fold of ``split`` and score it on the held-out rows.

    Args:
      runs: the run table (``load_runs``).
      candidates: law names, :class:`Law` objects, or objects following the :class:`Candidate` protocol; names
        must differ.
      split: :class:`HeldOut`, :class:`KFold` (default: 5 folds over mixtures) or :class:`LeaveOneScaleOut`.
      targets: target columns scored (default: all); a law fits them all in one call per fold.
      parameter_bounds, objective, search, resources: each law's fit (:func:`mixlaw_jax.fit`); ``search.seed`` also
        seeds the bootstrap draws.
      n_replicates: bootstrap replicates of the held-out mixtures behind each interval.
      level: coverage of the percentile intervals.
      progress: a progress bar over folds x candidates.

    Returns:
      A :class:`Comparison`: the scores per candidate x target x fold (and pooled, fold ``"all"``) with intervals,
      and the winner per target.

    Raises:
      MixlawError: for a split that leaves a fold empty (naming the fold and what is missing), a fold without an
        observed loss of a target, bad options, or a candidate whose predictions are malformed or non-finite.
    """
    expect(search, Search, "search")
    options = dict(parameter_bounds=parameter_bounds, objective=objective, search=search, resources=resources)
    if isinstance(candidates, (str, Law)) or not isinstance(candidates, Sequence) or not candidates:
        raise MixlawError(f"candidates must be a non-empty list of laws or candidates, not {candidates!r}")
    chosen = [as_candidate(c, **options) for c in candidates]
    names = [c.name for c in chosen]
    for name in names:
        if names.count(name) > 1:
            raise MixlawError(f"candidate {name!r} is named more than once")
    if not isinstance(split, (HeldOut, KFold, LeaveOneScaleOut)):
        raise MixlawError(
            f"split must be a mixlaw_jax.HeldOut, KFold or LeaveOneScaleOut, not {type(split).__name__} ({split!r})"
        )
    n_replicates = whole_number(n_replicates, "n_replicates", minimum=2)
    level = check_level(level)
    table = _only_targets(runs, targets)
    folds = split.folds(table)
    _check_folds(table, split, folds)
    predictions = {name: [] for name in names}
    update, close = progress_bar(len(folds) * len(chosen), "fits done", progress)
    try:
        for fold in folds:
            train, test = table.subset(fold.train), _blinded(table.subset(fold.test), runs.targets)
            for candidate in chosen:
                try:
                    fitted = candidate.fit(train)
                    frame = fitted.predict(test)
                except MixlawError as err:
                    raise MixlawError(f"candidate {candidate.name!r}, fold {fold.label!r}: {err}") from None
                predictions[candidate.name].append(_predicted(candidate.name, fold, frame, table.targets))
                if update:
                    update(sum(map(len, predictions.values())), len(folds) * len(chosen))
    finally:
        close()
    return _score(table, split, folds, predictions, n_replicates, level, search.seed)


def compare_predictions(
    runs: RunTable,
    split: Split,
    predictions: Mapping[str, Sequence[pd.DataFrame]],
    *,
    targets: Sequence[str] | None = None,
    n_replicates: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Score predictions already made for the held-out rows of each fold of ``split`` (``split.folds(runs)``, in
    that order): ``predictions`` maps a candidate's name to one DataFrame per fold, as ``Predictor.predict`` returns.
    This is the scoring of :func:`compare_laws` without the fits (the report scores its own fits with it)."""
    n_replicates = whole_number(n_replicates, "n_replicates", minimum=2)
    level = check_level(level)
    table = _only_targets(runs, targets)
    folds = split.folds(table)
    _check_folds(table, split, folds)
    arrays = {}
    for name, frames in predictions.items():
        if len(frames) != len(folds):
            raise MixlawError(f"candidate {name!r}: {len(frames)} prediction frames for {len(folds)} folds")
        arrays[name] = [_predicted(name, fold, f, table.targets) for fold, f in zip(folds, frames)]
    if not arrays:
        raise MixlawError("no predictions to score")
    return _score(table, split, folds, arrays, n_replicates, level, whole_number(seed, "seed"))


# ----------------------------------------------------------------------------------------------------------- metrics


def weighted_metrics(observed: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """MRE (%), R² and Spearman's rho of ``predicted`` against ``observed`` (both (rows,)) for each row of
    ``weights`` (replicates, rows): a weight counts how often a row is drawn (1 everywhere: the plain metrics).

    With w the counts, W = Σ w: MRE = 100 Σ w |L̂ − L| / L / W; R² = 1 − Σ w (L − L̂)² / Σ w (L − L̄_w)²; rho is the
    w-weighted Pearson correlation of the average ranks of L̂ and L in the multiset the counts describe (a value
    drawn m times after b smaller ones has rank b + (m + 1) / 2). Undefined values (W = 0, constant drawn losses)
    are NaN; rho is 0 when the drawn predictions are constant.
    """
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    weights = np.atleast_2d(np.asarray(weights, float))
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mre = 100.0 * (weights @ (np.abs(predicted - observed) / observed)) / total
        mean = (weights @ observed) / total
        spread = (weights * (observed[None] - mean[:, None]) ** 2).sum(axis=1)
        r2 = 1.0 - (weights @ (observed - predicted) ** 2) / np.where(spread > 0, spread, np.nan)
        rank_p, rank_o = _weighted_ranks(predicted, weights), _weighted_ranks(observed, weights)
        rho = _weighted_correlation(rank_p, rank_o, weights, total)
    return {"mre": mre, "r2": r2, "spearman": rho}


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(replicates, rows) average ranks of each row's value among the rows counted ``weights`` times."""
    distinct, group = np.unique(values, return_inverse=True)
    counts = np.zeros((weights.shape[0], distinct.size))
    np.add.at(counts.T, group.reshape(-1), weights.T)
    below = np.cumsum(counts, axis=1) - counts
    return (below + (counts + 1.0) / 2.0)[:, group.reshape(-1)]


def _weighted_correlation(a: np.ndarray, b: np.ndarray, weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation per replicate; 0 where ``a`` is constant, NaN where ``b`` is."""
    mean_a = (weights * a).sum(axis=1) / total
    mean_b = (weights * b).sum(axis=1) / total
    da, db = a - mean_a[:, None], b - mean_b[:, None]
    var_a, var_b = (weights * da**2).sum(axis=1), (weights * db**2).sum(axis=1)
    cov = (weights * da * db).sum(axis=1)
    scale = np.sqrt(var_a * var_b)
    tiny = 1e-12 * np.maximum(total, 1.0) ** 3
    rho = np.where(var_a > tiny, cov / np.where(scale > 0, scale, np.nan), 0.0)
    return np.where(var_b > tiny, rho, np.nan)


def _cluster_weights(clusters: np.ndarray, n_replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + n_replicates, rows): ones (the point estimate), then per replicate how often each row's cluster was
    drawn when drawing as many clusters as there are, with replacement."""
    distinct, index = np.unique(clusters, return_inverse=True)
    draws = rng.integers(0, distinct.size, size=(n_replicates, distinct.size))
    counts = np.zeros((n_replicates, distinct.size))
    np.add.at(counts, (np.arange(n_replicates)[:, None], draws), 1.0)
    return np.vstack([np.ones(clusters.size), counts[:, index.reshape(-1)]])


def _score(
    table: RunTable, split: Split, folds, predictions: dict, n_replicates: int, level: float, seed: int
) -> Comparison:
    """Metrics with paired cluster-bootstrap intervals per candidate x target x fold, pooled over folds as ``ALL``,
    and the winners."""
    clusters = mixture_ids(table) if table.k else table.run_id
    rng = np.random.default_rng(seed)
    tail = 100 * (1 - level) / 2
    pooled_rows = np.concatenate([f.test for f in folds])
    groups = [(f.label, f.test, [p[i] for p in predictions.values()]) for i, f in enumerate(folds)]
    if len(folds) > 1:
        groups.append((ALL, pooled_rows, [np.concatenate(p) for p in predictions.values()]))
    names = list(predictions)
    records, draws_all = [], {}
    for label, rows, predicted in groups:
        weights = _cluster_weights(clusters[rows], n_replicates, rng)
        for j, target in enumerate(table.targets):
            observed = table.losses[rows, j]
            ok = np.isfinite(observed)
            for name, values in zip(names, predicted):
                scores = weighted_metrics(observed[ok], values[ok, j], weights[:, ok])
                for metric, series in scores.items():
                    replicates = series[1:][np.isfinite(series[1:])]
                    if replicates.size == 0:
                        raise MixlawError(
                            f"fold {label!r}, {target!r}: no bootstrap replicate of the held-out mixtures "
                            f"gives a defined {metric}"
                        )
                    low, high = np.percentile(replicates, [tail, 100 - tail])
                    records.append((name, target, label, metric, float(series[0]), float(low), float(high)))
                    if label == ALL or len(folds) == 1:
                        draws_all[name, target, metric] = series
    scores = pd.DataFrame(records, columns=["candidate", "target", "fold", "metric", "value", "low", "high"])
    fold_table = pd.DataFrame(
        {
            "fold": [f.label for f in folds],
            "train_rows": [f.train.size for f in folds],
            "test_rows": [f.test.size for f in folds],
            "test_mixtures": [np.unique(clusters[f.test]).size for f in folds],
        }
    )
    return Comparison(
        split=split,
        candidates=tuple(names),
        targets=table.targets,
        folds=fold_table,
        scores=scores,
        winner_table=_winners(scores, draws_all, names, table.targets, ALL if len(folds) > 1 else folds[0].label),
        n_replicates=n_replicates,
        level=level,
        resampled="mixtures" if table.k else "runs",
        provenance=provenance(seed, table.hash()),
    )


def _winners(scores: pd.DataFrame, draws: dict, names: list[str], targets, fold: str) -> pd.DataFrame:
    """Per target and metric: the best candidate on the pooled scores, the runner-up, whether their intervals
    overlap, and the fraction of paired replicates in which the winner is better."""
    rows = []
    pooled = scores[scores["fold"] == fold].set_index(["candidate", "target", "metric"])
    for metric, higher in METRICS.items():
        for target in targets:
            ranked = sorted(names, key=lambda n: pooled.loc[(n, target, metric), "value"], reverse=higher)
            best = pooled.loc[(ranked[0], target, metric)]
            row = {
                "metric": metric,
                "target": target,
                "winner": ranked[0],
                "value": float(best["value"]),
                "low": float(best["low"]),
                "high": float(best["high"]),
                "runner_up": None,
                "runner_up_value": None,
                "intervals_overlap": None,
                "fraction_better": None,
            }
            if len(ranked) > 1:
                second = pooled.loc[(ranked[1], target, metric)]
                a, b = draws[ranked[0], target, metric][1:], draws[ranked[1], target, metric][1:]
                defined = np.isfinite(a) & np.isfinite(b)
                better = a[defined] > b[defined] if higher else a[defined] < b[defined]
                row.update(
                    runner_up=ranked[1],
                    runner_up_value=float(second["value"]),
                    intervals_overlap=bool(best["low"] <= second["high"] and second["low"] <= best["high"]),
                    fraction_better=float(better.mean()) if better.size else None,
                )
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------------ result


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The scores of several candidates under one split.

    Attributes:
      split: the split (:class:`HeldOut`, :class:`KFold`, :class:`LeaveOneScaleOut`).
      candidates, targets: names, in order.
      folds: one row per fold: its label, training and test rows, and held-out mixtures.
      scores: the tidy table: candidate, target, fold (a fold's label, or ``"all"``: every held-out row pooled,
        when there are several folds), metric (``mre`` in %, ``r2``, ``spearman``), value, low, high (the bootstrap
        percentile interval at ``level``).
      winner_table: per metric and target, the winner on the pooled scores (see :meth:`winners`).
      n_replicates, level: the bootstrap behind the intervals; ``resampled``: its unit, ``"mixtures"`` (or
        ``"runs"`` for a table without mixtures).
      provenance: seed, the scored table's hash and package versions.
    """

    split: Split
    candidates: tuple[str, ...]
    targets: tuple[str, ...]
    folds: pd.DataFrame
    scores: pd.DataFrame
    winner_table: pd.DataFrame
    n_replicates: int
    level: float
    resampled: str
    provenance: dict

    @property
    def pooled_fold(self) -> str:
        """The label of the scores over every held-out row: ``"all"``, or the single fold's label."""
        return ALL if len(self.folds) > 1 else str(self.folds["fold"].iloc[0])

    def winners(self, metric: str = "mre") -> pd.DataFrame:
        """One row per target: the winner by pooled held-out ``metric`` (lowest MRE, highest R² or rho), its value
        and interval, the runner-up and its value, whether the two intervals overlap (if they do, the data do not
        separate the two), and the fraction of paired bootstrap replicates in which the winner is better."""
        if metric not in METRICS:
            raise MixlawError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
        chosen = self.winner_table[self.winner_table["metric"] == metric]
        return chosen.drop(columns="metric").set_index("target")

    def table(self, metric: str = "mre", fold: str | None = None) -> pd.DataFrame:
        """target x candidate text cells ``value [low, high]`` of one metric on one fold (default: pooled)."""
        if metric not in METRICS:
            raise MixlawError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
        fold = self.pooled_fold if fold is None else fold
        chosen = self.scores[(self.scores["metric"] == metric) & (self.scores["fold"] == fold)]
        if chosen.empty:
            raise MixlawError(f"no fold {fold!r}; the folds are {', '.join(self.folds['fold'])}")
        digits = 3 if metric == "mre" else 4
        text = chosen.assign(
            cell=[
                f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
                for v, lo, hi in chosen[["value", "low", "high"]].to_numpy()
            ]
        )
        frame = text.pivot(index="target", columns="candidate", values="cell")
        return frame.loc[list(self.targets), list(self.candidates)]

    def per_fold(self, metric: str = "mre") -> pd.DataFrame:
        """(fold, target) x candidate: one metric's value on each fold's held-out rows (folds in split order)."""
        if metric not in METRICS:
            raise MixlawError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
        chosen = self.scores[(self.scores["metric"] == metric) & (self.scores["fold"] != ALL)]
        frame = chosen.pivot(index=["fold", "target"], columns="candidate", values="value")
        order = pd.MultiIndex.from_product([list(self.folds["fold"]), list(self.targets)], names=["fold", "target"])
        return frame.loc[order, list(self.candidates)]

    def to_dict(self) -> dict:
        return {
            "kind": "comparison",
            "schema_version": COMPARISON_SCHEMA_VERSION,
            "split": self.split.to_dict(),
            "split_description": self.split.describe(),
            "candidates": list(self.candidates),
            "targets": list(self.targets),
            "folds": self.folds.to_dict(orient="records"),
            "n_replicates": self.n_replicates,
            "level": self.level,
            "resampled": self.resampled,
            "scores": self.scores.to_dict(orient="records"),
            "winners": self.winner_table.to_dict(orient="records"),
            "provenance": self.provenance,
        }

    def save(self, path) -> None:
        """Write the comparison as versioned JSON, atomically (a crash leaves the old file or none)."""
        _io.atomic_write_json(path, _plain(self.to_dict()))


def _plain(tree):
    """numpy scalars as Python numbers, for JSON."""
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def load_comparison(path) -> Comparison:
    """A comparison written by :meth:`Comparison.save`."""
    p = _io.read_json(path, "comparison", COMPARISON_SCHEMA_VERSION)
    return Comparison(
        split=split_from_dict(p["split"]),
        candidates=tuple(p["candidates"]),
        targets=tuple(p["targets"]),
        folds=pd.DataFrame(p["folds"]),
        scores=pd.DataFrame(p["scores"]),
        winner_table=pd.DataFrame(p["winners"]),
        n_replicates=p["n_replicates"],
        level=p["level"],
        resampled=p["resampled"],
        provenance=p["provenance"],
    )
