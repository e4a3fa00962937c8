"""Bootstrap uncertainty: every replicate x target x start refitted in one batched engine call.

A replicate resamples the table with replacement — whole runs by default (all checkpoints of a training run
together: they share that run's noise), or single rows for tables of independent points — and is represented as
integer row weights w_rj (how often row j, or its run, was drawn). The Bayesian bootstrap (Rubin 1981) weights
every run instead by n_runs · g_r, g ~ Dirichlet(1, ..., 1): the same mean and variance of the weights, but no run is
ever dropped, so no replicate loses the few mixtures that pin a parameter down. Every replicate then has the same
rows and shapes, and the engine fits all R x T problems at once:

    θ*_rt = argmin_θ c_rt Σ_j w_rj Huber_δ(y_jt - L(x_j; θ)),   c_rt = 1 / Σ_j w_rj ("mean") or 1 ("sum"),

each warm-started from the full-data optimum θ̂_t and from fresh random starts. From the replicate optima:

* standard error of a parameter = the sample standard deviation of its replicate values;
* the interval at ``level`` = 1 - a is the percentile interval [q_{a/2}, q_{1-a/2}] of the replicate values
  (Efron & Tibshirani 1993, ch. 13) — for parameters, predictions, MRE and the optimal mixture h*;
* the bagged prediction (after Breiman 1996, with the median for the mean) over replicates of their laws' predictions,
  L̄_t(x) = median_r L(x; θ*_rt): a point prediction less swayed by the one basin the full-data fit landed in.

A replicate whose best start did not meet the solver's stopping rule within its iterations (``Status``) is counted
as not converged (``fraction_unconverged``); a replicate whose every start failed is excluded and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import fields

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import _io, metrics
from .data import RunTable
from .engine import make_problems, solve
from .engine.solvers import CONVERGED, Status, status_from_converged
from .errors import MixlawError
from .fitting import fit, json_bounds, prepare, progress_bar
from .laws import get_law
from .mixture import optimal_mixture, replicate_mixtures
from .options import BOOTSTRAP_SEARCH, RESAMPLE, Objective, ParameterBounds, Resources, Search, expect, whole_number
from .results import FitResult, fit_from_dict, predict_all, provenance

BOOTSTRAP_SCHEMA_VERSION = 1


def resample_weights(runs: RunTable, n_replicates: int, resample: str, seed: int) -> np.ndarray:
    """(R, rows) bootstrap row weights: counts of runs (``"runs"``) or of rows (``"rows"``) drawn with replacement,
    or Bayesian-bootstrap run weights n_runs · Dirichlet(1, ..., 1) (``"bayesian"``; every weight > 0, mean 1).

    With runs (and with the Bayesian weights), row j gets the weight of its run: a run's checkpoints move together.
    """
    rng = np.random.default_rng(seed)
    if resample == "runs":
        counts = rng.multinomial(runs.n_runs, np.full(runs.n_runs, 1.0 / runs.n_runs), size=n_replicates)
        return counts[:, runs.run_id].astype(float)
    if resample == "rows":
        return rng.multinomial(runs.n_rows, np.full(runs.n_rows, 1.0 / runs.n_rows), size=n_replicates).astype(float)
    if resample == "bayesian":
        return (rng.dirichlet(np.ones(runs.n_runs), size=n_replicates) * runs.n_runs)[:, runs.run_id]
    raise MixlawError(f"resample must be {' or '.join(map(repr, RESAMPLE))}, not {resample!r}")


def _quantiles(level: float) -> tuple[float, float]:
    a = 1.0 - level
    return a / 2.0, 1.0 - a / 2.0


@dataclasses.dataclass
class BootstrapResult:
    """Replicate fits of one law to every target, with the full-data fit they were resampled around.

    Attributes:
      fit: the full-data :class:`FitResult` (point estimates).
      coordinates: (R, T, P) law coordinates of each replicate's best start.
      objective: (R, T) each replicate's best objective (inf where every start failed).
      status: (R, T) how that best start's run ended: :class:`Status` codes.
      n_in_basin: (R, T) final starts within the confirmation tolerance of the replicate's best.
      confirmed: (R, T) whether the replicate's best point was confirmed (``options.Confirmation``); all True in a
        file written before replicates were confirmed.
      level: default coverage of intervals (e.g. 0.95).
      resample: ``"runs"``, ``"rows"`` or ``"bayesian"`` (``resample_weights``).
      settings, provenance: how the replicates were drawn and fitted; seed, table hash and versions.
    """

    fit: FitResult
    coordinates: np.ndarray
    objective: np.ndarray
    status: np.ndarray
    n_in_basin: np.ndarray
    confirmed: np.ndarray
    level: float
    resample: str
    settings: dict
    provenance: dict

    @property
    def targets(self) -> tuple[str, ...]:
        return self.fit.targets

    @property
    def n_replicates(self) -> int:
        return int(self.coordinates.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """(R, T) replicates with a finite objective (the others are excluded from every statistic)."""
        return np.isfinite(self.objective)

    @property
    def fraction_unconverged(self) -> dict[str, float]:
        """target -> fraction of replicates whose best start did not converge (or failed)."""
        bad = ~(np.isin(self.status, CONVERGED) & self.valid)
        return {t: float(bad[:, j].mean()) for j, t in enumerate(self.targets)}

    @property
    def fraction_unconfirmed(self) -> dict[str, float]:
        """target -> fraction of the valid replicates whose best point stayed unconfirmed after the extra rounds."""
        return {
            t: float(np.mean(~self.confirmed[self.valid[:, j], j])) if self.valid[:, j].any() else 0.0
            for j, t in enumerate(self.targets)
        }

    @property
    def n_failed(self) -> dict[str, int]:
        """target -> replicates whose every start failed (excluded)."""
        return {t: int((~self.valid[:, j]).sum()) for j, t in enumerate(self.targets)}

    def replicates(self, target: str) -> pd.DataFrame:
        """One row per (valid) replicate: the reported parameters, per-domain ones as ``name[domain]``."""
        j = self._target(target)
        law = get_law(self.fit.law)
        rows = []
        for r in np.flatnonzero(self.valid[:, j]):
            values = law.parameter_values(law.unflatten(self.coordinates[r, j], self.fit.k))
            row = {}
            for name, v in values.items():
                if isinstance(v, list):
                    row.update({f"{name}[{d}]": x for d, x in zip(self.fit.weight_columns, v)})
                else:
                    row[name] = v
            rows.append(row)
        return pd.DataFrame(rows)

    def _target(self, target: str) -> int:
        if target not in self.targets:
            raise MixlawError(f"unknown target {target!r}; targets: {', '.join(self.targets)}")
        return self.targets.index(target)

    def _per_parameter(self, statistic) -> dict[str, dict]:
        out = {}
        for t in self.targets:
            frame = self.replicates(t)
            point = self.fit.params[t]
            out[t] = {}
            for name, v in point.items():
                if isinstance(v, list):
                    out[t][name] = [statistic(frame[f"{name}[{d}]"].to_numpy()) for d in self.fit.weight_columns]
                else:
                    out[t][name] = statistic(frame[name].to_numpy())
        return out

    @property
    def standard_errors(self) -> dict[str, dict]:
        """target -> {parameter: standard deviation over replicates} (lists for per-domain parameters)."""
        return self._per_parameter(lambda v: float(np.std(v, ddof=1)))

    def intervals(self, level: float | None = None) -> dict[str, dict]:
        """target -> {parameter: [low, high]} percentile intervals (lists of pairs for per-domain parameters)."""
        q = _quantiles(self.level if level is None else check_level(level))
        return self._per_parameter(lambda v: [float(x) for x in np.quantile(v, q)])

    def predict(self, runs) -> pd.DataFrame:
        """Bagged predicted loss per target (one column each): the median over the valid replicates of each
        replicate law's prediction (module docstring). ``runs`` as for :meth:`predict_interval`; the full-data
        fit's checks and warnings apply (mixtures outside the fitted ones, absurd losses).

        Measured (benchmarks/NOTES.md, session 22): on RegMix's swarm (512 runs at 1M, 17 domains) the bagged
        ``additive_mixture`` ranks the 64 mixtures trained at 1B with mean Spearman 94.8–95.3 over 13 targets (4
        seeds of 50 replicates) against 93.8 for the full-data fit; on Ye et al.'s 5-domain table (20 mixtures, 10
        splits) its held-out MAE is 0.0080 against 0.0090. The median, not the mean: a few replicates fitted to
        20 mixtures extrapolate wildly, and the mean of ``mixing_exp``'s replicates there reached 1e23.
        """
        table, point = self._checked_prediction(runs)
        reps = self._replicate_predictions(table)  # (R, T, rows)
        out = {t: np.median(reps[self.valid[:, j], j], axis=0) for j, t in enumerate(self.targets)}
        return pd.DataFrame(out, index=point.index)

    def _checked_prediction(self, runs) -> tuple[RunTable, pd.DataFrame]:
        """The table of ``runs`` and the full-data fit's predictions on it (which check the table and warn)."""
        table = self.fit.run_table(runs)
        if table.k != self.fit.k:
            raise MixlawError(f"the table has {table.k} weight columns; this fit has {self.fit.k}")
        return table, self.fit.predict(table)

    def predict_interval(self, runs, level: float | None = None) -> pd.DataFrame:
        """Predicted loss per target with percentile intervals: columns ``t``, ``t_lo``, ``t_hi`` per target.

        ``runs``: a RunTable, DataFrame or file with the fit's weight, N and D columns (targets not needed).
        The point prediction is the full-data fit's (:meth:`predict` gives the replicates' median).
        """
        table, point = self._checked_prediction(runs)
        reps = self._replicate_predictions(table)  # (R, T, rows)
        q = _quantiles(self.level if level is None else check_level(level))
        out = {}
        for j, t in enumerate(self.targets):
            values = reps[self.valid[:, j], j]
            lo, hi = np.quantile(values, q, axis=0)
            out[t], out[f"{t}_lo"], out[f"{t}_hi"] = point[t].to_numpy(), lo, hi
        return pd.DataFrame(out, index=point.index)

    def mre_interval(self, runs, level: float | None = None) -> pd.DataFrame:
        """MRE (%) of the full-data fit on ``runs`` per target, with the percentile interval of replicate MREs."""
        table = self.fit.run_table(runs)
        reps = self._replicate_predictions(table)
        point = self.fit.mre(table)
        q = _quantiles(self.level if level is None else check_level(level))
        rows = []
        for j, t in enumerate(self.targets):
            if t not in table.targets:
                continue
            y = table.losses[:, table.targets.index(t)]
            values = [metrics.mre(y, reps[r, j]) for r in np.flatnonzero(self.valid[:, j])]
            lo, hi = np.quantile(values, q)
            rows.append({"target": t, "mre": point[t], "lo": float(lo), "hi": float(hi)})
        if not rows:
            raise MixlawError(f"the table has none of the targets {list(self.targets)}")
        return pd.DataFrame(rows).set_index("target")

    def _replicate_predictions(self, table: RunTable) -> np.ndarray:
        law = get_law(self.fit.law)
        x = table.inputs()
        pred = np.asarray(jax.vmap(lambda c: predict_all(law, self.fit.k, c, x))(jnp.asarray(self.coordinates)))
        if not np.isfinite(pred[self.valid]).all():
            raise MixlawError(
                "a bootstrap replicate predicts a non-finite loss on these runs (extreme replicate "
                "parameters); refit with parameter_bounds='default'"
            )
        return pred

    def mixture_interval(
        self,
        N=None,
        D=None,
        *,
        targets: Sequence[str] | None = None,
        target_weights=None,
        weight_bounds="data",
        token_budget=None,
        fixed: Mapping[str, float] | None = None,
        level: float | None = None,
        n_starts: int = 8,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Optimal mixture h* of the weighted objective at (N, D), with percentile intervals over replicates.

        Returns a frame indexed by domain with columns ``h_star`` (the full-data fit's h*), ``lo``, ``hi``;
        ``frame.attrs["loss"]`` holds the predicted weighted loss at h* (``value``, ``lo``, ``hi``) and
        ``frame.attrs["targets"]`` the objective's targets. Options as in :func:`optimal_mixture`.
        """
        q = _quantiles(self.level if level is None else check_level(level))
        options = dict(
            targets=targets,
            target_weights=target_weights,
            weight_bounds=weight_bounds,
            token_budget=token_budget,
            fixed=fixed,
        )
        point = optimal_mixture(self.fit, N=N, D=D, n_starts=max(n_starts, 64), seed=seed, **options)
        h_point = point.h[0, -1]
        valid = self.valid[:, [self.targets.index(t) for t in point.targets]].all(axis=1)
        h, f, chosen = replicate_mixtures(
            self.fit, self.coordinates[valid], N=N, D=D, n_starts=n_starts, seed=seed, warm=h_point, **options
        )
        bad = ~(np.isfinite(h).all(axis=1) & np.isfinite(f))
        if bad.any():
            raise MixlawError(
                f"{int(bad.sum())} of {len(f)} replicates give a non-finite loss at N = {N}, D = {D}: "
                f"the budget is far outside what their laws can extrapolate to"
            )
        lo, hi = np.quantile(h, q, axis=0)
        frame = pd.DataFrame({"h_star": h_point, "lo": lo, "hi": hi}, index=pd.Index(point.domains, name="domain"))
        f_lo, f_hi = np.quantile(f, q)
        frame.attrs["loss"] = {"value": float(point.objective[0, -1]), "lo": float(f_lo), "hi": float(f_hi)}
        frame.attrs["targets"] = list(chosen)
        return frame

    def to_dict(self) -> dict:
        return {
            "kind": "bootstrap",
            "schema_version": BOOTSTRAP_SCHEMA_VERSION,
            "fit": self.fit.to_dict(),
            "coordinates": np.where(np.isfinite(self.coordinates), self.coordinates, 0.0).tolist(),
            "objective": [[v if np.isfinite(v) else None for v in row] for row in self.objective.tolist()],
            "status": [[Status(int(code)).label for code in row] for row in self.status],
            "n_in_basin": self.n_in_basin.tolist(),
            "confirmed": self.confirmed.tolist(),
            "level": self.level,
            "resample": self.resample,
            "settings": self.settings,
            "provenance": self.provenance,
        }

    def save(self, path) -> None:
        """Write the result as versioned JSON, atomically (a crash leaves the old file or none)."""
        _io.atomic_write_json(path, self.to_dict())


def load_bootstrap(path) -> BootstrapResult:
    """Read a :class:`BootstrapResult` written by ``BootstrapResult.save``."""
    p = _io.read_json(path, "bootstrap", BOOTSTRAP_SCHEMA_VERSION)
    try:
        full = fit_from_dict(p["fit"], path)
        objective = np.array([[np.inf if v is None else v for v in row] for row in p["objective"]], dtype=float)
        coordinates = np.asarray(p["coordinates"], dtype=float)
        if coordinates.ndim != 3 or coordinates.shape[1:] != full.coordinates.shape:
            raise MixlawError(
                f"{path}: replicate coordinates have shape {coordinates.shape}, expected "
                f"(R, {full.coordinates.shape[0]}, {full.coordinates.shape[1]})"
            )
        return BootstrapResult(
            fit=full,
            coordinates=coordinates,
            objective=objective,
            status=_status_codes(p),
            n_in_basin=np.asarray(p["n_in_basin"], dtype=int),
            confirmed=np.asarray(p.get("confirmed", np.ones(objective.shape, bool)), dtype=bool),
            level=float(p["level"]),
            resample=p["resample"],
            settings=p["settings"],
            provenance=p["provenance"],
        )
    except (KeyError, TypeError, ValueError) as err:
        raise MixlawError(f"{path} is not a valid bootstrap file: {err!r}") from None


def _status_codes(p: dict) -> np.ndarray:
    """(R, T) Status codes from a bootstrap file (one written before the status existed holds ``converged``)."""
    if "status" in p:
        return np.array([[Status.from_label(label) for label in row] for row in p["status"]], dtype=np.int8)
    return status_from_converged(p["converged"])


def _full_fit_options(
    full_fit: FitResult, objective: Objective | None, parameter_bounds: ParameterBounds
) -> tuple[Objective, ParameterBounds]:
    """The objective and parameter bounds of ``full_fit``; asking for others is a MixlawError naming each field."""
    made = full_fit.settings
    # "default" is the keyword's default: not a request
    pairs = (
        []
        if parameter_bounds == "default"
        else [("parameter_bounds", made.parameter_bounds, json_bounds(parameter_bounds))]
    )
    if objective is not None:
        pairs += [(f.name, getattr(made.objective, f.name), getattr(objective, f.name)) for f in fields(Objective)]
    differ = [f"{name}: full fit {a!r}, bootstrap {b!r}" for name, a, b in pairs if a != b]
    if differ:
        raise MixlawError(
            f"full_fit was made with other options than this bootstrap's ({'; '.join(differ)}); the replicates "
            f"take the full fit's objective and parameter bounds: leave these out, or refit"
        )
    return made.objective, made.parameter_bounds


def check_level(level) -> float:
    """``level`` as a float when it is a number in (0, 1); otherwise a MixlawError."""
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise MixlawError(f"level must be a number in (0, 1), not {level!r}")
    return float(level)


def bootstrap(
    runs: RunTable,
    law,
    *,
    targets: Sequence[str] | None = None,
    n_replicates: int = 1000,
    level: float = 0.95,
    resample: str = "runs",
    full_fit: FitResult | None = None,
    parameter_bounds: ParameterBounds = "default",
    objective: Objective | None = None,
    search: Search = BOOTSTRAP_SEARCH,
    full_fit_search: Search = Search(),
    resources: Resources = Resources(),
    progress: bool = False,
) -> BootstrapResult:
    """Bootstrap a law's fit: ``n_replicates`` resampled tables, every replicate x target in one engine call.

    Args:
      runs: the run table (``load_runs``).
      law: law name or :class:`Law`.
      targets: subset of target columns (default: all).
      n_replicates: bootstrap replicates R.
      level: default coverage of the intervals.
      resample: ``"runs"`` (default; whole training runs), ``"rows"`` (independent points, as Epoch's
        Chinchilla analysis) or ``"bayesian"`` (Dirichlet weights on whole runs, none dropped: a smoother ensemble
        for ``propose_runs``; the intervals of a small table come out narrower than with ``"runs"``).
      full_fit: the full-data fit to resample around (default: fitted here with ``full_fit_search``); it must
        have been fitted to ``runs``. The replicates take its objective and parameter bounds.
      parameter_bounds, objective: as in :func:`mixlaw_jax.fit`, for the full fit made here; with a ``full_fit``
        they default to its own, and other ones are an error.
      search: each replicate's search: fresh random starts screened besides the warm start at the full-data
        optimum, its stages, and the seed of the resampling and of the random starts.
      full_fit_search: the search of the full fit made here (its seed is ``search.seed``).
      resources: devices and per-device memory budget, as in :func:`mixlaw_jax.fit`.
      progress: progress bars.
    """
    n_replicates = whole_number(n_replicates, "n_replicates", minimum=2)
    level = check_level(level)
    search = dataclasses.replace(expect(search, Search, "search"), warm_starts=1)
    expect(full_fit_search, Search, "full_fit_search")
    expect(resources, Resources, "resources")
    if objective is not None:
        expect(objective, Objective, "objective")
    if full_fit is not None:
        objective, parameter_bounds = _full_fit_options(full_fit, objective, parameter_bounds)
    objective = Objective() if objective is None else objective
    law, index, x, space, y = prepare(runs, law, targets, objective, parameter_bounds)
    chosen = [runs.targets[j] for j in index]
    weights = resample_weights(runs, n_replicates, resample, search.seed)
    if full_fit is None:
        full_fit = fit(
            runs,
            law,
            targets=chosen,
            parameter_bounds=parameter_bounds,
            objective=objective,
            search=dataclasses.replace(full_fit_search, seed=search.seed),
            resources=resources,
            progress=progress,
        )
    elif full_fit.law != law.name or list(full_fit.targets) != chosen or full_fit.k != runs.k:
        raise MixlawError(
            f"full_fit is a {full_fit.law!r} fit of {list(full_fit.targets)}; this bootstrap needs "
            f"law {law.name!r} on targets {chosen}"
        )
    n_targets = len(chosen)
    problems = make_problems(
        np.tile(y, (n_replicates, 1)), np.repeat(weights, n_targets, axis=0), objective.loss_space, objective.reduction
    )
    warm = space.from_law(jnp.asarray(full_fit.coordinates))  # (T, P)
    warm = jnp.tile(warm[None, None], (n_replicates, 1, 1, 1)).reshape(n_replicates * n_targets, 1, -1)
    update, close = progress_bar(len(search.schedule), f"bootstrap {law.name} x{n_replicates}", progress)
    try:
        solution = solve(
            space,
            x,
            problems,
            search,
            delta=objective.huber_delta,
            resources=resources,
            key=jax.random.fold_in(jax.random.PRNGKey(search.seed), 1),
            warm_starts=warm,
            progress=update,
        )
    finally:
        close()
    shape = (n_replicates, n_targets)
    coordinates = np.asarray(space.to_law(jnp.asarray(solution.z))).reshape(shape + (-1,))
    objective = solution.objective.reshape(shape)
    settings = {
        **full_fit.settings.to_dict(),
        "n_replicates": int(n_replicates),
        "resample": resample,
        "replicate_starts": search.n_starts,
        "replicate_schedule": [list(s) for s in search.stages],
    }
    return BootstrapResult(
        fit=full_fit,
        coordinates=coordinates,
        objective=np.where(np.isfinite(objective), objective, np.inf),
        status=solution.status.reshape(shape),
        n_in_basin=solution.n_in_basin.reshape(shape),
        confirmed=solution.confirmed.reshape(shape),
        level=level,
        resample=resample,
        settings=settings,
        provenance=provenance(search.seed, runs.hash()),
    )


__all__ = ["BootstrapResult", "bootstrap", "load_bootstrap", "resample_weights"]
