"""Fitted laws as values: named parameters, diagnostics, prediction, scoring and JSON round trip."""

from __future__ import annotations

import dataclasses
import functools
import platform

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import _io, metrics
from .data import RunTable, load_runs, read_table
from .engine.solvers import Status, status_from_converged
from .errors import MixlawError, warn_user
from .laws import Inputs, get_law
from .options import Confirmation, Objective, Search

FIT_SCHEMA_VERSION = 1
#: Predictions at N or D more than this factor outside the fitted range are warned about.
EXTRAPOLATION_WARN = 1e3
#: Predictions at a mixture whose weight on some domain lies more than this (absolute) outside the fitted rows'
#: range of that domain are warned about: a law's terms in h (exp(t . h) above all) can grow without limit beyond
#: the mixtures it was fitted to (benchmarks/NOTES.md, session 21: one such prediction was 831x the observed loss).
MIXTURE_EXTRAPOLATION_WARN = 0.1
#: Predictions above this multiple of the largest loss a target was fitted to, or not above 0, are warned about: no
#: cross-entropy does that (session 21: mixtures the nested pipeline's mixing law never saw came out at 1e6-1e18).
LOSS_EXTRAPOLATION_WARN = 10.0


def provenance(seed: int | None = None, table_hash: str | None = None) -> dict:
    """Seed, input-table hash and package versions recorded with every result."""
    import optax

    from . import __version__

    return {
        "seed": seed,
        "table_hash": table_hash,
        "mixlaw_jax": __version__,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """How one target's fit ended.

    Attributes:
      objective: the best start's Huber objective.
      gradient_norm: |grad H| at the best start, in search coordinates (None where not finite).
      n_in_basin: final starts whose objective is within the confirmation tolerance of the best
        (``Search.confirm.rtol``): several starts agreeing is the evidence that no better basin was missed.
      n_final: final starts kept (the final stage's, or the best of every round's).
      n_failed_starts: screened starts whose objective was not finite.
      iterations: the iteration of the best start's last improving step.
      status: how the best start's last run ended (:class:`Status`).
      confirmed: whether n_in_basin reached the confirmation rule's count (:class:`options.Confirmation`); None
        in a file written before fits confirmed their best points.
      extra_rounds: the extra rounds of search the target took (to confirm, or until the budget ran out).
      flags: parameters at a bound or at an extreme value, an unconfirmed best point, as text.
    """

    objective: float
    gradient_norm: float | None
    n_in_basin: int
    n_final: int
    n_failed_starts: int
    iterations: int
    status: Status
    confirmed: bool | None = None
    extra_rounds: int = 0
    flags: tuple[str, ...] = ()

    @property
    def converged(self) -> bool:
        """The best start converged (``Status.CONVERGED`` or ``Status.STALLED``)."""
        return self.status.converged

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "status": self.status.label, "flags": list(self.flags)}

    @classmethod
    def from_dict(cls, payload: dict) -> Diagnostics:
        """From ``to_dict`` output; a file written before the status existed holds ``converged`` (a bool)."""
        payload = dict(payload)
        converged = payload.pop("converged", None)
        label = payload.pop("status", None)
        status = Status.from_label(label) if label is not None else Status(int(status_from_converged(converged)))
        return cls(**{**payload, "status": status, "flags": tuple(payload["flags"])})


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """What a fit was made with: its objective, the parameter bounds (``"default"``, None for unbounded, or
    ``name -> [low, high]``), its search, the rows fitted, and the targets left out because every start failed."""

    objective: Objective
    parameter_bounds: str | dict | None
    search: Search
    rows: int
    failed_targets: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        out = {
            "loss_space": self.objective.loss_space,
            "huber_delta": self.objective.huber_delta,
            "reduction": self.objective.reduction,
            "bounds": self.parameter_bounds,
            "n_starts": self.search.n_starts,
            "schedule": [list(s) for s in self.search.stages],
            "tied_starts": self.search.tied_starts,
            "confirm": dataclasses.asdict(self.search.confirm),
            "rows": self.rows,
        }
        return {**out, "failed_targets": list(self.failed_targets)} if self.failed_targets else out

    @classmethod
    def from_dict(cls, payload: dict) -> FitSettings:
        return cls(
            objective=Objective(payload["loss_space"], payload["huber_delta"], payload["reduction"]),
            parameter_bounds=payload["bounds"],
            search=Search(
                payload["n_starts"],
                tuple(payload["schedule"]),
                tied_starts=payload.get("tied_starts"),
                confirm=Confirmation(**payload.get("confirm", {})),
            ),
            rows=int(payload["rows"]),
            failed_targets=list(payload.get("failed_targets", [])),
        )


