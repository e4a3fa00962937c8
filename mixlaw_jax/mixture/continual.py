"""Continual pretraining: the critical proportion of a new domain (Ye et al. 2024, "Data Mixing Laws", sec. 5).

Ye et al.'s setting: a model pretrained on the original data (the Pile) is trained further on a mixture of that data
and a new domain (Python code), in proportions (1 - p, p). The more of the new domain, the higher the loss on the
original data climbs; the *critical proportion* is where that loss meets its value before continual pretraining. They
fit their mixing law to continual-pretraining runs at a few proportions and read the critical proportion off the
fitted law (Pythia-70M: a Pile share of 0.286, i.e. at most ~71% Python, in yegcjs/mixinglaws,
continue_training.ipynb; the run they then trained at that share ends at the Pile loss it started from).

Here, on any fitted mixing law and target t: along the path h(p) = (1 - p) h_base + p e_new, p in [0, 1], from the
original data's mixture h_base (the other domain, for a two-domain fit) to the new domain alone,

    p* = max {p in [0, 1] : L_t(N, D, h(p)) <= threshold},

the largest share of the new domain that keeps the target's loss at or below the threshold. It is found on a grid of
``GRID`` proportions, then the step from the last grid point at or below the threshold to the next is narrowed by
rounds of ``REFINE`` points down to ``TOLERANCE``; a window of the path at or below the threshold narrower than one
grid step (1 / (GRID - 1)) beyond the last one found can be missed. No fitting: only evaluations of the fitted law.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from ..errors import MixlawError
from ..laws import Inputs, get_law
from ..options import real_number
from ..results import FitResult, predict_all
from .constraints import budget_array

GRID = 2049
REFINE = 33
TOLERANCE = 1e-12
#: The original data's mixture must sum to 1 within this.
BASE_SUM_TOL = 1e-6


@dataclasses.dataclass(frozen=True)
class CriticalProportion:
    """The critical proportion of a new domain for one target (module docstring).

    Attributes:
      target, new_domain: the target column and the new domain's weight column.
      threshold: the loss the target must stay at or below.
      proportion: p*, the largest share of the new domain with the target's loss at or below the threshold (1.0
        when the whole path is).
      loss: the target's predicted loss at p*.
      loss_without_new_domain: its predicted loss at p = 0 (the original data alone).
      mixture: h(p*), weight column -> weight.
    """

    target: str
    new_domain: str
    threshold: float
    proportion: float
    loss: float
    loss_without_new_domain: float
    mixture: dict[str, float]


def critical_proportion(
    fit: FitResult,
    *,
    new_domain: str,
    threshold: float,
    target: str | None = None,
    base: Mapping[str, float] | None = None,
    N=None,
    D=None,
) -> CriticalProportion:
    """The largest proportion of ``new_domain`` that keeps ``target``'s loss at or below ``threshold``.

    Args:
      fit: a fitted mixing law (``mixlaw_jax.fit`` or ``load_fit``).
      new_domain: the weight column of the new domain.
      threshold: the loss ``target`` must not exceed (Ye et al.: its loss before continual pretraining).
      target: the target column (default: the fit's only target).
      base: the original data's mixture over the other domains, weight column -> weight, summing to 1; default,
        for a two-domain fit, the other domain.
      N, D: model size and training tokens, for a law that uses them (ignored otherwise).

    Raises MixlawError for a target, domain or mixture the fit does not have, a threshold that is not a finite
    number > 0, and a threshold no proportion meets (naming the lowest loss reachable along the path and where).
    """
    if not isinstance(fit, FitResult):
        raise MixlawError(f"fit must be a FitResult (mixlaw_jax.fit or load_fit), not {type(fit).__name__}")
    law = get_law(fit.law)
    target = _target(fit, target)
    threshold = real_number(threshold, "threshold")
    if threshold <= 0:
        raise MixlawError(f"threshold must be > 0 (a loss), not {threshold!r}")
    columns = list(fit.weight_columns)
    if new_domain not in columns:
        raise MixlawError(f"unknown new_domain {new_domain!r}; the fit's weight columns: {', '.join(columns)}")
    new = np.zeros(fit.k)
    new[columns.index(new_domain)] = 1.0
    start = _base_mixture(columns, new_domain, base)
    log_n, log_d = (_log_scale(law, value, name) for value, name in ((N, "N"), (D, "D")))
    coordinates = jnp.asarray(np.asarray(fit.coordinates, float)[[fit.targets.index(target)]])

    def loss(p: np.ndarray) -> np.ndarray:
        h = (1.0 - p)[:, None] * start + p[:, None] * new
        x = Inputs.from_logs(np.full(len(p), log_n), np.full(len(p), log_d), h)
        return np.asarray(predict_all(law, fit.k, coordinates, x))[0]

    grid = np.linspace(0.0, 1.0, GRID)
    values = loss(grid)
    meets = np.isfinite(values) & (values <= threshold)
    if not meets.any():
        finite = np.isfinite(values)
        if not finite.any():
            raise MixlawError(f"the fitted law gives no finite loss for {target!r} at any proportion of {new_domain!r}")
        best = int(np.flatnonzero(finite)[np.argmin(values[finite])])
        raise MixlawError(
            f"no proportion of {new_domain!r} keeps the loss of {target!r} at or below the threshold {threshold:.6g}: "
            f"the lowest loss reachable along the path is {values[best]:.6g}, at {new_domain!r} = {grid[best]:.4g}"
        )
    last = int(np.flatnonzero(meets)[-1])
    lo, hi = grid[last], grid[min(last + 1, GRID - 1)]
    while hi - lo > TOLERANCE:
        points = np.linspace(lo, hi, REFINE)
        refined = loss(points)
        inside = np.flatnonzero(np.isfinite(refined) & (refined <= threshold))[-1]  # points[0] = lo meets it
        lo, hi = points[inside], points[min(inside + 1, REFINE - 1)]
    at = loss(np.array([lo, 0.0]))
    mixture = (1.0 - lo) * start + lo * new
    return CriticalProportion(
        target,
        new_domain,
        threshold,
        float(lo),
        float(at[0]),
        float(at[1]),
        {c: float(w) for c, w in zip(columns, mixture)},
    )


def _target(fit: FitResult, target: str | None) -> str:
    if target is None:
        if len(fit.targets) != 1:
            names = ", ".join(fit.targets)
            raise MixlawError(f"the fit has {len(fit.targets)} targets; name one of {names}: target=...")
        return fit.targets[0]
    if target not in fit.targets:
        raise MixlawError(f"unknown target {target!r}; the fit's targets: {', '.join(fit.targets)}")
    return target


def _base_mixture(columns: list[str], new_domain: str, base: Mapping[str, float] | None) -> np.ndarray:
    """The original data's mixture h_base (k,): ``base`` checked, or the other domain of a two-domain fit."""
    if base is None:
        if len(columns) != 2:
            raise MixlawError(
                f"the fit has {len(columns)} domains: pass base=..., the original data's mixture over the domains "
                f"other than {new_domain!r} (weight column -> weight, summing to 1)"
            )
        base = {c: 1.0 for c in columns if c != new_domain}
    if not isinstance(base, Mapping):
        raise MixlawError(f"base must be a mapping weight column -> weight, not {type(base).__name__}")
    h = np.zeros(len(columns))
    for column, weight in base.items():
        if column not in columns:
            raise MixlawError(f"base names unknown weight column {column!r}; the fit's: {', '.join(columns)}")
        weight = real_number(weight, f"base[{column!r}]")
        if weight < 0:
            raise MixlawError(f"base[{column!r}] = {weight!r}: weights must be >= 0")
        if column == new_domain and weight > 0:
            raise MixlawError(f"base[{column!r}] = {weight!r}: the original data holds none of the new domain")
        h[columns.index(column)] = weight
    if abs(h.sum() - 1.0) > BASE_SUM_TOL:
        raise MixlawError(f"base weights sum to {h.sum():.9g}, not 1")
    return h


def _log_scale(law, value, name: str) -> float:
    """log N or log D for a law that uses it (a single finite value > 0, required); 0 for one that does not."""
    uses = law.uses_n if name == "N" else law.uses_d
    if not uses:
        return 0.0
    values = budget_array(value, name)
    if values is None:
        raise MixlawError(f"law {law.name!r} needs {name}: pass {name}=...")
    if values.size != 1:
        raise MixlawError(f"{name} must be one value, not {values.size}")
    return float(np.log(values[0]))
