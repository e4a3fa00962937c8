"""Ye et al.'s nested pipeline: predict losses at a large (N*, D*) for any mixture from small runs, and find h* there.

Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language Modeling Performance" (arXiv
2403.16952, sec. 4, "nested use of scaling laws"; their code: github.com/yegcjs/mixinglaws, ``pipeline/``) chain three
fits, each one engine call (``engine.solve``) over every problem of its stage:

(a) **step law**, per run r (one mixture h, one size N) and target t, over the run's checkpoints D:

        L_rt(D) = E + B / D^beta,

    predicted at the target D*. (Ye et al. write it in steps S as exp(log c) + (S_0 / S)^beta, the same family with
    B = S_0^beta; the rows are the union of the distinct D of every run, NaN (weight 0) where a run has no checkpoint.)
(b) **size law**, per mixture m and target t, over the sizes N at which the mixture was trained, of the step-law
    predictions at D*:

        L_mt(N) = E + A / N^alpha,

    predicted at N*. (Rows: the distinct N.)
(c) **mixing law** over the mixtures at (N*, D*): any mixture-only law (``uses_n`` and ``uses_d`` False), by default
    Ye et al.'s data mixing law ``mixing_exp`` (sec. 3), L_t(h) = c + k exp(sum_j t_j h_j). Its fit predicts every
    target at (N*, D*) for any mixture and gives h* (``mixture.optimal_mixture``).

Each law is fitted independently per problem. Ye et al. share the step exponent across validation domains of a
run and the size exponent across every mixture and domain (``tie_alpha``); with independent exponents a mixture
needs as many sizes as the size law has parameters.

**Too little data** is never dropped silently. A (run, target) with fewer distinct checkpoints than the step law's 3
parameters, and a (mixture, target) seen at fewer distinct sizes than the size law's 3 parameters, are left out of
the later stages with a MixlawWarning naming them (all of them: ``NestedResult.excluded``). A target left with fewer
mixtures than the mixing law has parameters, or a table with nothing to fit at some stage, is a MixlawError.

**Bootstrap** (Efron & Tibshirani 1993, percentile intervals), propagated through all three stages: R replicates
resample the runs with replacement; run r drawn c_rb times in replicate b. A run's step-law fit involves no other run,
so every replicate reuses stage (a). Stage (b) fits each replicate's (mixture, target) problem with row weights
c_rb (runs drawn at fewer than 3 distinct sizes make that replicate's problem unidentifiable: it is left out of
the replicate's stage c); stage (c) fits each replicate's target problem to those predictions with mixture weight
the mean draw count of the mixture's runs. The replicates are extra problems of the same two engine calls; the
replicate mixing-law coordinates form a :class:`~mixlaw_jax.bootstrap.BootstrapResult` around the stage-(c) fit,
which gives prediction intervals and h* intervals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .bootstrap import BootstrapResult, check_level, resample_weights
from .data import RunTable
from .engine import make_problems, solve
from .errors import MixlawError, warn_user
from .fitting import build_result, check_run_table, json_bounds, prepare, progress_bar
from .laws import Inputs, Law, Param, get_law
from .laws.data_mixing import fewer_latent_domains
from .laws.scaling import EXPONENT_BOUNDS, OFFSET_BOUNDS, TERM_INIT
from .mixture import optimal_mixture
from .options import Objective, Resources, Search, expect, real_number, whole_number
from .results import FitResult, FitSettings, predict_all, provenance


def _power_law(name: str, variable: str, coefficient: str, exponent: str) -> Law:
    """L(X) = E + c / X^e in one variable X (``"n"``: N, ``"d"``: D), registered under ``name``."""
    log_x = "log_n" if variable == "n" else "log_d"

    def terms(p: dict, x: Inputs):
        return p["E"] * jnp.ones_like(getattr(x, log_x)), (p[coefficient] - p[exponent] * getattr(x, log_x))[None]

    return get_law(
        Law(
            name,
            (
                Param("E", init=(0.0, 3.0), bounds=OFFSET_BOUNDS),
                Param(coefficient, positive=True, init=TERM_INIT, init_centre=(exponent, variable)),
                Param(exponent, init=(0.05, 1.2), bounds=EXPONENT_BOUNDS),
            ),
            terms,
            uses_n=variable == "n",
            uses_d=variable == "d",
            formula=f"L({variable.upper()}) = E + {coefficient}/{variable.upper()}^{exponent}",
            term_scales=((coefficient, 1.0),),
        )
    )


#: Stage (a): the loss of one run along its checkpoints (Ye et al. 2024, sec. 4): L(D) = E + B/D^beta.
STEP_LAW = _power_law("token_power", "d", "B", "beta")
#: Stage (b): the loss of one mixture across model sizes at D* (Ye et al. 2024, sec. 4): L(N) = E + A/N^alpha.
SIZE_LAW = _power_law("size_power", "n", "A", "alpha")

#: The step and size laws have three parameters and one nonlinear one (the exponent; E and the coefficient are
#: profiled by the screen), so a few hundred starts find their optimum.
POWER_LAW_SEARCH = Search(256, ((16, 50), (4, 150)))
#: The mixing stage: fewer starts than a fit's default, since it runs once per target and bootstrap replicate.
MIXING_SEARCH = Search(4096, ((128, 40), (16, 150), (4, 300)))


@dataclasses.dataclass(frozen=True)
class NestedSearch:
    """The search of each stage of :func:`nested_pipeline` (``Search``): step law, size law, mixing law. The mixing
    stage's seed also draws the bootstrap resamples."""

    step: Search = POWER_LAW_SEARCH
    size: Search = POWER_LAW_SEARCH
    mixing: Search = MIXING_SEARCH

    def __post_init__(self):
        for field in dataclasses.fields(self):
            expect(getattr(self, field.name), Search, f"NestedSearch.{field.name}")

    @classmethod
    def of(cls, search) -> NestedSearch:
        """A NestedSearch, or one Search used for every stage."""
        if isinstance(search, Search):
            return cls(search, search, search)
        return expect(search, cls, "search")


