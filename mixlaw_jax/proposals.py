"""Which runs to train next: candidates scored by how much they would pin down h* (or its loss) per unit of cost.

An ensemble of R coordinate sets θ_r of the law describes what the table leaves uncertain. For the decision at the
target budget (N*, D*) each member has its own optimal mixture h*_r and loss ℓ_r = Σ_t w_t L_t(N*, D*, h*_r; θ_r);
the criterion is the total variance of q_r = h*_r (``"h_star"``, Σ_i Var h*_i) or of q_r = ℓ_r (``"loss"``). A
candidate run x (mixture, N, D) would observe y(x) = f(x) + ε for every target, f_t(x) = L_t(x; θ), ε ~ N(0, Σ),
Σ = diag(σ_t²) (σ_t²: the fit's mean squared residual on the table).

The ensemble is, by default, the Laplace approximation around the fit. Per target, the free coordinates' covariance
is V = (JᵀJ / σ² + Λ⁻¹)⁻¹: J the Jacobian of the law's predictions on the table's observed rows (Gauss–Newton),
Λ a weak prior as wide as a fit's random starts (``_sigma_points``). With V = Σ_j s_j s_jᵀ (s_j = √λ_j v_j, its
eigenpairs), the members are 2P sigma points ± c Δ_j, Δ_j the central difference of h*, ℓ and f along s_j,
(g(θ̂ + τ s_j) − g(θ̂ − τ s_j)) / 2τ with a small τ (``SIGMA_STEP``), and c = √((R − 1) / 2): their covariance is the
linearised one, G V Gᵀ (the delta method; h* is solved at θ̂ ± τ s_j, not differentiated). It has no sampling
noise, is deterministic and needs no refits: on the design benchmark it proposes runs as good as a 100-replicate
Bayesian bootstrap's, in about a tenth of the time (benchmarks/NOTES.md, session 28). Passing a :class:`BootstrapResult`
uses its replicates instead (centred), an ensemble that also sees the law's non-linearity.

Treating (q, f(x)) as jointly Gaussian across the members (an ensemble Kalman update, Evensen 1994), the
observation would remove from the covariance of q

    ΔP_q(x) = C_qf (C_ff + Σ)⁻¹ C_fq,     gain(x) = tr ΔP_q(x),

with C the members' covariances. With A_q (R, Q) and A_f(x) (R, T) the members' deviations and
G = I (R, R) for the table as it is, C_qf = A_qᵀ G A_f / (R - 1) and C_ff = A_fᵀ G A_f / (R - 1). Choosing a run
conditions the ensemble: G ← G - G a (aᵀ G a / (R - 1) + Σ)⁻¹ aᵀ G / (R - 1), a = A_f(x_chosen); the next run is
scored under the updated G, so a second copy of a chosen point gains only what a repeat measurement would (less
noise), and points that tell the same thing lose their value together. For the Laplace ensemble this is the
linear-Gaussian (Fisher information) update exactly. The batch is picked greedily by
gain(x) / cost(x), cost = 6·N·D FLOPs by default; a candidate at the same (N, D) within ``radius`` of a chosen
mixture is not chosen again (diversity).

At a bound of the weights (h*_i = lo_i or hi_i) h*_i does not move for small changes of θ, so the members show no
spread there, even when the data cannot tell whether the bound holds: on the design benchmark's SlimPajama
campaigns a fifth of the steps had an h* on a vertex of the bounds with every sd ~1e-15, and the criterion then chose
on rounding noise. For ``"h_star"`` each domain at a bound adds a column to q: the members' distance t_i from the
bound of the objective's one-dimensional optimum along the feasible direction into the domain, censored to what the
bounds allow (``_bound_deviations``), so that the criterion pays for runs that say which side of the bound h* lies on
while that is in doubt, and ignores a bound that clearly holds.

Every candidate x member x target is one batched evaluation of the law (``predict_all`` under ``vmap``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .bootstrap import BootstrapResult
from .data import RunTable
from .design import design_swarm, nearest_distances
from .engine.space import make_space
from .errors import MixlawError, warn_user
from .fitting import fit as fit_law
from .laws import get_law
from .mixture import optimal_mixture, replicate_mixtures
from .mixture.constraints import active_bounds, make_request
from .mixture.solver import weighted_loss
from .nested import SIZE_LAW
from .options import RESAMPLE, Search, real_number, whole_number
from .results import FitResult, predict_all, prediction_jacobian

CRITERIA = ("h_star", "loss")
COSTS = ("flops", "runs")
#: Default number of candidate runs (space-filling mixtures x scales).
DEFAULT_CANDIDATES = 1000
#: A proposal from a bootstrap needs at least this many valid replicates (the covariances are estimated from them).
MIN_REPLICATES = 10
#: The noise variance is floored at this fraction of the mean squared loss (a law that interpolates its table).
NOISE_FLOOR = 1e-12
#: The Laplace ensemble's sigma points sit this many standard deviations out along each principal axis; their
#: central differences are scaled back to one (module docstring). A small step is the linearisation itself (the
#: delta method): on the unit tests' 12-mixture table, steps of 0.1 and 0.01 give h* sds within 2% of each other
#: (and within 1.5x of a Bayesian bootstrap's), a step of 1 sd leaves the linear regime (3x larger).
SIGMA_STEP = 0.1
#: The curvature along a bound's release direction is floored at this fraction of the Hessian's largest diagonal
#: entry (an objective nearly linear there: the censoring to the bounds then limits the spread, ``_bound_deviations``).
CURVATURE_FLOOR = 1e-6
#: ``"h_star"``'s default candidates sit at each table size's largest D times these fractions (those at or above the
#: smallest D the table has at that size): per FLOP, runs a quarter as long pin h* down faster than full ones, so
#: half the grid's compute buys four times the batches (benchmarks/NOTES.md, session 33).
TOKEN_FRACTIONS = (1.0, 0.5, 0.25)
#: Two chosen runs at one scale are at least this fraction of the candidates' median nearest-neighbour distance apart.
DIVERSITY = 1.0


@dataclasses.dataclass(frozen=True)
class _Ensemble:
    """Centred replicate values: the criterion's (R, Q), the parameters' (R, P) and the candidates' (R, M, T)."""

    quantity: np.ndarray
    quantity_names: list[str]
    parameters: np.ndarray
    parameter_names: list[str]
    predictions: np.ndarray
    noise: np.ndarray  # (T,) σ_t²