@dataclasses.dataclass
class FitResult:
    """One law fitted to every target of a run table.

    Attributes:
      law: the law's registry name.
      targets, weight_columns: column names; ``n_column`` / ``d_column`` the N and D columns.
      weight_range: (k, 2) smallest and largest weight of each domain in the fitted rows (the default
        bounds for optimal mixtures: a law is no evidence about mixtures it never saw).
      coordinates: (targets, P) fitted law coordinates (log of positive parameters, the value of the others:
        ``engine.space``), the exact state that ``predict`` uses; ``params`` gives the parameter values.
      objective: (targets,) best Huber objective per target.
      diagnostics: target -> :class:`Diagnostics` (gradient norm, starts in the best basin, failed starts,
        iterations, status, and flags for parameters at a bound or at an extreme).
      settings: :class:`FitSettings` (objective, parameter bounds, search, rows).
      provenance: seed, input-table hash and package versions.
      scale_range: ``{"N": [min, max], "D": [min, max]}`` of the fitted rows (the columns the table has), or
        None (a file from an earlier version); predictions far outside it are warned about.
      unique_tokens: the ``load_runs(unique_tokens=...)`` specification of the fitted table (new frames are read
        with it), or None.
      loss_range: target -> [smallest, largest] observed loss of the fitted rows, or None (a file from an earlier
        version); predictions far above it are warned about.
    """

    law: str
    k: int
    targets: tuple[str, ...]
    weight_columns: tuple[str, ...]
    n_column: str | None
    d_column: str | None
    weight_range: np.ndarray
    coordinates: np.ndarray
    objective: np.ndarray
    diagnostics: dict[str, Diagnostics]
    settings: FitSettings
    provenance: dict
    scale_range: dict | None = None
    unique_tokens: dict | str | float | None = None
    loss_range: dict | None = None

    @property
    def params(self) -> dict[str, dict]:
        """target -> {parameter name: value (float, or list for per-domain parameters)}: the parameter values, named as
        in the law's paper (e.g. Shukor et al. 2025 eqs. 2.4-2.5: E, A, alpha, B, beta, C_i, gamma_i)."""
        law = get_law(self.law)
        return {t: law.parameter_values(law.unflatten(self.coordinates[j], self.k)) for j, t in enumerate(self.targets)}

    def run_table(self, runs) -> RunTable:
        """``runs`` as a RunTable with this fit's weight, N and D columns: a RunTable (whose weight columns must be
        the fit's), or a DataFrame or file (read with the fit's columns; targets it lacks are not needed)."""
        if isinstance(runs, RunTable):
            if runs.k == self.k and runs.weight_columns != self.weight_columns:
                raise MixlawError(
                    f"the table's weight columns ({', '.join(runs.weight_columns)}) are not those this "
                    f"fit was made with ({', '.join(self.weight_columns)})"
                )
            return runs
        frame = runs if isinstance(runs, pd.DataFrame) else read_table(runs)
        needed = [*(("weight", c) for c in self.weight_columns), ("size", self.n_column), ("token", self.d_column)]
        missing = [(role, c) for role, c in needed if c is not None and c not in frame.columns]
        if missing:
            role, column = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MixlawError(
                f"unknown {role} column {column!r}{more}: the table has no such column, and this fit was "
                f"made with "
                + (f"weight columns {', '.join(self.weight_columns)}" if self.weight_columns else "no weight columns")
                + "".join(f", {what} column {c}" for what, c in (("N", self.n_column), ("D", self.d_column)) if c)
            )
        present = [t for t in self.targets if t in frame.columns]
        frame = frame.copy()
        dummy = "__mixlaw_no_target__"
        if not present:
            frame[dummy] = 1.0
        return load_runs(
            frame,
            weights=list(self.weight_columns) or None,
            N=self.n_column,
            D=self.d_column,
            targets=present or [dummy],
            warn=False,
            unique_tokens=self.unique_tokens,
        )

    def with_repetition(self, *, rho: float, C_o: float, nu: float, kappa: float) -> FitResult:
        """This fit made repetition-aware with the four repetition parameters given, not fitted: law
        ``<law>_repetition`` (``mixlaw_jax.laws.repetition``), for every target

            L_rep(N, D, h; U) = L(N, D̂, ĥ) + Σ_i C_o N^ν (e_i - 1)₊² e_i^(κ-2) / U_i,   e_i = h_i D / U_i,

        with this fit's coordinates in L and ρ = 1/R*_D in D̂, ĥ. For a table whose runs never repeat a domain, where
        these parameters cannot be identified: take them from a fit to repeated data (e.g. Muennighoff et al.'s
        runs, ``benchmarks/datablations.py``). The objective, diagnostics and settings stay this fit's (they describe
        the base law's fit, not the added parameters); ``optimal_mixture`` then reads the pools from
        ``token_budget``.

        Raises:
          MixlawError: a law that cannot be made repetition-aware, or a value out of range (named).
        """
        from .laws.repetition import REPETITION_PARAMS

        values = {"rho": rho, "C_o": C_o, "nu": nu, "kappa": kappa}
        coordinates = []
        for p in REPETITION_PARAMS:
            value = values[p.name]
            low, high = (0.0, np.inf) if p.positive else p.bounds
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise MixlawError(f"with_repetition: {p.name} must be a number, not {value!r}")
            if not (np.isfinite(value) and low <= value <= high) or (p.positive and value <= 0):
                raise MixlawError(f"with_repetition: {p.name} = {value!r} must lie in the law's range [{low}, {high}]")
            coordinates.append(np.log(value) if p.positive else float(value))
        law = get_law(self.law + "_repetition")  # a MixlawError for a law without h and D
        extra = np.broadcast_to(np.asarray(coordinates), (len(self.targets), len(coordinates)))
        full = np.concatenate([np.asarray(self.coordinates, dtype=float), extra], axis=1)
        if full.shape[1] != law.n_params(self.k):
            raise MixlawError(f"with_repetition: {law.name!r} needs {law.n_params(self.k)} coordinates per target")
        return dataclasses.replace(self, law=law.name, coordinates=full)

    def predict_arrays(self, n, d, h, u=None) -> np.ndarray:
        """Predicted losses (rows, targets) at arrays N (rows,), D (rows,), h (rows, k) and, for a law that uses
        them, unique tokens U (rows, k_u; +inf: unlimited).

        Raises MixlawError naming the rows where the law overflows (e.g. far outside the fitted N, D).
        """
        pred, n, d = self._predict_unchecked(n, d, h, u)
        self._warn_mixtures_outside(np.asarray(h, float))
        bad = ~np.isfinite(pred)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise MixlawError(
                f"the fitted law gives a non-finite loss for {self.targets[col]!r} at row {row} "
                f"(N = {n[row]:.6g}, D = {d[row]:.6g}; {int(bad.any(axis=1).sum())} rows in all): "
                f"far outside the fitted range"
            )
        self._warn_absurd_losses(pred)
        return pred

    def predict_unchecked(self, n, d, h, u=None) -> np.ndarray:
        """``predict_arrays`` without the finiteness check and the warning about mixtures outside the fitted ones:
        inf or NaN where the law overflows (for a figure that masks those points and says so)."""
        return self._predict_unchecked(n, d, h, u)[0]

    def _predict_unchecked(self, n, d, h, u=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        law = get_law(self.law)
        h = np.asarray(h, float)
        if h.ndim != 2 or h.shape[1] != self.k:
            raise MixlawError(f"h must have shape (rows, {self.k}) for this fit's {self.k} domains, not {h.shape}")
        rows = h.shape[0]
        n = np.ones(rows) if n is None else np.broadcast_to(np.asarray(n, float), (rows,))
        d = np.ones(rows) if d is None else np.broadcast_to(np.asarray(d, float), (rows,))
        self._warn_far_outside(n, d)
        if law.uses_u:
            if u is None:
                raise MixlawError(
                    f"law {law.name!r} needs U (unique tokens per domain) to predict; load the table with "
                    f"unique_tokens=..."
                )
            u = np.asarray(u, float)
            k_u = max(self.k, 1)
            u = np.broadcast_to(u.reshape(-1, k_u) if u.ndim < 2 else u, (rows, k_u))
        else:
            u = None
        x = Inputs.from_arrays(n, d, h, u)
        return np.asarray(predict_all(law, self.k, jnp.asarray(self.coordinates), x)).T, n, d

    def _warn_far_outside(self, n: np.ndarray, d: np.ndarray) -> None:
        """A MixlawWarning when rows lie more than a factor EXTRAPOLATION_WARN outside the fitted N or D range."""
        for name, values in (("N", n), ("D", d)):
            fitted = (self.scale_range or {}).get(name)
            if fitted is None:
                continue
            lo, hi = fitted
            far = (values < lo / EXTRAPOLATION_WARN) | (values > hi * EXTRAPOLATION_WARN)
            if far.any():
                row = int(np.flatnonzero(far)[0])
                warn_user(
                    f"{int(far.sum())} rows have {name} more than {EXTRAPOLATION_WARN:g}x outside the "
                    f"fitted range [{lo:.4g}, {hi:.4g}] (first: row {row}, {name} = {values[row]:.4g}); "
                    f"the law's predictions there are extrapolations far beyond the data"
                )

    def _warn_mixtures_outside(self, h: np.ndarray) -> None:
        """A MixlawWarning when rows put more than MIXTURE_EXTRAPOLATION_WARN more (or less) weight on a domain than
        any fitted row did."""
        if not self.k or not get_law(self.law).uses_h:
            return
        lo, hi = np.asarray(self.weight_range, float).T
        beyond = np.maximum(lo - h, h - hi)  # (rows, k): how far each weight lies outside its domain's fitted range
        far = beyond > MIXTURE_EXTRAPOLATION_WARN
        if far.any():
            row, i = (int(v) for v in np.argwhere(far)[0])
            first = f"row {row}, {self.weight_columns[i]} = {h[row, i]:.4g}, fitted [{lo[i]:.4g}, {hi[i]:.4g}]"
            warn_user(
                f"{int(far.any(axis=1).sum())} rows have a mixture weight more than {MIXTURE_EXTRAPOLATION_WARN:g} "
                f"outside the fitted range of its domain (first: {first}); the law's predictions there are "
                f"extrapolations beyond the mixtures it was fitted to"
            )

    def _warn_absurd_losses(self, pred: np.ndarray) -> None:
        """A MixlawWarning per target with predictions above LOSS_EXTRAPOLATION_WARN times its largest fitted loss,
        or not above 0."""
        for j, target in enumerate(self.targets):
            fitted = (self.loss_range or {}).get(target)
            if fitted is None:
                continue
            absurd = (pred[:, j] > LOSS_EXTRAPOLATION_WARN * fitted[1]) | (pred[:, j] <= 0)
            if absurd.any():
                row = int(np.flatnonzero(absurd)[0])
                warn_user(
                    f"{int(absurd.sum())} predictions of {target!r} are absurd for a loss: above "
                    f"{LOSS_EXTRAPOLATION_WARN:g}x the largest it was fitted to ({fitted[1]:.4g}) or not above 0 "
                    f"(first: row {row}, {pred[row, j]:.4g}); the law is far outside what its data support there"
                )

    def predict(self, runs) -> pd.DataFrame:
        """Predicted loss per target (one column each) for a RunTable, DataFrame or file of runs."""
        table = self.run_table(runs)
        if table.k != self.k:
            raise MixlawError(f"the table has {table.k} weight columns; this fit has {self.k}")
        pred = self.predict_arrays(table.n, table.d, table.h, table.u)
        return pd.DataFrame(pred, columns=list(self.targets), index=table.frame.index)

    def mre(self, runs) -> dict[str, float]:
        """Mean relative error (%) per target on the rows of ``runs`` where that target is observed."""
        table = self.run_table(runs)
        pred = self.predict(table)
        out = {}
        for t in self.targets:
            if t in table.targets:
                with np.errstate(over="ignore"):
                    out[t] = metrics.mre(table.losses[:, table.targets.index(t)], pred[t].to_numpy())
                if not np.isfinite(out[t]):
                    raise MixlawError(
                        f"the relative error of {t!r} overflows: the fitted law's predictions are "
                        f"astronomically far from the observed losses (far outside the fitted range, or a "
                        f"corrupt fit)"
                    )
        return out

    def summary(self) -> pd.DataFrame:
        """One row per target: objective, diagnostics and flagged parameters."""
        rows = []
        for j, t in enumerate(self.targets):
            d = self.diagnostics[t]
            rows.append(
                {
                    "target": t,
                    "objective": self.objective[j],
                    "gradient_norm": d.gradient_norm,
                    "starts_in_best_basin": f"{d.n_in_basin}/{d.n_final}",
                    "confirmed": d.confirmed,
                    "status": d.status.label,
                    "flags": "; ".join(d.flags),
                }
            )
        return pd.DataFrame(rows).set_index("target")

    def to_dict(self) -> dict:
        return {
            "kind": "fit",
            "schema_version": FIT_SCHEMA_VERSION,
            "law": self.law,
            "k": self.k,
            "targets": list(self.targets),
            "weight_columns": list(self.weight_columns),
            "n_column": self.n_column,
            "d_column": self.d_column,
            "weight_range": np.asarray(self.weight_range).tolist(),
            "coordinates": np.asarray(self.coordinates).tolist(),
            "objective": np.asarray(self.objective).tolist(),
            "params": _finite_or_none(self.params),
            "diagnostics": {t: d.to_dict() for t, d in self.diagnostics.items()},
            "settings": self.settings.to_dict(),
            "provenance": self.provenance,
            "scale_range": self.scale_range,
            "loss_range": self.loss_range,
        } | ({} if self.unique_tokens is None else {"unique_tokens": self.unique_tokens})

    def save(self, path) -> None:
        """Write the result as versioned JSON, atomically (a crash leaves the old file or none)."""
        _io.atomic_write_json(path, self.to_dict())


def _finite_or_none(tree):
    if isinstance(tree, dict):
        return {k: _finite_or_none(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_finite_or_none(v) for v in tree]
    return tree if np.isfinite(tree) else None


def _loss_range(value, targets) -> dict | None:
    """A fit file's ``loss_range`` checked: None, or every target -> [smallest, largest] as finite floats."""
    if value is None:
        return None
    out = {t: [float(v) for v in value[t]] for t in targets}
    if not all(len(r) == 2 and np.isfinite(r).all() for r in out.values()):
        raise ValueError(f"loss_range must give every target [smallest, largest] finite losses, not {value!r}")
    return out


def load_fit(path) -> FitResult:
    """Read a :class:`FitResult` written by ``FitResult.save``; a clear error for corrupt or other-version files."""
    return fit_from_dict(_io.read_json(path, "fit", FIT_SCHEMA_VERSION), path)


def fit_from_dict(p: dict, path) -> FitResult:
    """A :class:`FitResult` from ``FitResult.to_dict()`` output read from ``path`` (named in errors)."""
    try:
        law = get_law(p["law"])
        coordinates = np.asarray(p["coordinates"], dtype=float)
        if coordinates.shape != (len(p["targets"]), law.n_params(p["k"])):
            raise MixlawError(
                f"{path}: coordinates have shape {coordinates.shape}, expected "
                f"({len(p['targets'])}, {law.n_params(p['k'])})"
            )
        return FitResult(
            law=p["law"],
            k=p["k"],
            targets=tuple(p["targets"]),
            weight_columns=tuple(p["weight_columns"]),
            n_column=p["n_column"],
            d_column=p["d_column"],
            weight_range=np.asarray(p["weight_range"], dtype=float).reshape(-1, 2),
            coordinates=coordinates,
            objective=np.asarray(p["objective"], dtype=float),
            diagnostics={t: Diagnostics.from_dict(d) for t, d in p["diagnostics"].items()},
            settings=FitSettings.from_dict(p["settings"]),
            provenance=p["provenance"],
            scale_range=p.get("scale_range"),
            loss_range=_loss_range(p.get("loss_range"), p["targets"]),
            unique_tokens=p.get("unique_tokens"),
        )
    except MixlawError as err:
        raise MixlawError(f"{path} is not a valid fit file: {err}") from None
    except KeyError as err:
        raise MixlawError(f"{path} is not a valid fit file: the field {err} is missing") from None
    except (TypeError, ValueError) as err:
        raise MixlawError(f"{path} is not a valid fit file: {err}") from None


@functools.partial(jax.jit, static_argnums=(0, 1))
def predict_all(law, k: int, coordinates: jax.Array, x: Inputs) -> jax.Array:
    """(targets, rows) raw-space predictions."""
    return jax.vmap(lambda u: law.predict(law.unflatten(u, k), x))(coordinates)


@functools.partial(jax.jit, static_argnums=(0, 1))
def prediction_jacobian(law, k: int, coordinates: jax.Array, x: Inputs) -> jax.Array:
    """(rows, P) raw-space Jacobian ∂L(x_i; θ) / ∂θ_p of one target's predictions at its coordinates (P,)."""
    return jax.jacfwd(lambda u: law.predict(law.unflatten(u, k), x))(coordinates)