@dataclasses.dataclass
class StageFit:
    """One stage of the pipeline: the fit of its point problems and what went into its engine call.

    Attributes:
      stage: ``"step"``, ``"size"`` or ``"mixing"``.
      fit: the :class:`FitResult` of the stage's point problems; its targets are the problem labels
        (``"run 3: arxiv_loss"``, ``"mixture 7: arxiv_loss"``, or the target itself in the mixing stage).
      problems: one row per point problem: the run or mixture, the target, the observed rows, the prediction at
        the stage's scale (D* for the step stage, N* for the size stage), the objective and the status.
      n_engine_problems: problems in the stage's one engine call (point problems and bootstrap replicates).
      n_rows: rows of the call's shared layout.
    """

    stage: str
    fit: FitResult
    problems: pd.DataFrame
    n_engine_problems: int
    n_rows: int

    def summary(self) -> dict:
        """Problems, engine problems, rows, converged fraction, median and largest objective, statuses seen."""
        d = self.fit.diagnostics.values()
        return {
            "stage": self.stage,
            "law": self.fit.law,
            "problems": len(self.problems),
            "engine_problems": self.n_engine_problems,
            "rows": self.n_rows,
            "converged": float(np.mean([x.converged for x in d])),
            "median_objective": float(np.median(self.fit.objective)),
            "max_objective": float(np.max(self.fit.objective)),
            "statuses": ", ".join(sorted({x.status.label for x in d})),
        }


@dataclasses.dataclass
class NestedResult:
    """The nested pipeline's predictions at (N*, D*) and its stages.

    Attributes:
      N, D: the target model size N* and training tokens D*.
      targets: the targets predicted.
      step, size, mixing: the three stages (:class:`StageFit`); ``mixing.fit`` is the mixing law fitted at
        (N*, D*), a :class:`FitResult` over the table's weight columns.
      mixtures: one row per mixture of the table (its id): the weights, the model sizes it was trained at, and
        ``fitted``: whether the mixing law was fitted to it for every target (a mixture left out of the size
        stage is predicted by extrapolating the mixing law, like any new mixture).
      excluded: what was left out and why: stage, run or mixture, target, reason (empty when nothing was).
      bootstrap: the replicate mixing-law fits (a :class:`BootstrapResult` around ``mixing.fit``), or None.
    """

    N: float
    D: float
    targets: tuple[str, ...]
    step: StageFit
    size: StageFit
    mixing: StageFit
    mixtures: pd.DataFrame
    excluded: pd.DataFrame
    bootstrap: BootstrapResult | None = None

    @property
    def stages(self) -> tuple[StageFit, StageFit, StageFit]:
        return self.step, self.size, self.mixing

    def predict(self, runs) -> pd.DataFrame:
        """Every target's predicted loss at (N*, D*) for the mixtures of a RunTable, DataFrame or file (its N and D
        columns, if any, are not used: the prediction is at N*, D*)."""
        return self.mixing.fit.predict(runs)

    def predict_interval(self, runs, level: float | None = None) -> pd.DataFrame:
        """Predictions at (N*, D*) with bootstrap percentile intervals: columns ``t``, ``t_lo``, ``t_hi``."""
        return self._bootstrap().predict_interval(runs, level)

    def optimal_mixture(self, **options):
        """h* at (N*, D*) of the stage-(c) law (:func:`mixlaw_jax.optimal_mixture` options, without N and D)."""
        return optimal_mixture(self.mixing.fit, **options)

    def mixture_interval(self, **options) -> pd.DataFrame:
        """h* at (N*, D*) with bootstrap percentile intervals (``BootstrapResult.mixture_interval`` options)."""
        return self._bootstrap().mixture_interval(**options)

    def summary(self) -> pd.DataFrame:
        """One row per stage (``StageFit.summary``)."""
        return pd.DataFrame([s.summary() for s in self.stages]).set_index("stage")

    def _bootstrap(self) -> BootstrapResult:
        if self.bootstrap is None:
            raise MixlawError("this pipeline ran without bootstrap replicates: pass n_replicates >= 2")
        return self.bootstrap

    def to_dict(self) -> dict:
        """JSON-ready summary: N*, D*, the stages' summaries, the mixing fit, h*, and what was excluded."""
        best = self.optimal_mixture()
        return {
            "kind": "nested",
            "N": self.N,
            "D": self.D,
            "targets": list(self.targets),
            "stages": self.summary().reset_index().to_dict(orient="records"),
            "mixing_fit": self.mixing.fit.to_dict(),
            "h_star": dict(zip(best.domains, best.h[0, -1].tolist())),
            "loss_at_h_star": dict(zip(best.targets, best.loss[0, -1].tolist())),
            "excluded": self.excluded.to_dict(orient="records"),
            "n_replicates": 0 if self.bootstrap is None else self.bootstrap.n_replicates,
        }