def propose_runs(
    runs: RunTable,
    law,
    *,
    budget=None,
    n: int = 4,
    candidates=None,
    cost="flops",
    criterion: str = "h_star",
    targets: Sequence[str] | None = None,
    target_weights=None,
    weight_bounds="data",
    fixed: Mapping[str, float] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """The n runs that would most reduce the uncertainty of h* (or of the loss at h*) per unit of training cost.

    Args:
      runs: the table trained so far (``load_runs``).
      law: a law (name or :class:`Law`) to fit here, or a :class:`FitResult` of ``runs``: the ensemble is the
        Laplace approximation around the fit (module docstring); or a :class:`BootstrapResult` of ``runs``
        (fitted to this very table): the ensemble is its replicates.
      budget: (N*, D*), the target scale of the decision; None for a law without N and D.
      n: the runs to propose (a batch, chosen greedily; see the module docstring).
      candidates: a DataFrame of candidate runs (the fit's weight columns, and its N and D columns), or the number
        of default candidates: space-filling mixtures within the weight bounds (``design_swarm``) at each model
        size of the table (its largest D; for ``"h_star"`` also a half and a quarter of it, where the table has
        rows that short at that size) and one size up (D scaled alike for ``"h_star"``, the same D for
        ``"loss"``; default 1000).
      cost: ``"flops"`` (6·N·D, default), ``"runs"`` (each run costs 1), or a function (N, D) -> costs > 0.
      criterion: ``"h_star"`` (Σ_i Var h*_i, a domain at a bound by the censored spread of its distance from it:
        the mixture decision) or ``"loss"`` (Var of the weighted loss at h*: its level at the budget, which small
        runs pin down poorly, so it chooses larger ones; ``"h_star"`` pins h* down faster; benchmarks/NOTES.md,
        sessions 29–31, measures both on the design benchmark's campaigns). With fewer than three model sizes in
        the table (and N* beyond them) a warning says the loss at N* is not identified, and under ``"loss"`` the
        batch starts with the best run one size up.
      targets, target_weights, weight_bounds, fixed: the objective and the feasible mixtures, as in
        :func:`optimal_mixture`; candidates must lie within the same bounds.
      seed: seed of the fit (for a law name), the h* starts and the default candidates.
      progress: progress bars.

    Returns:
      One row per proposed run, best first: the weight columns, the N and D columns, ``cost``,
      ``variance_reduction`` (the fraction of the criterion's variance the run removes, given the runs above it),
      ``score`` (that fraction per unit of cost) and ``pins_down`` (the part of h* and the law parameter whose
      variance it reduces most). ``attrs``: ``criterion``, ``budget``, ``targets``, ``h_star`` and ``h_star_sd``
      ({domain: value}; at a bound, the sd of the censored distance from it), ``loss_at_h_star`` and
      ``loss_at_h_star_sd``, ``variance_before`` and ``variance_after`` (the criterion's total variance now and
      predicted after the whole batch), ``ensemble`` (``"laplace"`` or ``"bootstrap"``), ``members`` (sigma points,
      or valid replicates, behind it), ``resample`` (how a bootstrap drew its replicates; None for the Laplace
      ensemble), ``candidates``, ``radius``.

    Raises:
      MixlawError: n larger than the candidate set, candidates outside the bounds, a law without mixtures, a table
        with too few rows for the law's parameters, or a bootstrap with too few valid replicates. A budget within
        the table's scales is warned about (``MixlawWarning``), not refused.
    """
    n = whole_number(n, "n", minimum=1)
    if criterion not in CRITERIA:
        raise MixlawError(f"criterion must be {' or '.join(map(repr, CRITERIA))}, not {criterion!r}")
    fit, boot = _fit_or_bootstrap(runs, law, seed, progress)
    law = get_law(fit.law)
    N, D = _budget(law, budget, runs)
    options = dict(targets=targets, target_weights=target_weights, weight_bounds=weight_bounds, fixed=fixed)
    request = make_request(fit, token_budget=None, reference=None, **options)
    box = request.constraints.at(None if D is None else np.asarray([D]))
    box.raise_if_infeasible()
    lower, upper = box.lower[0], box.upper[0]
    objective_index = [fit.targets.index(t) for t in request.targets]
    noise = _noise(fit, runs)
    if boot is None:
        coordinates = _sigma_points(fit, runs, objective_index, noise)
    else:
        valid = boot.valid[:, objective_index].all(axis=1) & boot.valid.all(axis=1)
        if valid.sum() < MIN_REPLICATES:
            raise MixlawError(
                f"only {int(valid.sum())} of {boot.n_replicates} bootstrap replicates of {law.name!r} have a "
                f"finite fit on every target; proposals need at least {MIN_REPLICATES}: the law cannot be "
                f"bootstrapped on this table (too few runs for its parameters?)"
            )
        coordinates = boot.coordinates[valid]
    point = optimal_mixture(fit, N=N, D=D, seed=seed, **options)
    h_point = point.h[0, -1]
    h_members, loss_members, _ = replicate_mixtures(fit, coordinates, N=N, D=D, seed=seed, warm=h_point, **options)
    if not (np.isfinite(h_members).all() and np.isfinite(loss_members).all()):
        raise MixlawError(
            f"a member of the {'Laplace' if boot is None else 'bootstrap'} ensemble gives a non-finite loss at the "
            f"budget N = {N}, D = {D}: the budget is far outside what the law can extrapolate to from this table"
        )
    frame = _candidates(candidates, fit, runs, law, lower, upper, criterion, seed)
    table = fit.run_table(frame)
    _check_within(table, frame, fit.weight_columns, lower, upper)
    if n > len(frame):
        raise MixlawError(f"n = {n} runs asked for, but there are only {len(frame)} candidates")
    costs = _costs(cost, table, law)
    pred = np.asarray(
        jax.vmap(lambda c: predict_all(law, fit.k, c, table.inputs()))(jnp.asarray(coordinates))
    )  # (R, T, M)
    finite = np.isfinite(pred).all(axis=(0, 1))
    if not finite.all():
        warn_user(
            f"{int((~finite).sum())} of {len(frame)} candidates are left out: some ensemble member's law gives a "
            f"non-finite loss there (far outside the fitted range)"
        )
        if finite.sum() < n:
            raise MixlawError(f"only {int(finite.sum())} candidates have finite predictions; n = {n} asked for")
    deviations = _sigma_deviations if boot is None else _centred
    h_deviations, loss_deviations = deviations(h_members), deviations(loss_members[:, None])
    at_bound, bound_names, bound_deviations = _bound_deviations(
        request, N, D, h_point, lower, upper, coordinates[:, objective_index], deviations
    )
    h_sd = _member_sd(h_deviations)
    h_sd[at_bound] = np.hypot(h_sd[at_bound], _member_sd(bound_deviations))
    if criterion == "h_star":
        quantity = np.concatenate([h_deviations, bound_deviations], axis=1)
        names = [f"h*[{d}]" for d in fit.weight_columns] + bound_names
    else:
        quantity, names = loss_deviations, ["loss at h*"]
    parameter_names = [f"{p} of {t}" for t in request.targets for p in law.names(fit.k)]
    ensemble = _Ensemble(
        quantity=quantity,
        quantity_names=names,
        parameters=deviations(coordinates[:, objective_index].reshape(len(coordinates), -1)),
        parameter_names=parameter_names,
        predictions=deviations(np.transpose(pred, (0, 2, 1))),
        noise=noise,
    )
    radius = DIVERSITY * _median_spacing(table.h)
    first = _first_pick(law, runs, table, N, criterion, finite)
    chosen, reductions, why, total_before, total_after = _greedy(ensemble, costs, table, finite, n, radius, first)
    out = frame.iloc[chosen].reset_index(drop=True)
    out.attrs = {}
    out["cost"] = costs[chosen]
    out["variance_reduction"] = reductions
    out["score"] = np.asarray(reductions) / costs[chosen]
    out["pins_down"] = why
    loss_sd = float(_member_sd(loss_deviations)[0])
    out.attrs.update(
        criterion=criterion,
        budget=None if N is None and D is None else [N, D],
        targets=list(request.targets),
        h_star={d: float(v) for d, v in zip(fit.weight_columns, h_point)},
        h_star_sd={d: float(v) for d, v in zip(fit.weight_columns, h_sd)},
        loss_at_h_star=float(point.objective[0, -1]),
        loss_at_h_star_sd=loss_sd,
        variance_before=total_before,
        variance_after=total_after,
        ensemble="laplace" if boot is None else "bootstrap",
        members=len(coordinates),
        resample=None if boot is None else boot.resample,
        candidates=int(finite.sum()),
        radius=radius,
        law=law.name,
    )
    return out


def describe_ensemble(attrs: Mapping) -> str:
    """How a ``propose_runs`` result's ensemble was made, for a person: 'the Laplace approximation around the fit
    (50 sigma points)' or '100 bootstrap replicates (Bayesian bootstrap)'."""
    if attrs["ensemble"] == "laplace":
        return f"the Laplace approximation around the fit ({attrs['members']} sigma points)"
    return f"{attrs['members']} bootstrap replicates ({RESAMPLE[attrs['resample']]})"


def _fit_or_bootstrap(runs: RunTable, law, seed, progress) -> tuple[FitResult, BootstrapResult | None]:
    """(the fit, its bootstrap or None): the given bootstrap or fit (checked to be of ``runs``), or a fit of ``law``
    to ``runs`` here (the default search)."""
    if not isinstance(runs, RunTable):
        raise MixlawError(f"runs must be a RunTable (load_runs), not {type(runs).__name__}")
    if isinstance(law, BootstrapResult | FitResult) and law.provenance.get("table_hash") not in (None, runs.hash()):
        what = "bootstrap" if isinstance(law, BootstrapResult) else "fit"
        raise MixlawError(f"the {what} was fitted to another table than runs; pass a fit or bootstrap of this table")
    if isinstance(law, BootstrapResult):
        _require_replicates(law.n_replicates, f"the bootstrap has {law.n_replicates} replicates")
        return law.fit, law
    law_obj = get_law(law.law if isinstance(law, FitResult) else law)
    if not law_obj.uses_h:
        raise MixlawError(f"law {law_obj.name!r} has no mixture h: there is no optimal mixture to pin down")
    n_params = law_obj.n_params(runs.k)
    rows = runs.observed.sum(axis=0)
    if rows.min() <= n_params:
        j = int(np.argmin(rows))
        raise MixlawError(
            f"law {law_obj.name!r} has {n_params} parameters for {runs.k} domains, and target "
            f"{runs.targets[j]!r} has {int(rows[j])} observed rows: too few to say how uncertain the law is "
            f"(proposals need more rows than parameters)"
        )
    if isinstance(law, FitResult):
        return law, None
    return fit_law(runs, law_obj, search=Search(seed=seed), progress=progress), None


def _sigma_points(fit: FitResult, runs: RunTable, index: list[int], noise: np.ndarray) -> np.ndarray:
    """(2 Σ_t P_t, T, P) coordinates θ̂ ± τ s_j, s_j the scaled eigenvectors of target t's Laplace covariance
    V = (JᵀJ / σ_t² + Λ⁻¹)⁻¹ over its P_t free coordinates (J: the law's Jacobian on the target's observed rows),
    for each target t in ``index``; pairs (+, −) are adjacent, the other targets stay at θ̂.

    Λ = diag(w_p / 2)², w_p the width of the search's init box of coordinate p: a weak prior, as wide as the starts
    a fit draws, that bounds the directions the table does not inform (on a table with two model sizes and two
    token counts, A and B of E + A/N^α + B/D^β are not separately identified, and σ² (JᵀJ)⁻¹ alone puts them 100
    log units out). A coordinate at one of its bounds (as a fit reports it, ``ParamSpace.at_bounds``) stays there:
    the bound, not the data, holds it, and moving it past the bound would leave the law's domain (e.g. a negative
    offset)."""
    law = get_law(fit.law)
    space = make_space(law, fit.k, fit.settings.objective.loss_space, fit.settings.parameter_bounds)
    x = fit.run_table(runs).inputs()
    centre = np.asarray(fit.coordinates, float)
    points = []
    for j in index:
        u = centre[j]
        at_lower, at_upper = space.at_bounds(u)
        free = ~(at_lower | at_upper)
        jacobian = np.asarray(prediction_jacobian(law, fit.k, jnp.asarray(u), x))
        seen = runs.observed[:, runs.targets.index(fit.targets[j])]
        block = jacobian[np.ix_(seen, free)]
        prior = ((space.init_hi - space.init_lo)[free] / 2.0) ** -2.0
        information, axes = np.linalg.eigh(block.T @ block / noise[j] + np.diag(prior))
        steps = np.zeros((int(free.sum()), len(u)))
        steps[:, free] = (axes / np.sqrt(information)).T  # s_j per row
        for step in steps:
            for sign in (1.0, -1.0):
                member = centre.copy()
                member[j] = u + sign * SIGMA_STEP * step
                points.append(member)
    return np.asarray(points)


def _bound_deviations(request, N, D, h, lower, upper, members: np.ndarray, deviations) -> tuple:
    """(the A domains at a bound, their names, (R, A) the members' deviations of h*'s censored distance from it).

    At a bound the delta method sees no spread (h*_i does not move for small changes of θ), though the data may
    not say which side of it h* lies on. With g = ∇_h f(ĥ; θ) of the objective f at the budget, ν the mean of
    g over the free domains, the bound's multiplier is μ_i = ±(g_i − ν) ≥ 0 (lower: +, upper: −), and along the
    feasible direction d_i that moves weight from the free domains into domain i (curvature c_i = d_iᵀ ∇²f d_i > 0)
    the one-dimensional optimum lies t_i = −μ_i / c_i from the bound: inside when t_i > 0. Across the members t_i
    is Gaussian, N(t̂_i, s_i²); h*_i's distance from the bound is t_i censored to [0, r_i], r_i the farthest the
    bounds let the weight move along d_i, and its variance is the fraction ω_i = Var(clip(t, 0, r)) / s_i² of t's:
    near 1 where the bound may well not hold (t̂ ≈ 0, s ≪ r), near 0 where it clearly does (t̂ ≪ −s). The
    deviations returned are √ω_i times t's (their sd is the censored one). A near-linear objective along d_i
    (c_i → 0) makes t and s large together: z = t̂/s = −μ̂/sd(μ) does not depend on c_i, and the censoring bounds
    the variance by r²/4, the spread of a choice between the two ends."""
    active = active_bounds(h, lower, upper)
    at = np.flatnonzero((active == "lower") | (active == "upper"))
    free = active == ""
    if at.size == 0 or not free.any():
        return at, [], np.zeros((len(members), 0))
    log_u = request.log_u_of(1)
    gradients, centre_gradient, hessian = (
        np.asarray(a)
        for a in _objective_derivatives(
            request.law,
            request.k,
            jnp.asarray(request.weights),
            jnp.asarray(members),
            jnp.asarray(request.coordinates),
            jnp.asarray(0.0 if N is None else math.log(N)),
            jnp.asarray(0.0 if D is None else math.log(D)),
            jnp.asarray(h),
            None if log_u is None else log_u[0],
        )
    )
    sign = np.where(active[at] == "lower", 1.0, -1.0)
    directions = -np.broadcast_to(free / free.sum(), (at.size, len(h))).copy()
    directions[np.arange(at.size), at] += 1.0
    directions *= sign[:, None]
    curvature = np.einsum("ak,kl,al->a", directions, hessian, directions)
    curvature = np.maximum(curvature, CURVATURE_FLOOR * np.abs(np.diag(hessian)).max())

    def distance(g):
        return -np.einsum("...k,ak->...a", g, directions) / curvature

    a = deviations(distance(gradients))
    t_hat, s = distance(centre_gradient), _member_sd(a)
    free_room = np.where(sign[:, None] > 0, h - lower, upper - h)[:, free].min(axis=1) * free.sum()
    reach = np.minimum(upper[at] - lower[at], free_room)  # t's feasible range [0, reach]
    spread = np.where(s > 0, s, 1.0)
    omega = np.where(s > 0, _clipped_variance(t_hat, spread, reach) / spread**2, 0.0)
    names = [f"h*[{request.domains[i]}] off its {active[i]} bound" for i in at]
    return at, names, a * np.sqrt(omega)


@functools.partial(jax.jit, static_argnames=("law", "k"))
def _objective_derivatives(law, k: int, weights, members, centre, log_n, log_d, h, log_u):
    """∇_h f(h; θ_r) for every member r (R, k), and ∇_h f and ∇²_h f at the fit's θ (``centre``), for the objective
    f(h; θ) = Σ_t w_t L_t(N, D, h; θ_t) at one budget."""

    def objective(x, coordinates):
        return weighted_loss(law, k, coordinates, weights, log_n, log_d, x, log_u)

    gradients = jax.vmap(jax.grad(objective), in_axes=(None, 0))(h, members)
    return gradients, jax.grad(objective)(h, centre), jax.hessian(objective)(h, centre)


def _clipped_variance(mean: np.ndarray, sd: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Var min(max(t, 0), top) for t ~ N(mean, sd²) (a normal censored to [0, top])."""
    a, b = -mean / sd, (top - mean) / sd
    cdf_a, cdf_b = _normal_cdf(a), _normal_cdf(b)
    pdf_a, pdf_b = _normal_pdf(a), _normal_pdf(b)
    inside, above = cdf_b - cdf_a, 1.0 - cdf_b
    first = mean * inside + sd * (pdf_a - pdf_b) + top * above
    second = (
        mean**2 * inside + 2 * mean * sd * (pdf_a - pdf_b) + sd**2 * (inside + a * pdf_a - b * pdf_b) + top**2 * above
    )
    return np.maximum(second - first**2, 0.0)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Φ(x) = erfc(−x / √2) / 2, elementwise (a few values: numpy, no compiled program)."""
    return 0.5 * np.vectorize(math.erfc, otypes=[float])(-np.asarray(x, float) / math.sqrt(2.0))


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    """φ(x) = exp(−x² / 2) / √(2π)."""
    return np.exp(-0.5 * np.asarray(x, float) ** 2) / math.sqrt(2.0 * math.pi)


def _sigma_deviations(values: np.ndarray) -> np.ndarray:
    """(R, ...) members' deviations from the sigma points' values (pairs +, − adjacent): the central differences
    Δ_j = (g₊ − g₋) / 2τ as ± c Δ_j, c = √((R − 1) / 2), so that Σ_r a_r a_rᵀ / (R − 1) = Σ_j Δ_j Δ_jᵀ."""
    difference = (values[0::2] - values[1::2]) / (2.0 * SIGMA_STEP)
    scaled = math.sqrt((len(values) - 1) / 2.0) * difference
    return np.concatenate([scaled, -scaled])


def _require_replicates(count: int, subject: str) -> None:
    """A MixlawError (``subject`` first) when ``count`` replicates are too few to estimate the covariances from."""
    if count < MIN_REPLICATES:
        raise MixlawError(f"{subject}; proposals estimate covariances from them and need at least {MIN_REPLICATES}")


def _budget(law, budget, runs: RunTable) -> tuple[float | None, float | None]:
    """(N*, D*) validated for the law; a MixlawWarning when it does not lie beyond the table's scales."""
    if not (law.uses_n or law.uses_d):
        if budget is not None:
            raise MixlawError(f"law {law.name!r} uses neither N nor D: it takes no budget")
        return None, None
    if budget is None or isinstance(budget, str) or not isinstance(budget, Sequence) or len(budget) != 2:
        raise MixlawError(f"budget must be (N*, D*), the target model size and tokens, not {budget!r}")
    N, D = (real_number(v, f"budget {name}") for v, name in zip(budget, "ND"))
    if N <= 0 or D <= 0:
        raise MixlawError(f"budget must be (N*, D*) with both > 0, not {tuple(budget)!r}")
    scales = [
        (name, value, column.max())
        for name, value, column, used in (("N", N, runs.n, law.uses_n), ("D", D, runs.d, law.uses_d))
        if used and column is not None
    ]
    within = [f"{name}* = {value:.4g} <= the table's largest {name} ({top:.4g})" for name, value, top in scales]
    if scales and all(value <= top for _, value, top in scales):  # nothing is extrapolated
        warn_user(
            f"the budget lies within the table's scales ({'; '.join(within)}): proposals pay off most where h* "
            f"must be extrapolated to a larger scale; they are computed anyway"
        )
    return N, D


def _first_pick(law, runs: RunTable, table: RunTable, N, criterion: str, usable) -> np.ndarray | None:
    """The candidates the batch's first pick must come from, or None (any): with fewer model sizes in the table
    than the size law E + A/N^α has parameters (``nested.SIZE_LAW``, three) and N* beyond them, the usable ones
    larger than the table's (for ``"loss"``), and a warning either way.

    Two sizes leave E, A and α of E + A/N^α a one-parameter family, and the fit settles somewhere on it: on the
    design benchmark's SlimPajama tables at α = 2.45 (truth 0.12), where the N term has vanished by N = 3e8 and
    the loss at N* = 2.7e9 is E, 0.3 too high, with a linearised sd of 0.011. The ensemble, a linearisation at that
    point, sees no reason to train larger (benchmarks/NOTES.md, session 30)."""
    if not law.uses_n or runs.n is None or N is None:
        return None
    sizes, needed = np.unique(runs.n), SIZE_LAW.n_params(0)
    if len(sizes) >= needed or N <= sizes.max():
        return None
    listed = ", ".join(f"{s:.4g}" for s in sizes)
    above = (table.n > sizes.max() if table.n is not None else np.zeros(table.n_rows, bool)) & usable
    forced = criterion == "loss" and above.any()
    warn_user(
        f"the table has {len(sizes)} model size{'s' if len(sizes) > 1 else ''} ({listed}): {SIZE_LAW.formula} has "
        f"{needed} parameters, so the law's N-dependence rests on where the fit settled, not on the data, and the "
        f"ensemble's sd of the loss at N* = {N:.4g} can be far too small; train "
        f"{'a third size' if len(sizes) == 2 else 'more sizes'}"
        + (" (the batch starts with the best run one size up)" if forced else "")
    )
    return above if forced else None


def _candidates(candidates, fit, runs: RunTable, law, lower, upper, criterion: str, seed) -> pd.DataFrame:
    """The candidate frame: the one given, or space-filling mixtures at the table's sizes (and, for ``"h_star"``,
    shorter token counts) and one size up (``_candidate_scales``)."""
    if isinstance(candidates, pd.DataFrame):
        if candidates.empty:
            raise MixlawError("candidates is an empty table")
        return candidates.reset_index(drop=True)
    count = DEFAULT_CANDIDATES if candidates is None else whole_number(candidates, "candidates", minimum=1)
    scales = _candidate_scales(runs, law, criterion)
    mixtures = max(1, math.ceil(count / len(scales)))
    bounds = np.stack([lower, upper], axis=1)
    try:
        design = design_swarm(
            fit.weight_columns, mixtures, scales=scales, weight_bounds=bounds, method="space-filling", seed=seed
        )
    except MixlawError as error:
        raise MixlawError(f"no candidate mixtures can be made within the weight bounds: {error}") from None
    columns = {"model_size": fit.n_column, "n_tokens": fit.d_column}
    frame = design[list(fit.weight_columns)].copy()
    for source, target in columns.items():
        if target is not None:
            frame[target] = design[source].to_numpy()
    return frame


def _candidate_scales(runs: RunTable, law, criterion: str) -> list[tuple[float, float]]:
    """Each model size of the table at its largest D (for ``"h_star"`` also at ``TOKEN_FRACTIONS`` of it, within
    the D the table covers at that size), and one size up: N times the last ratio of sizes, at D scaled alike for
    ``"h_star"``, at the same D for ``"loss"``.

    The loss's level at N* is what small runs cannot pin down, and the larger N is what pins it; scaling D too
    makes the run so dear that, per FLOP, many small runs win (benchmarks/NOTES.md, session 30). For h*, small and
    short runs at the table's sizes do most of the work, and the cheaper size up drew compute away from them
    (sessions 25 and 33)."""
    n = runs.n if law.uses_n and runs.n is not None else np.ones(runs.n_rows)
    d = runs.d if law.uses_d and runs.d is not None else np.ones(runs.n_rows)
    fractions = TOKEN_FRACTIONS if criterion == "h_star" and law.uses_d and runs.d is not None else (1.0,)
    sizes = np.unique(n)
    d_range = {s: (d[n == s].min(), d[n == s].max()) for s in sizes}  # each size's (shortest, longest) D
    scales = [(float(s), float(top * f)) for s, (low, top) in d_range.items() for f in fractions if top * f >= low]
    if law.uses_n and runs.n is not None:
        step = sizes[-1] / sizes[-2] if len(sizes) > 1 else 2.0
        top_n, top_d = float(sizes[-1]), float(d_range[sizes[-1]][1])
        scaled = law.uses_d and runs.d is not None and criterion == "h_star"
        scales.append((top_n * step, top_d * step if scaled else top_d))
    return scales


def _check_within(table: RunTable, frame: pd.DataFrame, domains, lower, upper, tol: float = 1e-9) -> None:
    """A MixlawError naming the first candidate row and domain whose weight lies outside [lower, upper]."""
    outside = (table.h < lower - tol) | (table.h > upper + tol)
    if outside.any():
        r, i = np.argwhere(outside)[0]
        raise MixlawError(
            f"candidate row {frame.index[r]}: {domains[i]} = {table.h[r, i]:.6g} lies outside its bounds "
            f"[{lower[i]:.6g}, {upper[i]:.6g}] ({int(outside.any(axis=1).sum())} candidates in all); h* is "
            f"sought within these bounds (weight_bounds, fixed)"
        )


def _costs(cost, table: RunTable, law) -> np.ndarray:
    """(M,) the cost of each candidate run: 6·N·D FLOPs, 1 per run, or the user's function of (N, D)."""
    n = table.n if table.n is not None else np.ones(table.n_rows)
    d = table.d if table.d is not None else np.ones(table.n_rows)
    if cost == "flops":
        if table.n is None or table.d is None:
            raise MixlawError("cost='flops' (6 N D) needs N and D columns; pass cost='runs' or a function of (N, D)")
        values = 6.0 * n * d
    elif cost == "runs":
        values = np.ones(table.n_rows)
    elif isinstance(cost, Callable):
        values = np.broadcast_to(np.asarray(cost(n.copy(), d.copy()), dtype=float), (table.n_rows,))
    else:
        raise MixlawError(f"cost must be {' or '.join(map(repr, COSTS))} or a function (N, D) -> costs, not {cost!r}")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        r = int(np.argmax(bad))
        raise MixlawError(f"cost of candidate row {r} is {values[r]!r}; every cost must be finite and > 0")
    return np.asarray(values, dtype=float)


def _noise(fit, runs: RunTable) -> np.ndarray:
    """(T,) σ_t²: the fit's mean squared residual per target on the observed rows, floored (``NOISE_FLOOR``)."""
    table = fit.run_table(runs)
    pred = fit.predict_arrays(table.n, table.d, table.h, table.u)
    out = []
    for j, t in enumerate(fit.targets):
        y = runs.losses[:, runs.targets.index(t)]
        seen = np.isfinite(y)
        out.append(max(float(np.mean((y[seen] - pred[seen, j]) ** 2)), NOISE_FLOOR * float(np.mean(y[seen] ** 2))))
    return np.asarray(out)


def _centred(a: np.ndarray) -> np.ndarray:
    """(R, ...) bootstrap replicates' deviations from their mean."""
    return a - a.mean(axis=0)


def _member_sd(deviations: np.ndarray) -> np.ndarray:
    """Per column, the members' standard deviation √(Σ_r a_r² / (R − 1)) from their (R, Q) deviations."""
    return np.sqrt((deviations**2).sum(axis=0) / (len(deviations) - 1))


def _median_spacing(h: np.ndarray) -> float:
    """The median distance from each distinct candidate mixture to its nearest other one (0 for one mixture)."""
    mixtures = np.unique(np.round(h, 12), axis=0)
    return float(np.median(nearest_distances(mixtures))) if len(mixtures) >= 2 else 0.0


def _reduction(a_q: np.ndarray, a_f: np.ndarray, G: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """(M, Q) the variance each candidate removes from each column of a_q: diag(C_qf (C_ff + Σ)⁻¹ C_fq) under G.

    a_q: (R, Q); a_f: (R, M, T) centred replicate values; G: (R, R) the conditioning so far; noise: (T,) σ².
    """
    r = a_q.shape[0] - 1
    g_f = np.einsum("rs,smt->rmt", G, a_f)
    cross = np.einsum("rmt,rq->mtq", g_f, a_q) / r  # C_fq (M, T, Q)
    s = np.einsum("rmt,rmu->mtu", a_f, g_f) / r + np.diag(noise)
    return np.einsum("mtq,mtq->mq", cross, np.linalg.solve(s, cross))


def _greedy(ensemble: _Ensemble, costs, table: RunTable, usable, n: int, radius: float, first=None):
    """Pick n candidates greedily by variance removed per cost, conditioning the ensemble on each pick; the first
    among the candidates ``first`` marks (None: any)."""
    a_q, a_f, a_p, noise = ensemble.quantity, ensemble.predictions, ensemble.parameters, ensemble.noise
    r = a_q.shape[0] - 1
    G = np.eye(a_q.shape[0])
    total_before = float((a_q**2).sum() / r)
    allowed = np.asarray(usable, bool).copy()
    n_scale = table.n if table.n is not None else np.ones(table.n_rows)
    d_scale = table.d if table.d is not None else np.ones(table.n_rows)
    chosen, reductions, why = [], [], []
    for i in range(n):
        per_candidate = _reduction(a_q, a_f, G, noise)  # (M, Q)
        gain = per_candidate.sum(axis=1)
        eligible = allowed & first if i == 0 and first is not None else allowed
        score = np.where(eligible, gain / costs, -np.inf)
        m = int(np.argmax(score))
        if not np.isfinite(score[m]):
            raise MixlawError(
                f"only {len(chosen)} candidates are far enough apart to propose (diversity radius {radius:.3g}); "
                f"n = {n} asked for: give more candidates"
            )
        a = a_f[:, m, :]
        per_quantity = per_candidate[m]
        per_parameter = _reduction(a_p, a[:, None, :], G, noise)[0]
        variance_q = np.einsum("rq,rs,sq->q", a_q, G, a_q) / r
        variance_p = np.einsum("rp,rs,sp->p", a_p, G, a_p) / r
        reason = _explain(ensemble, per_quantity, variance_q, per_parameter, variance_p)
        forced = i == 0 and first is not None
        why.append(f"one size up (too few model sizes: see the warning); {reason}" if forced else reason)
        chosen.append(m)
        reductions.append(float(gain[m] / total_before) if total_before > 0 else 0.0)
        g_a = G @ a
        s = a.T @ g_a / r + np.diag(noise)
        G = G - g_a @ np.linalg.solve(s, g_a.T) / r
        same_scale = (n_scale == n_scale[m]) & (d_scale == d_scale[m])
        near = np.sqrt(((table.h - table.h[m]) ** 2).sum(axis=1)) < radius
        allowed &= ~(same_scale & near)
        allowed[m] = False
    total_after = float(np.einsum("rq,rs,sq->", a_q, G, a_q) / r)
    return chosen, reductions, why, total_before, total_after


def _explain(ensemble: _Ensemble, per_q, var_q, per_p, var_p) -> str:
    """'h*[domain] sd a -> b; parameter of target -x% variance': the part of h* and the parameter most pinned down."""
    i = int(np.argmax(per_q))
    before, after = np.sqrt(max(var_q[i], 0.0)), np.sqrt(max(var_q[i] - per_q[i], 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(var_p > 0, per_p / var_p, 0.0)
    p = int(np.argmax(fraction))
    return (
        f"{ensemble.quantity_names[i]} sd {before:.3g} -> {after:.3g}; "
        f"{ensemble.parameter_names[p]} -{100 * fraction[p]:.0f}% variance"
    )


__all__ = ["describe_ensemble", "propose_runs"]
