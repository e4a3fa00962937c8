"""Optimal data mixtures of a fitted law: h*(N, D) per target and for a weighted mean of targets, and the
compute-optimal (N, D, h*) for a FLOPs budget.

For a fit with targets t = 1..T (laws of Shukor et al. 2025, "Scaling Laws for Optimal Data Mixtures", eq. 2.4 or
2.5) and objective weights w_t >= 0, Σ_t w_t = 1,

    h*(N, D) = argmin_{h ∈ F(D)} f(h),    f(h) = Σ_t w_t L_t(N, D, h),

the optimal domain weights of Shukor et al. (there over the whole simplex), here over the bounded simplex F(D) of
:mod:`.constraints`. Every budget is solved for each target alone (w = e_t) and for the weighted combination, from
many starts, in one compiled, vmapped program of :mod:`.solver`: budgets x objectives x starts.

``compute_optimal`` also splits a FLOPs budget C ≈ 6 N D (Hoffmann et al. 2022, "Training Compute-Optimal Large
Language Models") between N and D: it minimises the profile φ(N) = min_{h ∈ F(D)} f(h), D = C / (6 N).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..errors import MixlawError, warn_user
from ..options import whole_number
from ..results import FitResult, provenance
from .constraints import Request, active_bounds, budget_array, budgets, make_request
from .result import MixtureResult
from .solver import Solution, losses, map_starts, method_settings, random_starts, softmax_mode, solve, solver_box


def optimal_mixture(
    fit: FitResult,
    *,
    N=None,
    D=None,
    targets: Sequence[str] | None = None,
    target_weights=None,
    weight_bounds="data",
    token_budget=None,
    fixed: Mapping[str, float] | None = None,
    reference=None,
    n_starts: int = 64,
    seed: int = 0,
) -> MixtureResult:
    """Optimal mixture h*(N, D) of a fitted law, per target and for a weighted average of targets.

    Solves, for every budget b and objective o (each target t alone, then the weighted combination),

        h* = argmin_{h ∈ F_b} Σ_t w_ot L_t(N_b, D_b, h),
        F_b = {h : Σ_i h_i = 1, lo_i <= h_i <= hi_ib},  hi_ib = min(hi_i, e_max U_i / D_b),

    by softmax / projected Adam exploration and spectral projected gradient polishing from ``n_starts`` starts
    (:mod:`mixlaw_jax.mixture.solver`), all budgets x objectives x starts in one compiled, vmapped call. Under the
    additive law (Shukor et al. 2025, eq. 2.4) h* does not depend on (N, D) (the scale terms do not involve h);
    under the joint law (eq. 2.5) it does.

    Args:
      fit: a :class:`FitResult`.
      N, D: model size and training tokens: scalars, or 1-D arrays of equal length (a grid of budgets; a scalar
        is repeated). May be None for laws that do not use them.
      targets: targets to optimise (default: every target of the fit).
      target_weights: weights w_t of the weighted objective: a dict {target: w} (others 0) or a sequence aligned
        with ``targets``; normalised to sum to 1 (the objective is a weighted mean loss). Default: equal.
      weight_bounds: bounds [lo_i, hi_i] on the mixture weights (not the fit's parameter bounds): ``"data"``
        (default: h_i within the range seen in the fitted runs, ``fit.weight_range``), ``"simplex"`` (or None;
        0 <= h_i <= 1), a dict {domain: (lo, hi)} (other domains [0, 1]) or a (k, 2) array.
      token_budget: unique tokens U_i available per domain, a dict {domain: U} (others unlimited) or a length-k
        array (np.inf = unlimited); caps h_i <= U_i / D. For a law that reads the pools (``repetition_aware``) it
        gives the law its U_i instead, and repeats are priced by the law, not capped (``MixtureResult.epochs``).
        A :class:`~mixlaw_jax.DataLimits` gives the pools and the most epochs e_max (``max_epochs``): caps
        h_i <= e_max U_i / D for either kind of law (a law that prices repeats still reads U_i). A budget the caps
        cannot fill (Σ_i min(hi_i, e_max U_i / D) < 1, or a fixed weight above its cap) is an error naming the
        domains, their caps and D.
      fixed: {domain: weight} domains held at a given weight (this overrides ``weight_bounds`` for them).
      reference: the mixture to compare with: None / ``"uniform"`` (default) or a dict / length-k array on the
        simplex. It need not satisfy the bounds.
      n_starts: starts per (budget, objective): the (projected) uniform mixture and n_starts - 1 Dirichlet points.
      seed: seed of the random starts.

    Returns:
      A :class:`MixtureResult` with h (B, O, k), loss (B, O, T), objective (B, O), the reference's losses, the
      bounds that applied and the active ones.

    Raises:
      MixlawError: unknown target or domain names, a k mismatch, N or D missing, non-positive or non-finite
        budgets, bad weights, or constraints with no feasible mixture (the message names the domains and the
        numbers).
    """
    n_starts = whole_number(n_starts, "n_starts", minimum=1)
    req = make_request(
        fit,
        targets=targets,
        target_weights=target_weights,
        weight_bounds=weight_bounds,
        token_budget=token_budget,
        fixed=fixed,
        reference=reference,
    )
    n, d, n_budgets = budgets(req.law, N, D)
    box = req.constraints.at(d)
    box.raise_if_infeasible()
    n_obj = len(req.objectives)
    flat = n_budgets * n_obj
    lo, hi = _per_objective(box.lower, n_obj), _per_objective(box.upper, n_obj)
    log_n = _per_objective(np.log(n) if n is not None else np.zeros(n_budgets), n_obj)
    log_d = _per_objective(np.log(d) if d is not None else np.zeros(n_budgets), n_obj)
    slo, shi = solver_box(lo.reshape(flat, req.k), hi.reshape(flat, req.k))
    w = np.broadcast_to(req.objective_weights[None], (n_budgets, n_obj, len(req.targets))).reshape(flat, -1)
    starts = map_starts(random_starts(n_starts, req.k, seed), slo)
    softmax = softmax_mode(lo, hi)
    sol = _solve(req, log_n.reshape(flat), log_d.reshape(flat), slo, shi, w, starts, softmax)
    optima = _Optima(
        h=sol.h.reshape(n_budgets, n_obj, req.k),
        lower=lo,
        upper=hi,
        log_n=log_n,
        log_d=log_d,
        starts_at_best=sol.starts_at_best.reshape(n_budgets, n_obj),
        n=None if n is None else _per_objective(n, n_obj),
        d=None if d is None else _per_objective(d, n_obj),
    )
    settings = dict(req.settings, n_starts=n_starts, seed=seed, method=method_settings(softmax))
    result = _result(req, optima, settings=settings, seed=seed, fit=fit)
    free = _without_limits(req)
    if free is not None:
        sol = _solve(free, log_n.reshape(flat), log_d.reshape(flat), slo, shi, w, starts, softmax)
        _add_unlimited(result, free, optima._replace(h=sol.h.reshape(optima.h.shape)))
    return result


def replicate_mixtures(
    fit: FitResult,
    coordinates: np.ndarray,
    *,
    N=None,
    D=None,
    targets: Sequence[str] | None = None,
    target_weights=None,
    weight_bounds="data",
    token_budget=None,
    fixed: Mapping[str, float] | None = None,
    n_starts: int = 8,
    seed: int = 0,
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """h* of the weighted objective for R other coordinate sets of the fit's law (bootstrap replicates).

    Solves, for each replicate r, h*_r = argmin_{h ∈ F} Σ_t w_t L_t(N, D, h; θ_rt) at one budget (N, D), all
    replicates x starts in one compiled call, as :func:`optimal_mixture` does for the fit itself.

    Args:
      fit: the fit whose targets, domains and weight range define the problem.
      coordinates: (R, T_fit, P) law coordinates of every target of ``fit``, per replicate.
      N, D: one budget (scalars).
      targets, target_weights, weight_bounds, token_budget, fixed, seed: as in :func:`optimal_mixture`.
      n_starts: random starts per replicate (the uniform mixture first).
      warm: optional (R, k) or (k,) extra start, e.g. the fit's own h*.

    Returns:
      (h* (R, k), objective at h* (R,), the targets of the objective).
    """
    n_starts = whole_number(n_starts, "n_starts", minimum=1)
    req = make_request(
        fit,
        targets=targets,
        target_weights=target_weights,
        weight_bounds=weight_bounds,
        token_budget=token_budget,
        fixed=fixed,
        reference=None,
    )
    n, d, n_budgets = budgets(req.law, N, D)
    if n_budgets != 1:
        raise MixlawError(f"replicate_mixtures solves one budget (N, D) at a time, not {n_budgets}")
    box = req.constraints.at(d)
    box.raise_if_infeasible()
    coordinates = np.asarray(coordinates, dtype=float)
    n_rep = coordinates.shape[0]
    index = [fit.targets.index(t) for t in req.targets]
    slo, shi = solver_box(box.lower, box.upper)
    slo, shi = np.broadcast_to(slo, (n_rep, req.k)), np.broadcast_to(shi, (n_rep, req.k))
    starts = map_starts(random_starts(n_starts, req.k, seed), slo)
    if warm is not None:
        starts = np.concatenate([np.broadcast_to(np.asarray(warm, float), (n_rep, req.k))[:, None], starts], axis=1)
    log_n = np.full(n_rep, np.log(n[0]) if n is not None else 0.0)
    log_d = np.full(n_rep, np.log(d[0]) if d is not None else 0.0)
    w = np.broadcast_to(req.weights, (n_rep, len(req.targets)))
    softmax = softmax_mode(box.lower, box.upper)
    sol = _solve(req, log_n, log_d, slo, shi, w, starts, softmax, coordinates=coordinates[:, index])
    return np.clip(sol.h, box.lower, box.upper), sol.f, req.targets


def compute_optimal(
    fit: FitResult,
    *,
    C,
    targets: Sequence[str] | None = None,
    target_weights=None,
    weight_bounds="data",
    token_budget=None,
    fixed: Mapping[str, float] | None = None,
    reference=None,
    n_starts: int = 64,
    seed: int = 0,
    tokens_per_parameter: tuple[float, float] = (1e-2, 1e5),
    n_grid: int = 29,
    refine_rounds: int = 5,
) -> MixtureResult:
    """Compute-optimal (N, D, h) for FLOPs budgets C ≈ 6 N D, per target and for the weighted objective.

    For each budget C and objective o, minimises the profile

        φ_o(N) = min_{h ∈ F(D)} Σ_t w_ot L_t(N, D, h),   D = C / (6 N),

    over u = log N (F(D) depends on D through token budgets). Method:

    1. *Grid.* ``n_grid`` points log-spaced in tokens per parameter r = D / N over ``tokens_per_parameter``
       (N = sqrt(C / (6 r))); at each point the mixture problem is solved (as in :func:`optimal_mixture`) from
       max(4, n_starts // 8) starts. Points where the constraints leave no feasible mixture are skipped.
    2. *Refine.* ``refine_rounds`` rounds of zooming: around the best u so far, with Δ the current spacing,
       ``n_grid`` points evenly spaced on [u - Δ, u + Δ], each solved warm-started from the best mixture so far
       (plus the random starts); move to the best. For a unimodal φ the minimiser stays bracketed and the spacing
       shrinks by (n_grid - 1) / 2 per round: log N is found to (grid spacing) x (2 / (n_grid - 1))^rounds,
       ~1e-7 decades with the defaults.
    3. *Final.* The mixture at the chosen (N, D) is solved again from ``n_starts`` starts plus the warm start.

    A result whose N sits at the edge of the tokens-per-parameter range is flagged with a
    :class:`~mixlaw_jax.MixlawWarning` and listed in ``settings["at_edge"]``: widen ``tokens_per_parameter``.

    Args:
      fit: a :class:`FitResult` of a law that uses both N and D.
      C: FLOPs budgets, a scalar or 1-D array, > 0.
      targets, target_weights, weight_bounds, token_budget, fixed, reference, n_starts, seed: as in
        :func:`optimal_mixture`.
      tokens_per_parameter: (low, high) range of D / N searched.
      n_grid: points per grid (first stage and each refinement round), >= 3.
      refine_rounds: zoom rounds.

    For a law that reads the pools (``repetition_aware``) and finite pools, the same search is run again with every
    pool unlimited: the result also holds that plan (``unlimited_n``, ``unlimited_d``, ``unlimited_h``,
    ``unlimited_objective``) and ``limit_cost``, what the limits cost at the same compute.

    Returns:
      A :class:`MixtureResult` with ``compute`` = C, and ``n``, ``d`` chosen per budget and objective.

    Raises:
      MixlawError: as :func:`optimal_mixture`, plus a law without N or D, bad C, or no feasible mixture anywhere
        on the grid for some C.
    """
    n_starts = whole_number(n_starts, "n_starts", minimum=1)
    req = make_request(
        fit,
        targets=targets,
        target_weights=target_weights,
        weight_bounds=weight_bounds,
        token_budget=token_budget,
        fixed=fixed,
        reference=reference,
    )
    if not (req.law.uses_n and req.law.uses_d):
        raise MixlawError(f"compute_optimal needs a law of N and D; {req.law.name!r} does not use both")
    search = _size_search(budget_array(C, "C"), tokens_per_parameter, n_grid, refine_rounds)
    z = random_starts(n_starts, req.k, seed)
    optima, best = _compute_optimal_plan(req, search, z, n_grid, refine_rounds)
    at_edge = _at_edge(search, best, req.objectives)
    if at_edge:
        warn_user(
            f"compute_optimal: the best N is at the edge of tokens_per_parameter={tokens_per_parameter} "
            f"for (C, objective) {at_edge}; widen the range"
        )
    settings = dict(
        req.settings,
        n_starts=n_starts,
        seed=seed,
        method=method_settings(softmax_mode(optima.lower, optima.upper)),
        tokens_per_parameter=list(search.tokens_per_parameter),
        n_grid=int(n_grid),
        refine_rounds=int(refine_rounds),
        at_edge=at_edge,
    )
    result = _result(req, optima, settings=settings, seed=seed, fit=fit)
    free = _without_limits(req)
    if free is not None:
        _add_unlimited(result, free, _compute_optimal_plan(free, search, z, n_grid, refine_rounds)[0])
    return result


def _add_unlimited(result: MixtureResult, free: Request, plan: _Optima) -> None:
    """Fill ``result``'s plan without limits from ``plan``, the optima of ``free`` (``_without_limits``)."""
    h = np.clip(plan.h, plan.lower, plan.upper)
    result.unlimited_h = h
    result.unlimited_objective = np.einsum("bot,ot->bo", _losses_at(free, plan, h), free.objective_weights)
    result.unlimited_n, result.unlimited_d = plan.n, plan.d


def _without_limits(req: Request) -> Request | None:
    """The same request with every pool unlimited (U_i = inf: the law without data limits, under the same bounds
    and caps), for a law that reads finite pools; else None."""
    if req.pools is None or not np.isfinite(req.pools).any():
        return None
    return dataclasses.replace(req, pools=np.full(req.k, np.inf))


# ----------------------------------------------------------------------------------------------------------------
# solving and the result


def _per_objective(a: np.ndarray, n_obj: int) -> np.ndarray:
    """(B, ...) -> (B, O, ...): the same values for every objective."""
    return np.broadcast_to(a[:, None], (a.shape[0], n_obj) + a.shape[1:]).copy()


def _solve(req: Request, log_n, log_d, lo, hi, w, starts, softmax: bool, coordinates=None) -> Solution:
    """Q problems of ``req`` (with the fit's coordinates, or per-problem ``coordinates`` (Q, T, P)): :func:`solve`."""
    if coordinates is None:
        coordinates = np.broadcast_to(req.coordinates, (len(w),) + req.coordinates.shape)
    return solve(req.law, coordinates, w, log_n, log_d, lo, hi, starts, softmax, log_u=req.log_u_of(len(w)))


class _Optima(NamedTuple):
    """The best mixtures per budget b and objective o, before their losses are evaluated."""

    h: np.ndarray  #: (B, O, k) h*
    lower: np.ndarray  #: (B, O, k) the bounds that applied
    upper: np.ndarray
    log_n: np.ndarray  #: (B, O) log N (0 for a law without N)
    log_d: np.ndarray  #: (B, O) log D (0 for a law without D)
    starts_at_best: np.ndarray  #: (B, O)
    n: np.ndarray | None  #: (B, O) N as given or chosen; None for a law without N
    d: np.ndarray | None
    compute: np.ndarray | None = None  #: (B,) FLOPs budgets of compute_optimal


def _losses_at(req: Request, optima: _Optima, h: np.ndarray) -> np.ndarray:
    """(B, O, T) losses of every target at h (B, O, k) and each solution's (N, D)."""
    n_budgets, n_obj, k = h.shape
    flat = n_budgets * n_obj
    out = losses(
        req.law,
        k,
        jnp.asarray(req.coordinates),
        jnp.asarray(optima.log_n.reshape(flat)),
        jnp.asarray(optima.log_d.reshape(flat)),
        jnp.asarray(h.reshape(flat, k)),
        req.log_u_of(flat),
    )
    return np.asarray(out).reshape(n_budgets, n_obj, -1)


def _result(req: Request, optima: _Optima, *, settings: dict, seed: int, fit: FitResult) -> MixtureResult:
    """The :class:`MixtureResult` of ``optima``: losses at h* and at the reference, active bounds."""
    h = np.clip(optima.h, optima.lower, optima.upper)
    loss = _losses_at(req, optima, h)
    reference_loss = _losses_at(req, optima, np.broadcast_to(req.reference, h.shape))
    bad = ~(np.isfinite(loss).all(axis=-1) & np.isfinite(reference_loss).all(axis=-1))
    if bad.any():
        q = int(np.argmax(bad.reshape(-1)))
        where = (
            f"N = {np.exp(optima.log_n.reshape(-1)[q]):.6g}, D = {np.exp(optima.log_d.reshape(-1)[q]):.6g}"
            if req.law.uses_n or req.law.uses_d
            else "this budget"
        )
        raise MixlawError(
            f"the fitted law gives a non-finite loss at {where} (budget {q // bad.shape[1]}): far outside the "
            f"fitted range"
        )
    table_hash = fit.provenance.get("table_hash") if isinstance(fit.provenance, dict) else None
    return MixtureResult(
        law=req.law.name,
        domains=req.domains,
        targets=req.targets,
        objectives=req.objectives,
        target_weights=req.weights.copy(),
        n=optima.n,
        d=optima.d,
        compute=optima.compute,
        h=h,
        loss=loss,
        objective=np.einsum("bot,ot->bo", loss, req.objective_weights),
        reference_h=req.reference.copy(),
        reference_loss=reference_loss,
        reference_objective=np.einsum("bot,ot->bo", reference_loss, req.objective_weights),
        lower=optima.lower,
        upper=optima.upper,
        active=active_bounds(h, optima.lower, optima.upper),
        starts_at_best=optima.starts_at_best.astype(np.int64),
        settings=settings,
        provenance=provenance(seed, table_hash),
    )


# ----------------------------------------------------------------------------------------------------------------
# compute_optimal: the search over u = log N


class _SizeSearch(NamedTuple):
    """The range of u = log N searched per FLOPs budget: r = D / N = (C/6) / N², so u = (log(C/6) - log r) / 2."""

    c: np.ndarray  #: (B,) FLOPs budgets C
    log_c6: np.ndarray  #: (B,) log(C / 6), so that log D = log_c6 - u
    u_min: np.ndarray  #: (B,) at the highest tokens per parameter
    u_max: np.ndarray  #: (B,) at the lowest
    spacing: np.ndarray  #: (B,) of the first grid
    tokens_per_parameter: tuple[float, float]  #: the range (low, high) of r


def _size_search(compute: np.ndarray, tokens_per_parameter, n_grid, refine_rounds) -> _SizeSearch:
    """Validate the search settings of :func:`compute_optimal`; the range of u = log N per budget."""
    try:
        r_lo, r_hi = (float(v) for v in tokens_per_parameter)
    except (TypeError, ValueError):
        raise MixlawError(f"tokens_per_parameter must be a pair (low, high), not {tokens_per_parameter!r}") from None
    if not (0 < r_lo < r_hi < np.inf):
        raise MixlawError(f"tokens_per_parameter must satisfy 0 < low < high, not {tokens_per_parameter!r}")
    if not isinstance(n_grid, (int, np.integer)) or n_grid < 3:
        raise MixlawError(f"n_grid must be an integer >= 3, not {n_grid!r}")
    if not isinstance(refine_rounds, (int, np.integer)) or refine_rounds < 0:
        raise MixlawError(f"refine_rounds must be an integer >= 0, not {refine_rounds!r}")
    log_c6 = np.log(compute / 6.0)
    u_min = (log_c6 - math.log(r_hi)) / 2
    u_max = (log_c6 - math.log(r_lo)) / 2
    return _SizeSearch(compute, log_c6, u_min, u_max, (u_max - u_min) / (n_grid - 1), (r_lo, r_hi))


class _Profile(NamedTuple):
    """The mixture problem solved at M sizes u = log N per budget b and objective o: the profile φ_o(u)."""

    h: np.ndarray  #: (B, O, M, k) best mixture
    f: np.ndarray  #: (B, O, M) φ_o(u) (inf where F(D) is empty)
    starts_at_best: np.ndarray  #: (B, O, M)
    lower: np.ndarray  #: (B, O, M, k) bounds of F(D)
    upper: np.ndarray
    feasible: np.ndarray  #: (B, O, M) whether F(D) is non-empty
    messages: list  #: (B·O·M,) why F(D) is empty, or None


def _solve_profile(req: Request, log_c6: np.ndarray, u: np.ndarray, warm: np.ndarray, z: np.ndarray) -> _Profile:
    """φ_o at u (B, O, M): the mixture problem at N = e^u, D = C / (6 N), from ``warm`` (B, O, k) then z (S, k)."""
    n_budgets, n_obj, m = u.shape
    k, n_targets = req.k, len(req.targets)
    log_d = log_c6[:, None, None] - u
    box = req.constraints.at(np.exp(log_d).reshape(-1))
    q = box.lower.shape[0]
    lo_s = np.where(box.feasible[:, None], box.lower, 0.0)
    hi_s = np.where(box.feasible[:, None], box.upper, 1.0)
    lo_s, hi_s = solver_box(lo_s, hi_s)
    w = np.broadcast_to(req.objective_weights[None, :, None, :], (n_budgets, n_obj, m, n_targets)).reshape(q, -1)
    warm_q = np.broadcast_to(warm[:, :, None, :], (n_budgets, n_obj, m, k)).reshape(q, 1, k)
    starts = np.concatenate([warm_q, map_starts(z, lo_s)], axis=1)
    softmax = softmax_mode(box.lower, box.upper)
    sol = _solve(req, u.reshape(q), log_d.reshape(q), lo_s, hi_s, w, starts, softmax)
    shape = (n_budgets, n_obj, m)
    return _Profile(
        h=sol.h.reshape(shape + (k,)),
        f=np.where(box.feasible, sol.f, np.inf).reshape(shape),
        starts_at_best=sol.starts_at_best.reshape(shape),
        lower=box.lower.reshape(shape + (k,)),
        upper=box.upper.reshape(shape + (k,)),
        feasible=box.feasible.reshape(shape),
        messages=box.messages,
    )


class _Best(NamedTuple):
    """The best size so far per budget and objective."""

    u: np.ndarray  #: (B, O) log N
    h: np.ndarray  #: (B, O, k) its mixture
    f: np.ndarray  #: (B, O) φ_o(u)


def _minimum(u: np.ndarray, profile: _Profile) -> _Best:
    """The lowest of the M points of ``profile`` (at u (B, O, M)) per budget and objective."""
    j = np.argmin(profile.f, axis=2)
    b, o = np.indices(j.shape)
    return _Best(u[b, o, j], profile.h[b, o, j], profile.f[b, o, j])


def _grid_stage(req: Request, search: _SizeSearch, z: np.ndarray, n_grid: int) -> _Best:
    """Stage 1: φ_o on ``n_grid`` sizes evenly spaced in u (the same for every objective), from the uniform mixture."""
    n_budgets, n_obj = len(search.c), len(req.objectives)
    grid = search.u_min[:, None] + search.spacing[:, None] * np.arange(n_grid)[None, :]  # (B, M)
    u = np.broadcast_to(grid[:, None, :], (n_budgets, n_obj, n_grid)).copy()
    uniform = np.full((n_budgets, n_obj, req.k), 1.0 / req.k)
    profile = _solve_profile(req, search.log_c6, u, uniform, z)
    for b in range(n_budgets):
        if not profile.feasible[b, 0].any():
            raise MixlawError(
                f"C = {search.c[b]:.6g}: no feasible mixture anywhere on the grid of N; at the largest N: "
                f"{profile.messages[(b * n_obj) * n_grid + n_grid - 1]}"
            )
    return _minimum(u, profile)


def _zoom(req: Request, search: _SizeSearch, best: _Best, z: np.ndarray, n_grid: int, rounds: int) -> _Best:
    """Stage 2: ``rounds`` times, φ_o on ``n_grid`` points over [u - Δ, u + Δ] around the best u, warm-started from
    its mixture; keep any better point, then shrink Δ by 2 / (n_grid - 1)."""
    delta = np.broadcast_to(search.spacing[:, None], best.u.shape).copy()
    offsets = np.linspace(-1.0, 1.0, n_grid)
    lowest, highest = search.u_min[:, None, None], search.u_max[:, None, None]
    for _ in range(rounds):
        u = np.clip(best.u[:, :, None] + delta[:, :, None] * offsets, lowest, highest)
        found = _minimum(u, _solve_profile(req, search.log_c6, u, best.h, z))
        better = found.f <= best.f
        best = _Best(
            np.where(better, found.u, best.u),
            np.where(better[..., None], found.h, best.h),
            np.where(better, found.f, best.f),
        )
        delta = delta * 2.0 / (n_grid - 1)
    return best


def _compute_optimal_plan(
    req: Request, search: _SizeSearch, z: np.ndarray, n_grid: int, refine_rounds: int
) -> tuple[_Optima, _Best]:
    """The compute-optimal (N, D, h*) per budget and objective: grid, zoom, then the final mixture from all of z."""
    few = z[: max(4, len(z) // 8)]
    best = _grid_stage(req, search, few, n_grid)
    best = _zoom(req, search, best, few, n_grid, refine_rounds)
    final = _solve_profile(req, search.log_c6, best.u[:, :, None], best.h, z)
    h, f = final.h[:, :, 0], final.f[:, :, 0]
    h = np.where((f <= best.f)[..., None], h, best.h)
    log_d = search.log_c6[:, None] - best.u
    optima = _Optima(
        h=h,
        lower=final.lower[:, :, 0],
        upper=final.upper[:, :, 0],
        log_n=best.u,
        log_d=log_d,
        starts_at_best=final.starts_at_best[:, :, 0],
        n=np.exp(best.u),
        d=np.exp(log_d),
        compute=search.c.copy(),
    )
    return optima, best


def _at_edge(search: _SizeSearch, best: _Best, objectives: tuple[str, ...]) -> list:
    """[C, objective] pairs whose best u is within half a grid spacing of the searched range's ends."""
    half = search.spacing[:, None] / 2
    edge = (best.u - search.u_min[:, None] < half) | (search.u_max[:, None] - best.u < half)
    return [[float(search.c[b]), objectives[o]] for b, o in zip(*np.nonzero(edge))]