EXCLUDED_COLUMNS = ["stage", "unit", "target", "reason"]


def nested_pipeline(
    runs: RunTable,
    *,
    N,
    D,
    mixing_law: str | Law = "mixing_exp",
    targets: Sequence[str] | None = None,
    n_replicates: int = 0,
    level: float = 0.95,
    objective: Objective = Objective(),
    search: Search | NestedSearch = NestedSearch(),
    resources: Resources = Resources(),
    progress: bool = False,
) -> NestedResult:
    """Ye et al.'s nested pipeline (module docstring): step law per run, size law per mixture, mixing law at
    (N*, D*); one engine call per stage over every run / mixture x target (x bootstrap replicate).

    Args:
      runs: a :class:`RunTable` with mixture weights, N and D (``load_runs``); a run is one mixture at one size,
        its rows its checkpoints.
      N, D: the target model size N* and training tokens D* (> 0).
      mixing_law: a registered mixture-only law (``uses_n`` and ``uses_d`` False) or such a :class:`Law`.
      targets: subset of target columns (default: all).
      n_replicates: run-level bootstrap replicates R (0: none; otherwise >= 2).
      level: default coverage of the bootstrap intervals.
      objective: every stage's objective (:class:`Objective`); parameters keep their default bounds.
      search: a :class:`NestedSearch` (one Search per stage) or one :class:`Search` for every stage.
      resources: devices and memory budget of each engine call.
      progress: progress bars.

    Returns:
      A :class:`NestedResult`.
    """
    check_run_table(runs)
    n_star, d_star = (_positive(v, name) for v, name in ((N, "N"), (D, "D")))
    law = _mixing_law(mixing_law)
    n_replicates = whole_number(n_replicates, "n_replicates")
    if n_replicates == 1:
        raise MixlawError("n_replicates must be 0 (no bootstrap) or >= 2, not 1")
    level = check_level(level)
    searches = NestedSearch.of(search)
    expect(objective, Objective, "objective")
    expect(resources, Resources, "resources")
    for values, what in ((runs.n, "N (model size)"), (runs.d, "D (training tokens)")):
        if values is None:
            raise MixlawError(f"the nested pipeline needs {what}, and the run table has no such column")
    if runs.k < 2:
        raise MixlawError(
            f"the nested pipeline fits a mixing law over mixtures of two or more domains; the run table has "
            f"{runs.k} weight columns"
        )
    index = runs.target_index(targets)
    chosen = [runs.targets[j] for j in index]
    layout = _RunLayout.of(runs)
    counts = (
        resample_weights(runs, n_replicates, "runs", searches.mixing.seed)[:, layout.first_row]
        if n_replicates
        else np.zeros((0, layout.n_runs))
    )
    checkpoints = _checkpoint_counts(runs, index)
    _check_feasible(checkpoints, layout, chosen, law, runs.k)
    options = (objective, resources, progress)
    excluded: list[dict] = []
    step, step_pred = _step_stage(runs, layout, index, checkpoints, d_star, searches.step, options, excluded)
    size, size_pred, size_reps = _size_stage(
        layout, chosen, step_pred, n_star, counts, searches.size, options, excluded
    )
    mixing, boot = _mixing_stage(
        runs, layout, law, chosen, size_pred, size_reps, counts, level, searches.mixing, options
    )
    return NestedResult(
        N=n_star,
        D=d_star,
        targets=tuple(mixing.fit.targets),
        step=step,
        size=size,
        mixing=mixing,
        mixtures=layout.describe(runs).assign(fitted=np.isfinite(size_pred).all(axis=1)),
        excluded=pd.DataFrame(excluded, columns=EXCLUDED_COLUMNS),
        bootstrap=boot,
    )


def _positive(value, name: str) -> float:
    value = real_number(value, name)
    if value <= 0:
        raise MixlawError(
            f"{name} (the target {'model size' if name == 'N' else 'training tokens'}) must be > 0, not {value!r}"
        )
    return value


def _mixing_law(mixing_law) -> Law:
    law = get_law(mixing_law)
    if law.uses_n or law.uses_d:
        uses = " and ".join(v for v, used in (("N", law.uses_n), ("D", law.uses_d)) if used)
        raise MixlawError(
            f"the nested pipeline's mixing law must be a mixture-only law at fixed (N*, D*); law {law.name!r} uses "
            f"{uses} (mixture-only laws: e.g. 'mixing_exp')"
        )
    if not law.uses_h:
        raise MixlawError(f"the nested pipeline's mixing law must depend on the mixture; law {law.name!r} does not")
    return law


@dataclasses.dataclass(frozen=True)
class _RunLayout:
    """Runs and mixtures of a table: each run's size, mixture and first row; each mixture's weights."""

    run_n: np.ndarray  # (runs,) model size of each run
    run_mixture: np.ndarray  # (runs,) mixture id of each run
    first_row: np.ndarray  # (runs,) position of each run's first row
    mixture_h: np.ndarray  # (mixtures, k)
    row_labels: np.ndarray  # source row labels

    @property
    def n_runs(self) -> int:
        return len(self.run_n)

    @property
    def n_mixtures(self) -> int:
        return len(self.mixture_h)

    @classmethod
    def of(cls, runs: RunTable) -> _RunLayout:
        """Checks that every run has one size and one mixture; mixtures numbered in order of first appearance."""
        _, first_row = np.unique(runs.run_id, return_index=True)
        for values, what in ((runs.n[:, None], "model sizes"), (runs.h, "mixtures")):
            differs = np.flatnonzero((values != values[first_row][runs.run_id]).any(axis=1))
            if differs.size:
                row = int(differs[0])
                raise MixlawError(
                    f"row {runs.frame.index[row]}: run {runs.run_id[row]} has several {what}; a run is one model "
                    f"(one mixture, one size) and its rows are its checkpoints (check the run id column)"
                )
        mixtures, first, inverse = np.unique(runs.h[first_row], axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first_row[first])  # mixture ids in order of first appearance in the table
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return cls(
            run_n=runs.n[first_row],
            run_mixture=rank[inverse.reshape(-1)],
            first_row=first_row,
            mixture_h=mixtures[order],
            row_labels=runs.frame.index.to_numpy(),
        )

    def run_label(self, r: int) -> str:
        return f"run {r} (row {self.row_labels[self.first_row[r]]}, N = {self.run_n[r]:.4g})"

    def mixture_label(self, m: int) -> str:
        first = self.first_row[np.flatnonzero(self.run_mixture == m)[0]]
        return f"mixture {m} (row {self.row_labels[first]})"

    def describe(self, runs: RunTable) -> pd.DataFrame:
        frame = pd.DataFrame(self.mixture_h, columns=list(runs.weight_columns))
        frame["sizes"] = [sorted({float(n) for n in self.run_n[self.run_mixture == m]}) for m in range(self.n_mixtures)]
        frame.index.name = "mixture"
        return frame


def _slots(group: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A shared row layout: item i goes to the row of (value_i, how many earlier items of its group have that value),
    so that problems (groups) with different values share rows. Returns (row of each item, value of each row)."""
    occurrence = np.zeros(len(value), dtype=np.int64)
    seen: dict = {}
    for i, key in enumerate(zip(group.tolist(), value.tolist())):
        occurrence[i] = seen.get(key, 0)
        seen[key] = occurrence[i] + 1
    keys, row = np.unique(np.stack([value, occurrence.astype(float)], axis=1), axis=0, return_inverse=True)
    return row.reshape(-1), keys[:, 0]


def _stage_table(losses: np.ndarray, labels: list[str], *, n=None, d=None, h=None, weight_columns=()) -> RunTable:
    """A run table whose 'targets' are a stage's problems (one column each) on the stage's shared rows."""
    rows = losses.shape[0]
    h = np.zeros((rows, 0)) if h is None else h
    frame = pd.DataFrame(losses, columns=labels)
    return RunTable(
        h=h,
        n=n,
        d=d,
        losses=losses,
        run_id=np.arange(rows),
        weight_columns=tuple(weight_columns),
        targets=tuple(labels),
        frame=frame,
        n_column=None if n is None else "N",
        d_column=None if d is None else "D",
    )


def _solve_stage(law, table: RunTable, y, w, search: Search, options, desc: str):
    """The stage's one engine call: the table's point problems (weight 1) followed by the extra problems (y, w).

    Returns (point FitResult, the extra problems' law coordinates, the extra problems' ``Solution``)."""
    objective, resources, progress = options
    law, _, x, space, y_point = prepare(table, law, None, objective, "default")
    n_point = y_point.shape[0]
    problems = make_problems(
        np.concatenate([y_point, y]),
        np.concatenate([np.ones_like(y_point), w]),
        objective.loss_space,
        objective.reduction,
    )
    update, close = progress_bar(len(search.schedule), desc, progress)
    try:
        solution = solve(space, x, problems, search, delta=objective.huber_delta, resources=resources, progress=update)
    finally:
        close()

    def part(rows: slice):
        return dataclasses.replace(
            solution,
            **{f.name: getattr(solution, f.name)[rows] for f in dataclasses.fields(solution) if f.name != "n_final"},
        )

    settings = FitSettings(objective, json_bounds("default"), search, int(table.n_rows))
    fit = build_result(
        law, table, list(table.targets), space, part(slice(0, n_point)), settings, provenance(search.seed, table.hash())
    )
    extra = part(slice(n_point, None))
    coordinates = np.asarray(space.to_law(jnp.asarray(extra.z))) if len(extra.z) else np.zeros((0, space.size))
    return fit, coordinates, extra


def _point_predictions(fit: FitResult, labels: list[str], n, d) -> np.ndarray:
    """(len(labels),) each problem's prediction at one (N, D); NaN for a problem the fit left out (failed)."""
    values = fit.predict_arrays(n, d, np.zeros((1, 0)))[0]
    found = dict(zip(fit.targets, values))
    return np.array([found.get(label, np.nan) for label in labels])


def _problem_frame(fit: FitResult, labels, units, targets, observed, prediction) -> pd.DataFrame:
    kept = [i for i, label in enumerate(labels) if label in fit.diagnostics]
    return pd.DataFrame(
        {
            "unit": [units[i] for i in kept],
            "target": [targets[i] for i in kept],
            "observed": [int(observed[i]) for i in kept],
            "prediction": [float(prediction[i]) for i in kept],
            "objective": [fit.diagnostics[labels[i]].objective for i in kept],
            "status": [fit.diagnostics[labels[i]].status.label for i in kept],
        },
        index=pd.Index([labels[i] for i in kept], name="problem"),
    )


def _warn_excluded(items: list[dict], what: str, why: str) -> None:
    if not items:
        return
    listed = "; ".join(f"{i['unit']}, {i['target']}" for i in items[:5])
    more = f"; and {len(items) - 5} more" if len(items) > 5 else ""
    warn_user(
        f"{len(items)} {what} {why}, and are left out of the later stages: {listed}{more} "
        f"(NestedResult.excluded lists them all)"
    )


def _failed(fit: FitResult, labels, units, targets, stage: str) -> list[dict]:
    return [
        {"stage": stage, "unit": units[i], "target": targets[i], "reason": "every start failed"}
        for i, label in enumerate(labels)
        if label not in fit.diagnostics
    ]


def _checkpoint_counts(runs: RunTable, index) -> np.ndarray:
    """(runs, targets) how many distinct D each run has an observed loss at."""
    out = np.zeros((runs.n_runs, len(index)), dtype=np.int64)
    for j, col in enumerate(index):
        seen = runs.observed[:, col]
        pairs = np.unique(np.stack([runs.run_id[seen], runs.d[seen]], axis=1), axis=0)
        out[:, j] = np.bincount(pairs[:, 0].astype(np.int64), minlength=runs.n_runs)
    return out


def _sizes_per_mixture(layout: _RunLayout, usable: np.ndarray) -> np.ndarray:
    """(mixtures, targets) how many distinct N each mixture has a usable run at; ``usable`` (runs, targets)."""
    out = np.zeros((layout.n_mixtures, usable.shape[1]), dtype=np.int64)
    for j in range(usable.shape[1]):
        ok = usable[:, j]
        pairs = np.unique(np.stack([layout.run_mixture[ok], layout.run_n[ok]], axis=1), axis=0)
        out[:, j] = np.bincount(pairs[:, 0].astype(np.int64), minlength=layout.n_mixtures)
    return out


def _check_feasible(checkpoints: np.ndarray, layout: _RunLayout, targets, law: Law, k: int) -> None:
    """Before any fit: every stage has something to fit, and every target enough mixtures for the mixing law (the
    observed cells decide it); otherwise a MixlawError naming what is missing."""
    step_ok = checkpoints >= STEP_LAW.n_params(0)
    if not step_ok.any():
        raise MixlawError(
            f"no run has {STEP_LAW.n_params(0)} or more checkpoints (distinct D) for any target: the step law "
            f"{STEP_LAW.formula} cannot be fitted; the nested pipeline needs each run's loss at several D"
        )
    sizes = _sizes_per_mixture(layout, step_ok)
    needed = SIZE_LAW.n_params(0)
    if not (sizes >= needed).any():
        raise MixlawError(
            f"no mixture is seen at {needed} or more model sizes (with {STEP_LAW.n_params(0)} checkpoints each): the "
            f"size law {SIZE_LAW.formula} cannot be fitted; the nested pipeline needs each mixture trained at several N"
        )
    n_params = law.n_params(k)
    for j, target in enumerate(targets):
        available = int((sizes[:, j] >= needed).sum())
        if available < n_params:
            raise MixlawError(
                f"target {target!r} has {available} mixtures seen at {needed} or more model sizes, fewer than the "
                f"{n_params} parameters of the mixing law {law.name!r}; train more mixtures at {needed} or more "
                f"sizes, or choose a law with fewer parameters" + fewer_latent_domains(law.name, available, k)
            )


def _step_stage(runs: RunTable, layout: _RunLayout, index, distinct, d_star, search, options, excluded):
    """Stage (a): the step law per (run, target), rows the distinct D (per run occurrence); ``distinct``: (runs,
    targets) checkpoints observed. Returns the stage and the (runs, targets) predictions at D* (NaN where left out)."""
    n_params = STEP_LAW.n_params(0)
    row, d_rows = _slots(runs.run_id, runs.d)
    n_rows = len(d_rows)
    grid = np.full((layout.n_runs, n_rows, len(index)), np.nan)
    grid[runs.run_id, row] = runs.losses[:, index]
    few = []
    problems = []
    for r in range(layout.n_runs):
        for j, col in enumerate(index):
            target = runs.targets[col]
            if distinct[r, j] >= n_params:
                problems.append((r, j))
            else:
                few.append(
                    {
                        "stage": "step",
                        "unit": layout.run_label(r),
                        "target": target,
                        "reason": f"{distinct[r, j]} checkpoints (distinct D), fewer than the step law's {n_params} "
                        f"parameters",
                    }
                )
    _warn_excluded(few, "(run, target) pairs", f"have fewer checkpoints than the step law's {n_params} parameters")
    excluded += few
    labels = [f"run {r}: {runs.targets[index[j]]}" for r, j in problems]
    losses = np.stack([grid[r, :, j] for r, j in problems], axis=1)
    table = _stage_table(losses, labels, d=d_rows)
    fit, *_ = _solve_stage(STEP_LAW, table, np.zeros((0, n_rows)), np.zeros((0, n_rows)), search, options, "step law")
    units = [layout.run_label(r) for r, _ in problems]
    targets = [runs.targets[index[j]] for _, j in problems]
    excluded += _failed(fit, labels, units, targets, "step")
    prediction = _point_predictions(fit, labels, None, np.array([d_star]))
    out = np.full((layout.n_runs, len(index)), np.nan)
    for (r, j), value in zip(problems, prediction):
        out[r, j] = value
    frame = _problem_frame(fit, labels, units, targets, [distinct[r, j] for r, j in problems], prediction)
    return StageFit("step", fit, frame, len(labels), n_rows), out


def _size_stage(layout: _RunLayout, targets, step_pred, n_star, counts, search, options, excluded):
    """Stage (b): the size law per (mixture, target) over the step-law predictions at D*, plus one problem per
    bootstrap replicate of each; rows the distinct N (per mixture occurrence). Returns the stage, the (mixtures,
    targets) predictions at N* and the (replicates, mixtures, targets) replicate predictions (NaN where left out or
    not identifiable)."""
    n_params = SIZE_LAW.n_params(0)
    row, n_rows_values = _slots(layout.run_mixture, layout.run_n)
    n_rows = len(n_rows_values)
    n_targets = len(targets)
    grid = np.full((layout.n_mixtures, n_rows, n_targets), np.nan)
    grid[layout.run_mixture, row] = step_pred
    problems, few = [], []
    for m in range(layout.n_mixtures):
        for j, target in enumerate(targets):
            sizes = np.unique(n_rows_values[np.isfinite(grid[m, :, j])])
            if len(sizes) >= n_params:
                problems.append((m, j))
            elif np.isfinite(grid[m, :, j]).any():
                few.append(
                    {
                        "stage": "size",
                        "unit": layout.mixture_label(m),
                        "target": target,
                        "reason": f"seen at {len(sizes)} model sizes ({', '.join(f'{n:.4g}' for n in sizes)}) with a "
                        f"step-law prediction, fewer than the size law's {n_params} parameters",
                    }
                )
    _warn_excluded(
        few, "(mixture, target) pairs", f"are seen at fewer model sizes than the size law's {n_params} parameters"
    )
    excluded += few
    if not problems:
        raise MixlawError(
            f"no mixture is seen at {n_params} or more model sizes (with a step-law prediction): the size law "
            f"{SIZE_LAW.formula} cannot be fitted; the nested pipeline needs each mixture trained at several N"
        )
    labels = [f"mixture {m}: {targets[j]}" for m, j in problems]
    losses = np.stack([grid[m, :, j] for m, j in problems], axis=1)
    # replicate b of problem (m, t): row weights = draw counts of the mixture's runs
    weight_grid = np.zeros((len(counts), layout.n_mixtures, n_rows))
    weight_grid[:, layout.run_mixture, row] = counts
    y_rep = np.tile(losses.T, (len(counts), 1))  # (R * problems, rows), replicate-major
    w_rep = weight_grid[:, [m for m, _ in problems]].reshape(-1, n_rows)
    usable = (w_rep > 0) & np.isfinite(y_rep)
    identifiable = np.array([len(np.unique(n_rows_values[u])) >= n_params for u in usable], dtype=bool)
    w_rep = np.where(identifiable[:, None], w_rep, 1.0)  # an unidentifiable replicate problem is solved as the point
    table = _stage_table(losses, labels, n=n_rows_values)
    fit, coordinates, extra = _solve_stage(SIZE_LAW, table, y_rep, w_rep, search, options, "size law")
    units = [layout.mixture_label(m) for m, _ in problems]
    names = [targets[j] for _, j in problems]
    excluded += _failed(fit, labels, units, names, "size")
    prediction = _point_predictions(fit, labels, np.array([n_star]), None)
    out = np.full((layout.n_mixtures, n_targets), np.nan)
    for (m, j), value in zip(problems, prediction):
        out[m, j] = value
    replicates = np.full((len(counts), layout.n_mixtures, n_targets), np.nan)
    if len(counts):
        x = Inputs.from_arrays(np.array([n_star]), np.ones(1), np.zeros((1, 0)))
        values = np.asarray(predict_all(SIZE_LAW, 0, jnp.asarray(coordinates), x))[:, 0]
        values = np.where(identifiable & np.isfinite(extra.objective), values, np.nan)
        values = values.reshape(len(counts), len(problems))
        for p, (m, j) in enumerate(problems):
            replicates[:, m, j] = values[:, p]
    observed = [len(np.unique(n_rows_values[np.isfinite(grid[m, :, j])])) for m, j in problems]
    frame = _problem_frame(fit, labels, units, names, observed, prediction)
    return StageFit("size", fit, frame, len(labels) * (1 + len(counts)), n_rows), out, replicates


def _mixing_stage(
    runs: RunTable, layout: _RunLayout, law: Law, targets, size_pred, size_reps, counts, level, search, options
):
    """Stage (c): the mixing law per target over the mixtures' predictions at (N*, D*), plus one problem per bootstrap
    replicate and target; rows the mixtures. Returns the stage and the BootstrapResult (or None)."""
    n_params = law.n_params(runs.k)
    used = np.flatnonzero(np.isfinite(size_pred).any(axis=1))
    for j, target in enumerate(targets):
        available = int(np.isfinite(size_pred[used, j]).sum())
        if available < n_params:
            raise MixlawError(
                f"target {target!r} has a size-law prediction at N* for {available} mixtures, fewer than the "
                f"{n_params} parameters of the mixing law {law.name!r}; train more mixtures at {SIZE_LAW.n_params(0)} "
                f"or more model sizes (NestedResult.excluded lists what was left out), or choose a smaller law"
                + fewer_latent_domains(law.name, available, runs.k)
            )
    losses = size_pred[used]
    n_rep, n_targets = len(counts), len(targets)
    runs_per_mixture = np.bincount(layout.run_mixture, minlength=layout.n_mixtures)
    draws = counts @ (layout.run_mixture[:, None] == np.arange(layout.n_mixtures)).astype(float)
    weight = (draws / runs_per_mixture)[:, used]  # (R, used mixtures): mean draw count of each mixture's runs
    y_rep = np.transpose(size_reps[:, used], (0, 2, 1)).reshape(-1, len(used))  # (R * T, mixtures)
    w_rep = np.repeat(weight, n_targets, axis=0)
    usable = (w_rep > 0) & np.isfinite(y_rep)
    identifiable = usable.sum(axis=1) >= n_params
    point = np.tile(losses.T, (n_rep, 1))
    y_rep = np.where(identifiable[:, None], y_rep, point)  # an unidentifiable replicate is solved as the point
    w_rep = np.where(identifiable[:, None], w_rep, 1.0)
    table = _stage_table(losses, list(targets), h=layout.mixture_h[used], weight_columns=runs.weight_columns)
    fit, coordinates, extra = _solve_stage(law, table, y_rep, w_rep, search, options, f"mixing law {law.name}")
    kept = [targets.index(t) for t in fit.targets]
    frame = pd.DataFrame(
        {
            "unit": "all mixtures",
            "target": list(fit.targets),
            "observed": [int(np.isfinite(losses[:, j]).sum()) for j in kept],
            "objective": fit.objective,
            "status": [fit.diagnostics[t].status.label for t in fit.targets],
        },
        index=pd.Index(list(fit.targets), name="problem"),
    )
    stage = StageFit("mixing", fit, frame, n_targets * (1 + n_rep), len(used))
    if not n_rep:
        return stage, None
    shape = (n_rep, n_targets)
    valid = (identifiable & np.isfinite(extra.objective)).reshape(shape)[:, kept]
    boot = BootstrapResult(
        fit=fit,
        coordinates=coordinates.reshape(shape + (-1,))[:, kept],
        objective=np.where(valid, extra.objective.reshape(shape)[:, kept], np.inf),
        status=extra.status.reshape(shape)[:, kept],
        n_in_basin=extra.n_in_basin.reshape(shape)[:, kept],
        confirmed=extra.confirmed.reshape(shape)[:, kept],
        level=level,
        resample="runs",
        settings={
            **fit.settings.to_dict(),
            "n_replicates": int(n_rep),
            "resample": "runs",
            "propagated": "nested pipeline: step-law fits reused, size and mixing laws refitted per replicate",
        },
        provenance=provenance(search.seed, runs.hash()),
    )
    return stage, boot


@dataclasses.dataclass(frozen=True)
class NestedCandidate:
    """The nested pipeline as a ``compare_laws`` candidate (``comparison.Candidate``).

    A pipeline predicts at one (N*, D*), so ``fit`` only checks and keeps the training table, and the predictor runs
    the pipeline once per distinct (N, D) of the rows it is asked about (each run: three engine calls), predicting
    every row at its own (N, D) from its mixture.
    """

    mixing_law: str | Law = "mixing_exp"
    objective: Objective = Objective()
    search: Search | NestedSearch = NestedSearch()
    resources: Resources = Resources()
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "mixing_law", _mixing_law(self.mixing_law))
        object.__setattr__(self, "search", NestedSearch.of(self.search))
        expect(self.objective, Objective, "objective")
        expect(self.resources, Resources, "resources")

    @property
    def name(self) -> str:
        return f"nested {self.mixing_law.name}"

    def fit(self, train: RunTable) -> NestedPredictor:
        check_run_table(train)
        return NestedPredictor(self, train)


@dataclasses.dataclass
class NestedPredictor:
    """A training table and the pipeline's options; ``predict`` runs the pipeline at each (N, D) it needs.

    Attributes:
      candidate: the options (:class:`NestedCandidate`).
      train: the training table.
      results: the pipeline run at each (N, D) predicted so far, by (N, D).
    """

    candidate: NestedCandidate
    train: RunTable
    results: dict = dataclasses.field(default_factory=dict)

    def predict(self, runs: RunTable) -> pd.DataFrame:
        """Every target of the training table, for each row of ``runs`` at that row's (N, D) and mixture."""
        check_run_table(runs)
        if runs.n is None or runs.d is None:
            raise MixlawError("the nested pipeline predicts rows at their own (N, D): the table needs N and D columns")
        points, point_of_row = np.unique(np.stack([runs.n, runs.d], axis=1), axis=0, return_inverse=True)
        point_of_row = point_of_row.reshape(-1)
        out = None
        for p, (n, d) in enumerate(points):
            key = (float(n), float(d))
            if key not in self.results:
                c = self.candidate
                self.results[key] = nested_pipeline(
                    self.train,
                    N=n,
                    D=d,
                    mixing_law=c.mixing_law,
                    objective=c.objective,
                    search=c.search,
                    resources=c.resources,
                    progress=c.progress,
                )
            rows = np.flatnonzero(point_of_row == p)
            predicted = self.results[key].mixing.fit.predict_arrays(None, None, runs.h[rows])
            if out is None:
                out = np.full((runs.n_rows, predicted.shape[1]), np.nan)
            out[rows] = predicted
        targets = self.results[(float(points[0][0]), float(points[0][1]))].targets
        return pd.DataFrame(out, columns=list(targets), index=runs.frame.index)


__all__ = [
    "NestedCandidate",
    "NestedPredictor",
    "NestedResult",
    "NestedSearch",
    "SIZE_LAW",
    "STEP_LAW",
    "StageFit",
    "nested_pipeline",
]
