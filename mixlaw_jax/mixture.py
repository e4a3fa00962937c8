"""Optimal data mixtures from a fitted law: h*(N, D) for every target and for a weighted average of targets.

The problem (SPEC.md section 3). For a fit with targets t = 1..T and objective weights w_t >= 0, Σ_t w_t = 1,

    h*(N, D) = argmin_{h ∈ F} f(h),    f(h) = Σ_t w_t L_t(N, D, h),

over the feasible set

    F = {h ∈ R^k : Σ_i h_i = 1,  lo_i <= h_i <= hi_i},

where [lo_i, hi_i] combines the per-domain bounds (by default the range of h_i seen in the fitted runs, since a law
is no evidence about mixtures it never saw), a token budget (U_i unique tokens of domain i allow at most
h_i <= U_i / D: more would repeat data, which the law does not model) and fixed domains (lo_i = hi_i).

Every budget (N, D) is solved for each target alone (w = e_t) and for the weighted combination, from many starts,
in one compiled, vmapped program: budgets x objectives x starts.

Method (the design of the project: gradient descent over a softmax parameterization, with projection where
constraints apply):

1. *Explore.* Without constraints (F = the simplex), Adam steps on θ with h = softmax(θ) = e^θ / Σ_j e^θ_j, which
   keeps h on the simplex with no projection. With constraints, projected Adam steps h <- Π_F(h + Δ_adam).
2. *Polish.* Spectral projected gradient (SPG; Birgin, Martínez & Raydan 2000) in h-space, with projected Newton
   candidates. Each iteration evaluates at once the SPG candidates h + t d, d = Π_F(h - α g) - h with the
   Barzilai-Borwein step α = s·s / s·y, and the Newton candidates Π_F(h + t d_N), where d_N minimises the quadratic
   model g·d + d·H'd/2 on the current face of F (H' the Hessian with |eigenvalues|, bounded away from 0), for
   t ∈ {1, 1/2, ..., 2^-11}; it moves to the lowest f among those passing the Armijo test
   f(c) <= f(h) + 1e-4 min(g·(c - h), 0). SPG makes progress from anywhere; the Newton candidates converge
   quadratically where plain gradient steps crawl (weights near 0, where h^γ curves sharply: plain SPG stalled
   2.5e-5 above the optimum of a k = 7 joint-law target after 500 steps). It stops when ||d||_∞ <= 1e-15 or no
   candidate decreases f any more (the floating-point floor of f): a stationary point to machine precision, not a
   step-count budget (at most 200 iterations; on the k = 7 test problems 10 already give the final objective to
   1e-14).
3. Keep the start with the lowest f per (budget, objective). Starts are the projection of the uniform mixture and
   random Dirichlet(1) points mapped into F (h0 = lo + (1 - Σ lo) z, then projected).

The Euclidean projection Π_F(v) = argmin_{h ∈ F} ||h - v||² is h_i = clip(v_i - λ, lo_i, hi_i), with λ such that
Σ h_i = 1. φ(λ) = Σ_i clip(v_i - λ, lo_i, hi_i) is non-increasing and piecewise linear with breakpoints
{v_i - hi_i, v_i - lo_i}; λ is found exactly by evaluating φ at the 2k breakpoints and interpolating linearly on the
segment where φ crosses 1 (O(k²) work, no iteration count to tune). The rounding left in Σ h is then put on the
coordinates strictly inside their bounds, so every returned h* satisfies lo <= h* <= hi exactly and
|Σ h* - 1| ~ 1e-16.

Inside the solver each lower bound of 0 is raised to 1e-12 (where that keeps Σ lo <= 1): the gradient of h_i^γ
with γ < 1 is infinite at h_i = 0, and the law evaluates h_i = 0 as "term absent" with a zero gradient, which
would trap a projected method on the face h_i = 0.

``compute_optimal`` adds the split of a FLOPs budget C ≈ 6 N D between N and D (see its docstring).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from . import _io
from .data import index_of
from .errors import MixlawError
from .laws import Inputs, Law, get_law
from .options import MAX_SEED, whole_number
from .results import FitResult, provenance

MIXTURE_SCHEMA_VERSION = 1
#: name of the weighted-combination objective (after the per-target objectives).
WEIGHTED = "weighted"
#: a bound counts as active at h* when h* is within this distance of it.
ACTIVE_TOL = 1e-6
#: lower bounds of 0 are raised to this inside the solver (finite gradients of h^γ, γ < 1).
H_FLOOR = 1e-12
#: feasibility tolerance on Σ lo <= 1 <= Σ hi.
FEASIBILITY_TOL = 1e-12

ADAM_STEPS = 100
SOFTMAX_LR = 0.05
PROJECTED_LR = 0.01
SPG_MAX_ITER = 200
LINE_SEARCH = 12
ARMIJO = 1e-4
ALPHA_MIN, ALPHA_MAX = 1e-14, 1e8
STEP_TOL = 1e-15


# ----------------------------------------------------------------------------------------------------------------
# projection and solver (pure JAX, one problem and one start; vmapped by ``_solve``)


def project(v: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """Euclidean projection of v (k,) onto F = {h : Σ h = 1, lo <= h <= hi} (F must be non-empty).

    h_i = clip(v_i - λ, lo_i, hi_i), with λ the root of the piecewise-linear, non-increasing
    φ(λ) = Σ_i clip(v_i - λ, lo_i, hi_i) - 1, found exactly from its 2k breakpoints {v_i - hi_i, v_i - lo_i}.

    Args:
      v: point to project, shape (k,).
      lo, hi: bounds, shape (k,), with Σ lo <= 1 <= Σ hi and lo <= hi.

    Returns:
      The projection, shape (k,): lo <= h <= hi exactly and Σ h = 1 to rounding.
    """
    breaks = jnp.sort(jnp.concatenate([v - hi, v - lo]))
    phi = jnp.sum(jnp.clip(v[None, :] - breaks[:, None], lo, hi), axis=1)  # non-increasing in breaks
    j = jnp.clip(jnp.sum(phi >= 1.0) - 1, 0, breaks.shape[0] - 2)
    p0, p1, b0, b1 = phi[j], phi[j + 1], breaks[j], breaks[j + 1]
    drop = p0 - p1
    lam = jnp.where(drop > 0, b0 + (p0 - 1.0) * (b1 - b0) / jnp.where(drop > 0, drop, 1.0), b0)
    h = jnp.clip(v - lam, lo, hi)
    free = (h > lo) & (h < hi)
    residual = 1.0 - jnp.sum(h)
    h = jnp.where(free, h + residual / jnp.maximum(jnp.sum(free), 1), h)
    return jnp.clip(h, lo, hi)


def _row_inputs(log_n, log_d, h) -> Inputs:
    positive = h > 0
    log_h = jnp.where(positive, jnp.log(jnp.where(positive, h, 1.0)), -jnp.inf)
    return Inputs(log_n[None], log_d[None], h[None], log_h[None])


def _target_losses(law: Law, k: int, coords, log_n, log_d, h):
    """(T,) predicted losses of every target at one (N, D, h)."""
    x = _row_inputs(log_n, log_d, h)
    return jax.vmap(lambda u: law.predict(law.unflatten(u, k), x)[0])(coords)


def _descend(f, h0, lo, hi, softmax: bool, adam_steps: int, spg_iter: int):
    """Explore (softmax or projected Adam) then polish (SPG) from one start; returns (h, f(h))."""

    def safe(h):
        value = f(h)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    h0 = project(h0, lo, hi)
    if adam_steps > 0:
        if softmax:
            opt = optax.adam(SOFTMAX_LR)
            theta0 = jnp.log(h0)

            def step(carry, _):
                theta, state = carry
                g = jax.grad(lambda t: f(jax.nn.softmax(t)))(theta)
                updates, state = opt.update(jnp.where(jnp.isfinite(g), g, 0.0), state)
                return (optax.apply_updates(theta, updates), state), None

            (theta, _), _ = jax.lax.scan(step, (theta0, opt.init(theta0)), None, length=adam_steps)
            h1 = project(jax.nn.softmax(theta), lo, hi)
        else:
            opt = optax.adam(PROJECTED_LR)

            def step(carry, _):
                h, state = carry
                g = jax.grad(f)(h)
                updates, state = opt.update(jnp.where(jnp.isfinite(g), g, 0.0), state)
                return (project(h + updates, lo, hi), state), None

            (h1, _), _ = jax.lax.scan(step, (h0, opt.init(h0)), None, length=adam_steps)
        h0 = jnp.where(safe(h1) <= safe(h0), h1, h0)
    return _polish(f, safe, h0, lo, hi, spg_iter)


def _newton_direction(g, H, h, lo, hi, movable):
    """Projected Newton direction on the face of F that h lies on.

    Coordinates at a bound whose (centred) gradient pushes them outwards are held (d_i = 0); on the others
    (the free set 𝓕) d solves the equality-constrained quadratic model

        min_d g·d + d·H'd / 2  s.t.  Σ_{i ∈ 𝓕} d_i = 0,

    through its KKT system, with H' the free block of the Hessian with eigenvalues replaced by
    max(|λ|, 1e-10 max|λ|), so that d is a descent direction where f is not convex.
    """
    k = h.shape[0]
    mu = jnp.sum(g * movable) / jnp.maximum(jnp.sum(movable), 1.0)
    scale = jnp.maximum(hi - lo, 1e-300)
    at_lo = (h - lo <= 1e-9 * scale) & (g > mu)
    at_hi = (hi - h <= 1e-9 * scale) & (g < mu)
    free = (movable > 0) & ~at_lo & ~at_hi
    fm = free.astype(h.dtype)
    block = H * fm[:, None] * fm[None, :]
    block = jnp.where(jnp.isfinite(block), block, 0.0)
    lam, vec = jnp.linalg.eigh(block + jnp.diag(1.0 - fm))
    lam = jnp.abs(lam)
    lam = jnp.maximum(lam, 1e-10 * jnp.max(lam))
    inv = (vec / lam) @ vec.T
    # solve [M 1_F; 1_F' 0][d; nu] = [-g_F; 0] with M^-1 = inv: d = -inv (g_F + nu 1_F)
    gf = g * fm
    a, b = inv @ gf, inv @ fm
    nu = -jnp.dot(fm, a) / jnp.where(jnp.dot(fm, b) > 0, jnp.dot(fm, b), 1.0)
    d = -(a + nu * b) * fm
    return jnp.where(jnp.all(jnp.isfinite(d)), d, jnp.zeros(k, h.dtype))


def _polish(f, safe, h, lo, hi, max_iter: int):
    """Spectral projected gradient with Barzilai-Borwein steps, plus projected Newton candidates.

    Each iteration evaluates, all at once, the SPG candidates h + t d (d = Π_F(h - α g) - h) and the projected
    Newton candidates Π_F(h + t d_N), t ∈ {1, 1/2, ..., 2^-11}, and moves to the lowest f among those that pass
    the Armijo test f(c) <= f(h) + 1e-4 min(g·(c - h), 0). SPG makes progress anywhere; the Newton candidates give
    fast local convergence where the problem is badly conditioned (weights near 0, where h^γ curves sharply).
    """
    value_and_grad = jax.value_and_grad(f)
    hessian = jax.hessian(f)
    movable = (hi > lo).astype(h.dtype)
    ts = 0.5 ** jnp.arange(LINE_SEARCH, dtype=h.dtype)

    def centred(g):
        # P(h - α g) is unchanged by adding a constant to g (it shifts λ); removing the mean over the movable
        # coordinates keeps v = h - α g small, so λ is found without cancellation when α is large.
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        return g - jnp.sum(g * movable) / jnp.maximum(jnp.sum(movable), 1.0)

    f0, g0 = value_and_grad(h)
    g0 = centred(g0)
    d0 = project(h - g0, lo, hi) - h
    alpha0 = jnp.clip(1.0 / jnp.maximum(jnp.max(jnp.abs(d0)), 1e-12), ALPHA_MIN, ALPHA_MAX)
    done0 = ~jnp.isfinite(f0)

    def cond(state):
        return (state[4] < max_iter) & ~state[5]

    def body(state):
        h, fval, g, alpha, it, _ = state
        d = project(h - alpha * g, lo, hi) - h
        d_newton = _newton_direction(g, hessian(h), h, lo, hi, movable)
        spg = h[None, :] + ts[:, None] * d[None, :]
        newton = jax.vmap(lambda t: project(h + t * d_newton, lo, hi))(ts)
        candidates = jnp.concatenate([spg, newton], axis=0)
        fc = jax.vmap(safe)(candidates)
        decrease = jnp.minimum((candidates - h[None, :]) @ g, 0.0)
        ok = (fc <= fval + ARMIJO * decrease) & (fc < fval) & jnp.isfinite(fc)
        any_ok = jnp.any(ok)
        j = jnp.argmin(jnp.where(ok, fc, jnp.inf))
        h_new = jnp.where(any_ok, candidates[j], h)
        f_new = jnp.where(any_ok, fc[j], fval)
        _, g_new = value_and_grad(h_new)
        g_finite = jnp.all(jnp.isfinite(g_new))
        g_new = jnp.where(g_finite, centred(g_new), g)
        s, y = h_new - h, g_new - g
        sy, ss = jnp.dot(s, y), jnp.dot(s, s)
        bb = jnp.where(sy > 0, jnp.clip(ss / jnp.where(sy > 0, sy, 1.0), ALPHA_MIN, ALPHA_MAX), ALPHA_MAX)
        alpha_new = jnp.where(any_ok, bb, alpha * ts[-1] * 0.5)
        stalled = ~any_ok & (jnp.max(jnp.abs(d_newton)) * ts[-1] < STEP_TOL)
        done = (jnp.max(jnp.abs(d)) <= STEP_TOL) | (alpha_new < ALPHA_MIN) | ~g_finite | stalled
        return h_new, f_new, g_new, alpha_new, it + 1, done

    state = (h, jnp.where(done0, jnp.inf, f0), g0, alpha0, jnp.asarray(0), done0)
    h, *_ = jax.lax.while_loop(cond, body, state)
    h = project(h, lo, hi)
    return h, safe(h)


@functools.partial(jax.jit, static_argnames=("law", "k", "softmax", "adam_steps", "spg_iter"))
def _solve(law: Law, k: int, coords, w, log_n, log_d, lo, hi, starts, *, softmax: bool, adam_steps: int, spg_iter: int):
    """Q problems x S starts in one program.

    Args:
      coords: (Q, T, P) law coordinates of every target, per problem (a bootstrap solves each replicate's law).
      w: (Q, T) objective weights of each problem; log_n, log_d: (Q,); lo, hi: (Q, k) solver bounds;
      starts: (Q, S, k) start points (projected onto each problem's F first).

    Returns:
      h (Q, k) best point, f (Q,) its objective, n_best (Q,) starts that reached the best value (within 1e-9
      relative).
    """

    def problem(coords_q, w_q, ln, ld, lo_q, hi_q, starts_q):
        def f(h):
            return jnp.dot(w_q, _target_losses(law, k, coords_q, ln, ld, h))

        h, fv = jax.vmap(lambda h0: _descend(f, h0, lo_q, hi_q, softmax, adam_steps, spg_iter))(starts_q)
        best = jnp.argmin(fv)
        near = fv <= fv[best] + 1e-9 * jnp.maximum(1.0, jnp.abs(fv[best]))
        return h[best], fv[best], jnp.sum(near)

    return jax.vmap(problem)(coords, w, log_n, log_d, lo, hi, starts)


@functools.partial(jax.jit, static_argnames=("law", "k"))
def _losses(law: Law, k: int, coords, log_n, log_d, h):
    """(Q, T) losses of every target at Q points (log_n (Q,), log_d (Q,), h (Q, k))."""
    return jax.vmap(lambda ln, ld, hh: _target_losses(law, k, coords, ln, ld, hh))(log_n, log_d, h)


# ----------------------------------------------------------------------------------------------------------------
# the result


@dataclasses.dataclass
class MixtureResult:
    """Optimal mixtures for a set of budgets (index b) and objectives (index o), from one fit.

    Objectives are the chosen targets, each on its own, then ``"weighted"``: Σ_t w_t L_t with the normalised
    ``target_weights``. Domains (index i) are in the order of ``fit.weight_columns``.

    Attributes:
      law: registry name of the fitted law.
      domains: domain (weight column) names, k of them.
      targets: the targets optimised, T of them.
      objectives: ``targets + ("weighted",)``, O = T + 1 of them.
      target_weights: (T,) weights w_t of the weighted objective (sum to 1).
      n, d: (B, O) model size N and tokens D of each solution, or None when not given (laws without N or D).
        ``optimal_mixture`` uses the same (N, D) for every objective; ``compute_optimal`` picks them per objective.
      compute: (B,) FLOPs budgets C for ``compute_optimal``, else None.
      h: (B, O, k) optimal mixture h* per budget and objective.
      loss: (B, O, T) predicted loss of every target at that h*.
      objective: (B, O) objective value at h* (L_t for a target objective, Σ_t w_t L_t for ``"weighted"``).
      reference_h: (k,) reference mixture (uniform unless given).
      reference_loss, reference_objective: the same as ``loss`` and ``objective`` at ``reference_h`` (same N, D).
      lower, upper: (B, O, k) bounds on h_i that applied (bounds, token budget caps U_i / D, fixed domains).
      active: (B, O, k) strings: ``"fixed"`` (lower = upper), ``"lower"`` / ``"upper"`` (h*_i within 1e-6 of that
        bound), or ``""`` (free).
      starts_at_best: (B, O) how many starts reached the best objective (within 1e-9 relative).
      settings: the request (bounds, token budget, fixed, starts, seed, method).
      provenance: seed, package versions, and the fit's table hash.
    """

    law: str
    domains: tuple[str, ...]
    targets: tuple[str, ...]
    objectives: tuple[str, ...]
    target_weights: np.ndarray
    n: np.ndarray | None
    d: np.ndarray | None
    compute: np.ndarray | None
    h: np.ndarray
    loss: np.ndarray
    objective: np.ndarray
    reference_h: np.ndarray
    reference_loss: np.ndarray
    reference_objective: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    active: np.ndarray
    starts_at_best: np.ndarray
    settings: dict
    provenance: dict

    @property
    def gain(self) -> np.ndarray:
        """(B, O) predicted improvement of h* over the reference mixture: reference_objective - objective."""
        return self.reference_objective - self.objective

    def mixture(self, objective: str = WEIGHTED) -> pd.DataFrame:
        """h* for one objective as a DataFrame: one row per budget, one column per domain."""
        o = index_of(self.objectives, objective, "objective")
        frame = pd.DataFrame(self.h[:, o, :], columns=list(self.domains))
        frame.index.name = "budget"
        return frame

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per budget x objective x domain.

        Columns: ``budget`` (index b), ``C`` (compute_optimal only), ``N``, ``D`` (when known), ``objective``
        (target name or ``"weighted"``), ``domain``, ``h`` (h*_i), ``lower``, ``upper``, ``active``, ``reference_h``,
        then per (budget, objective), repeated on each domain row: ``loss`` (objective value at h*),
        ``reference_loss`` (at the reference mixture) and ``gain`` (reference_loss - loss).
        Per-target losses at each h* are in the ``loss`` array attribute.
        """
        n_budgets, n_obj, k = self.h.shape
        b, o, i = (a.ravel() for a in np.meshgrid(np.arange(n_budgets), np.arange(n_obj), np.arange(k), indexing="ij"))
        columns = {"budget": b}
        if self.compute is not None:
            columns["C"] = self.compute[b]
        if self.n is not None:
            columns["N"] = self.n[b, o]
        if self.d is not None:
            columns["D"] = self.d[b, o]
        columns.update(
            {
                "objective": np.asarray(self.objectives, dtype=object)[o],
                "domain": np.asarray(self.domains, dtype=object)[i],
                "h": self.h[b, o, i],
                "lower": self.lower[b, o, i],
                "upper": self.upper[b, o, i],
                "active": self.active[b, o, i],
                "reference_h": self.reference_h[i],
                "loss": self.objective[b, o],
                "reference_loss": self.reference_objective[b, o],
                "gain": self.gain[b, o],
            }
        )
        return pd.DataFrame(columns)

    def to_dict(self) -> dict:
        def arr(a):
            return None if a is None else np.asarray(a).tolist()

        return {
            "kind": "mixture",
            "schema_version": MIXTURE_SCHEMA_VERSION,
            "law": self.law,
            "domains": list(self.domains),
            "targets": list(self.targets),
            "objectives": list(self.objectives),
            "target_weights": arr(self.target_weights),
            "n": arr(self.n),
            "d": arr(self.d),
            "compute": arr(self.compute),
            "h": arr(self.h),
            "loss": arr(self.loss),
            "objective": arr(self.objective),
            "reference_h": arr(self.reference_h),
            "reference_loss": arr(self.reference_loss),
            "reference_objective": arr(self.reference_objective),
            "lower": arr(self.lower),
            "upper": arr(self.upper),
            "active": arr(self.active),
            "starts_at_best": arr(self.starts_at_best),
            "settings": self.settings,
            "provenance": self.provenance,
        }

    def save(self, path) -> None:
        """Write the result as versioned JSON (kind "mixture", schema 1), atomically."""
        _io.atomic_write_json(path, self.to_dict())


def load_mixture(path) -> MixtureResult:
    """Read a :class:`MixtureResult` written by ``MixtureResult.save``; arrays come back identical.

    Args:
      path: the JSON file.

    Returns:
      The :class:`MixtureResult`; a :class:`MixlawError` for missing, corrupt, other-kind or other-version files.
    """
    p = _io.read_json(path, "mixture", MIXTURE_SCHEMA_VERSION)
    try:

        def arr(key, dtype=float):
            return None if p[key] is None else np.asarray(p[key], dtype=dtype)

        out = MixtureResult(
            law=p["law"],
            domains=tuple(p["domains"]),
            targets=tuple(p["targets"]),
            objectives=tuple(p["objectives"]),
            target_weights=arr("target_weights"),
            n=arr("n"),
            d=arr("d"),
            compute=arr("compute"),
            h=arr("h"),
            loss=arr("loss"),
            objective=arr("objective"),
            reference_h=arr("reference_h"),
            reference_loss=arr("reference_loss"),
            reference_objective=arr("reference_objective"),
            lower=arr("lower"),
            upper=arr("upper"),
            active=arr("active", str),
            starts_at_best=arr("starts_at_best", np.int64),
            settings=p["settings"],
            provenance=p["provenance"],
        )
        shape = (len(out.objectives), len(out.domains))
        if out.h.ndim != 3 or out.h.shape[1:] != shape:
            raise MixlawError(f"{path}: h has shape {out.h.shape}, expected (budgets, {shape[0]}, {shape[1]})")
        return out
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, MixlawError):
            raise
        raise MixlawError(f"{path} is not a valid mixture file: {err!r}") from None


# ----------------------------------------------------------------------------------------------------------------
# request validation


@dataclasses.dataclass
class _Request:
    law: Law
    k: int
    domains: tuple[str, ...]
    targets: tuple[str, ...]
    coords: np.ndarray  # (T, P)
    weights: np.ndarray  # (T,) normalised
    W: np.ndarray  # (O, T) objective weights
    lo: np.ndarray  # (k,) from bounds and fixed
    hi: np.ndarray
    lo_source: list  # per domain: what set lo (for error messages)
    hi_source: list
    fixed: np.ndarray  # (k,) bool
    tokens: np.ndarray | None  # (k,) unique tokens per domain (inf = unlimited)
    reference: np.ndarray  # (k,)
    settings: dict

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.targets + (WEIGHTED,)

    def box(self, d: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list]:
        """Bounds lo, hi (B, k) at tokens d (B,), and per budget the reason for each domain's upper bound."""
        n_budgets = 1 if d is None else len(d)
        lo = np.broadcast_to(self.lo, (n_budgets, self.k)).copy()
        hi = np.broadcast_to(self.hi, (n_budgets, self.k)).copy()
        sources = [list(self.hi_source) for _ in range(n_budgets)]
        if self.tokens is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                cap = self.tokens[None, :] / d[:, None]
            for b in range(n_budgets):
                for i in range(self.k):
                    if cap[b, i] < hi[b, i]:  # for a fixed domain this makes lo > hi: reported
                        sources[b][i] = f"token budget {self.tokens[i]:.6g} / D = {d[b]:.6g}"
                        hi[b, i] = cap[b, i]
        return lo, hi, sources

    def problems(self, d):
        """Bounds per budget with a feasibility report: (lo, hi, feasible (B,), messages (B,))."""
        lo, hi, sources = self.box(d)
        feasible, messages = [], []
        for b in range(lo.shape[0]):
            msg = _infeasibility(self.domains, lo[b], hi[b], self.lo_source, sources[b], None if d is None else d[b])
            feasible.append(msg is None)
            messages.append(msg)
        return lo, hi, np.asarray(feasible), messages

    def solver_box(self, lo, hi):
        """Raise lower bounds of 0 to H_FLOOR where that keeps Σ lo <= 1 (finite gradients of h^γ at 0)."""
        floored = np.where(hi > lo, np.maximum(lo, np.minimum(H_FLOOR, hi)), lo)
        ok = floored.sum(axis=-1, keepdims=True) <= 1.0
        return np.where(ok, floored, lo), hi


def _infeasibility(domains, lo, hi, lo_source, hi_source, d) -> str | None:
    at = "" if d is None else f" (at D = {d:.6g})"
    bad = [i for i in range(len(domains)) if lo[i] > hi[i] + FEASIBILITY_TOL]
    if bad:
        parts = [
            f"{domains[i]!r}: lower {lo[i]:.6g} ({lo_source[i]}) > upper {hi[i]:.6g} ({hi_source[i]})" for i in bad
        ]
        return "no feasible mixture" + at + ": " + "; ".join(parts)
    if lo.sum() > 1.0 + FEASIBILITY_TOL:
        parts = [f"{domains[i]!r} >= {lo[i]:.6g} ({lo_source[i]})" for i in range(len(domains)) if lo[i] > 0]
        return f"no feasible mixture{at}: lower bounds sum to {lo.sum():.6g} > 1: " + ", ".join(parts)
    if hi.sum() < 1.0 - FEASIBILITY_TOL:
        parts = [f"{domains[i]!r} <= {hi[i]:.6g} ({hi_source[i]})" for i in range(len(domains)) if hi[i] < 1]
        return f"no feasible mixture{at}: upper bounds sum to {hi.sum():.6g} < 1: " + ", ".join(parts)
    return None


def _domain_vector(value, fit: FitResult, what: str, *, default: float) -> np.ndarray:
    """A per-domain vector from a dict {domain: value} (others = default) or a length-k sequence."""
    k = fit.k
    if isinstance(value, Mapping):
        out = np.full(k, default, dtype=float)
        for name, v in value.items():
            out[index_of(fit.weight_columns, name, "domain")] = _number(v, f"{what}[{name!r}]")
        return out
    try:
        out = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise MixlawError(
            f"{what} must be a dict {{domain: value}} or a sequence of {k} numbers, not {value!r}"
        ) from None
    if out.shape != (k,):
        raise MixlawError(
            f"{what} has shape {out.shape}; the fit has k = {k} domains ({', '.join(fit.weight_columns)})"
        )
    return out


def _number(v, what: str) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise MixlawError(f"{what} must be a number, not {v!r}") from None
    return out


def _request(fit: FitResult, targets, target_weights, bounds, token_budget, fixed, reference) -> _Request:
    if not isinstance(fit, FitResult):
        raise MixlawError(f"fit must be a FitResult (mixlaw_jax.fit or load_fit), not {type(fit).__name__}")
    law = get_law(fit.law)
    if not law.uses_h:
        raise MixlawError(
            f"law {law.name!r} does not depend on the mixture (it has no per-domain parameters), so "
            f"it has no optimal mixture; fit a mixture law such as 'additive' or 'joint'"
        )
    k = fit.k
    domains = tuple(fit.weight_columns)
    if len(domains) != k:
        raise MixlawError(f"the fit has k = {k} but {len(domains)} weight columns")
    coords_all = np.asarray(fit.coordinates, dtype=float)
    if coords_all.shape != (len(fit.targets), law.n_params(k)):
        raise MixlawError(
            f"fit coordinates have shape {coords_all.shape}; law {law.name!r} with k = {k} needs "
            f"({len(fit.targets)}, {law.n_params(k)})"
        )

    # targets and their weights
    if targets is None:
        chosen = list(fit.targets)
    else:
        if isinstance(targets, str):
            targets = [targets]
        chosen = [fit.targets[index_of(fit.targets, t, "target")] for t in targets]
        if not chosen:
            raise MixlawError("targets is empty")
        if len(set(chosen)) != len(chosen):
            raise MixlawError(f"targets has duplicates: {chosen}")
    index = [fit.targets.index(t) for t in chosen]
    if WEIGHTED in chosen:
        raise MixlawError(f"a target named {WEIGHTED!r} clashes with the name of the weighted objective")
    n_targets = len(chosen)
    if target_weights is None:
        w = np.full(n_targets, 1.0 / n_targets)
    else:
        if isinstance(target_weights, Mapping):
            w = np.zeros(n_targets)
            for name, v in target_weights.items():
                w[index_of(chosen, name, "target (in target_weights)")] = _number(v, f"target_weights[{name!r}]")
        else:
            try:
                w = np.asarray(target_weights, dtype=float)
            except (TypeError, ValueError):
                raise MixlawError(f"target_weights must be a dict or {n_targets} numbers") from None
            if w.shape != (n_targets,):
                raise MixlawError(f"target_weights has shape {w.shape}; there are {n_targets} targets ({chosen})")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise MixlawError(f"target_weights must be finite, >= 0 and not all 0, not {w.tolist()}")
        w = w / w.sum()
    W = np.concatenate([np.eye(n_targets), w[None, :]], axis=0)

    # bounds
    if bounds is None or (isinstance(bounds, str) and bounds == "simplex"):
        lo, hi = np.zeros(k), np.ones(k)
        lo_src, hi_src = ["simplex"] * k, ["simplex"] * k
        bounds_setting = "simplex"
    elif isinstance(bounds, str) and bounds == "data":
        wr = np.asarray(fit.weight_range, dtype=float)
        if wr.shape != (k, 2):
            raise MixlawError(f"fit.weight_range has shape {wr.shape}, expected ({k}, 2)")
        lo, hi = wr[:, 0].copy(), wr[:, 1].copy()
        lo_src, hi_src = ["data range"] * k, ["data range"] * k
        bounds_setting = "data"
    elif isinstance(bounds, str):
        raise MixlawError(
            f"bounds must be 'data', 'simplex', a dict {{domain: (lo, hi)}} or a (k, 2) array, not {bounds!r}"
        )
    elif isinstance(bounds, Mapping):
        lo, hi = np.zeros(k), np.ones(k)
        lo_src, hi_src = ["simplex"] * k, ["simplex"] * k
        for name, pair in bounds.items():
            i = index_of(domains, name, "domain")
            try:
                a, b = pair
            except (TypeError, ValueError):
                raise MixlawError(f"bounds[{name!r}] must be a pair (lo, hi), not {pair!r}") from None
            lo[i], hi[i] = _number(a, f"bounds[{name!r}] lower"), _number(b, f"bounds[{name!r}] upper")
            lo_src[i] = hi_src[i] = "bounds"
        bounds_setting = {name: [float(lo[domains.index(name)]), float(hi[domains.index(name)])] for name in bounds}
    else:
        try:
            arr = np.asarray(bounds, dtype=float)
        except (TypeError, ValueError):
            raise MixlawError(f"bounds must be 'data', 'simplex', a dict or a (k, 2) array, not {bounds!r}") from None
        if arr.shape != (k, 2):
            raise MixlawError(
                f"bounds has shape {arr.shape}; expected ({k}, 2) for the k = {k} domains ({', '.join(domains)})"
            )
        lo, hi = arr[:, 0].copy(), arr[:, 1].copy()
        lo_src, hi_src = ["bounds"] * k, ["bounds"] * k
        bounds_setting = arr.tolist()
    for i in range(k):
        if not (np.isfinite(lo[i]) and np.isfinite(hi[i])) or lo[i] < 0 or hi[i] > 1:
            raise MixlawError(f"bounds of domain {domains[i]!r} must lie in [0, 1], not ({lo[i]}, {hi[i]})")

    # fixed domains override their bounds
    is_fixed = np.zeros(k, dtype=bool)
    fixed_setting = None
    if fixed is not None:
        if not isinstance(fixed, Mapping):
            raise MixlawError(f"fixed must be a dict {{domain: weight}}, not {fixed!r}")
        fixed_setting = {}
        for name, v in fixed.items():
            i = index_of(domains, name, "domain")
            value = _number(v, f"fixed[{name!r}]")
            if not 0 <= value <= 1:
                raise MixlawError(f"fixed weight of domain {name!r} must lie in [0, 1], not {value}")
            lo[i] = hi[i] = value
            lo_src[i] = hi_src[i] = f"fixed at {value:.6g}"
            is_fixed[i] = True
            fixed_setting[name] = value

    # token budget
    tokens, tokens_setting = None, None
    if token_budget is not None:
        tokens = _domain_vector(token_budget, fit, "token_budget", default=np.inf)
        if np.isnan(tokens).any() or (tokens < 0).any():
            bad = [f"{domains[i]!r}: {tokens[i]}" for i in range(k) if not tokens[i] >= 0]
            raise MixlawError(f"token_budget must be >= 0 (np.inf for unlimited): {', '.join(bad)}")
        tokens_setting = {domains[i]: float(tokens[i]) for i in range(k) if np.isfinite(tokens[i])}

    # reference mixture
    if reference is None or (isinstance(reference, str) and reference == "uniform"):
        ref = np.full(k, 1.0 / k)
        ref_setting = "uniform"
    else:
        ref = _domain_vector(reference, fit, "reference", default=0.0)
        if not np.isfinite(ref).all() or (ref < 0).any() or abs(ref.sum() - 1) > 1e-6:
            raise MixlawError(
                f"reference must be a mixture (weights >= 0 summing to 1), not {ref.tolist()} (sum {ref.sum():.6g})"
            )
        ref_setting = ref.tolist()

    settings = {
        "targets": chosen,
        "target_weights": w.tolist(),
        "bounds": bounds_setting,
        "token_budget": tokens_setting,
        "fixed": fixed_setting,
        "reference": ref_setting,
    }
    return _Request(
        law=law,
        k=k,
        domains=domains,
        targets=tuple(chosen),
        coords=coords_all[index],
        weights=w,
        W=W,
        lo=lo,
        hi=hi,
        lo_source=lo_src,
        hi_source=hi_src,
        fixed=is_fixed,
        tokens=tokens,
        reference=ref,
        settings=settings,
    )


def _budget_array(value, what: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        out = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        raise MixlawError(f"{what} must be a number or a 1-D array of numbers, not {value!r}") from None
    if out.ndim != 1 or out.size == 0:
        raise MixlawError(f"{what} must be a scalar or a non-empty 1-D array, not shape {out.shape}")
    bad = np.flatnonzero(~(np.isfinite(out) & (out > 0)))
    if bad.size:
        raise MixlawError(f"{what} must be finite and > 0: {what}[{bad[0]}] = {out[bad[0]]}")
    return out


def _budgets(law: Law, N, D) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    n, d = _budget_array(N, "N"), _budget_array(D, "D")
    for uses, value, what in ((law.uses_n, n, "N"), (law.uses_d, d, "D")):
        if uses and value is None:
            raise MixlawError(f"law {law.name!r} needs {what}: pass {what}=...")
    sizes = {len(a) for a in (n, d) if a is not None and len(a) > 1}
    if len(sizes) > 1:
        raise MixlawError(f"N and D must be scalars or arrays of the same length, not lengths {len(n)} and {len(d)}")
    n_budgets = sizes.pop() if sizes else 1
    n = None if n is None else np.broadcast_to(n, (n_budgets,)).copy()
    d = None if d is None else np.broadcast_to(d, (n_budgets,)).copy()
    return n, d, n_budgets


def _random_starts(n_random: int, k: int, seed: int) -> np.ndarray:
    """(n_random, k) Dirichlet(1) points, the uniform mixture first."""
    rng = np.random.default_rng(whole_number(seed, "seed", maximum=MAX_SEED))
    z = rng.dirichlet(np.ones(k), size=max(n_random - 1, 0))
    return np.concatenate([np.full((1, k), 1.0 / k), z], axis=0)[:n_random]


def _map_starts(z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Starts z (S, k) on the simplex mapped into each box (Q, k): lo + (1 - Σ lo) z, shape (Q, S, k)."""
    slack = 1.0 - lo.sum(axis=-1)
    return lo[:, None, :] + slack[:, None, None] * z[None, :, :]


def _run(req: _Request, log_n, log_d, lo, hi, w, starts, softmax: bool, coords=None):
    """Solve Q problems (with the fit's coordinates, or per-problem ``coords`` (Q, T, P)); numpy (h, f, n_best)."""
    if coords is None:
        coords = np.broadcast_to(req.coords, (len(w),) + req.coords.shape)
    h, f, n_best = _solve(
        req.law,
        req.k,
        jnp.asarray(coords),
        jnp.asarray(w),
        jnp.asarray(log_n),
        jnp.asarray(log_d),
        jnp.asarray(lo),
        jnp.asarray(hi),
        jnp.asarray(starts),
        softmax=softmax,
        adam_steps=ADAM_STEPS,
        spg_iter=SPG_MAX_ITER,
    )
    return np.asarray(h), np.asarray(f), np.asarray(n_best)


def _finish(req: _Request, n, d, compute, log_n, log_d, lo, hi, h, n_best, settings, seed, fit) -> MixtureResult:
    """Losses at h* and at the reference, active bounds; all arrays (B, O, ...)."""
    n_budgets, n_obj, k = h.shape
    flat = (n_budgets * n_obj,)
    h = np.clip(h, lo, hi)
    loss = np.asarray(
        _losses(
            req.law,
            k,
            jnp.asarray(req.coords),
            jnp.asarray(log_n.reshape(flat)),
            jnp.asarray(log_d.reshape(flat)),
            jnp.asarray(h.reshape(flat + (k,))),
        )
    )
    ref = np.broadcast_to(req.reference, flat + (k,))
    ref_loss = np.asarray(
        _losses(
            req.law,
            k,
            jnp.asarray(req.coords),
            jnp.asarray(log_n.reshape(flat)),
            jnp.asarray(log_d.reshape(flat)),
            jnp.asarray(ref),
        )
    )
    T = len(req.targets)
    bad = ~np.isfinite(loss).all(axis=1) | ~np.isfinite(ref_loss).all(axis=1)
    if bad.any():
        q = int(np.argmax(bad))
        where = (
            f"N = {np.exp(log_n.reshape(flat)[q]):.6g}, D = {np.exp(log_d.reshape(flat)[q]):.6g}"
            if req.law.uses_n or req.law.uses_d
            else "this budget"
        )
        raise MixlawError(
            f"the fitted law gives a non-finite loss at {where} (budget {q // n_obj}): far outside the fitted range"
        )
    loss = loss.reshape(n_budgets, n_obj, T)
    ref_loss = ref_loss.reshape(n_budgets, n_obj, T)
    objective = np.einsum("bot,ot->bo", loss, req.W)
    ref_objective = np.einsum("bot,ot->bo", ref_loss, req.W)
    active = np.full(h.shape, "", dtype="<U5")
    active[h - lo <= ACTIVE_TOL] = "lower"
    active[hi - h <= ACTIVE_TOL] = "upper"
    active[hi - lo <= ACTIVE_TOL] = "fixed"
    prov = provenance(seed, fit.provenance.get("table_hash") if isinstance(fit.provenance, dict) else None)
    return MixtureResult(
        law=req.law.name,
        domains=req.domains,
        targets=req.targets,
        objectives=req.objectives,
        target_weights=req.weights.copy(),
        n=n,
        d=d,
        compute=compute,
        h=h,
        loss=loss,
        objective=objective,
        reference_h=req.reference.copy(),
        reference_loss=ref_loss,
        reference_objective=ref_objective,
        lower=lo,
        upper=hi,
        active=active,
        starts_at_best=n_best.astype(np.int64),
        settings=settings,
        provenance=prov,
    )


def _softmax_mode(lo: np.ndarray, hi: np.ndarray) -> bool:
    """Unconstrained simplex everywhere (no bounds, caps or fixed domains): explore with h = softmax(θ)."""
    return bool((lo <= 0).all() and (hi >= 1).all())


# ----------------------------------------------------------------------------------------------------------------
# public API


def optimal_mixture(
    fit: FitResult,
    *,
    N=None,
    D=None,
    targets: Sequence[str] | None = None,
    target_weights=None,
    bounds="data",
    token_budget=None,
    fixed: Mapping[str, float] | None = None,
    reference=None,
    n_starts: int = 64,
    seed: int = 0,
) -> MixtureResult:
    """Optimal mixture h*(N, D) of a fitted law, per target and for a weighted average of targets.

    Solves, for every budget b and objective o (each target t alone, then the weighted combination),

        h* = argmin_{h ∈ F_b} Σ_t w_ot L_t(N_b, D_b, h),
        F_b = {h : Σ_i h_i = 1, lo_i <= h_i <= hi_ib},  hi_ib = min(hi_i, U_i / D_b),

    by softmax / projected Adam exploration and spectral projected gradient polishing from ``n_starts`` starts
    (module docstring), all budgets x objectives x starts in one compiled, vmapped call. Under the additive law
    h* does not depend on (N, D) (the scale terms do not involve h); under the joint law it does.

    Args:
      fit: a :class:`FitResult`.
      N, D: model size and training tokens: scalars, or 1-D arrays of equal length (a grid of budgets; a scalar
        is repeated). May be None for laws that do not use them.
      targets: targets to optimise (default: every target of the fit).
      target_weights: weights w_t of the weighted objective: a dict {target: w} (others 0) or a sequence aligned
        with ``targets``; normalised to sum to 1 (the objective is a weighted mean loss). Default: equal.
      bounds: ``"data"`` (default: h_i within the range seen in the fitted runs, ``fit.weight_range``),
        ``"simplex"`` (or None; 0 <= h_i <= 1), a dict {domain: (lo, hi)} (other domains [0, 1]) or a (k, 2) array.
      token_budget: unique tokens U_i available per domain, a dict {domain: U} (others unlimited) or a length-k
        array (np.inf = unlimited); caps h_i <= U_i / D.
      fixed: {domain: weight} domains held at a given weight (this overrides ``bounds`` for them).
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
    req = _request(fit, targets, target_weights, bounds, token_budget, fixed, reference)
    n, d, n_budgets = _budgets(req.law, N, D)
    if req.tokens is not None and d is None:
        raise MixlawError("token_budget needs D (the caps are U_i / D)")
    lo, hi, feasible, messages = req.problems(d)
    if not feasible.all():
        raise MixlawError(messages[int(np.argmin(feasible))])
    n_obj = len(req.objectives)
    log_n = np.broadcast_to(np.log(n) if n is not None else np.zeros(n_budgets), (n_obj, n_budgets)).T
    log_d = np.broadcast_to(np.log(d) if d is not None else np.zeros(n_budgets), (n_obj, n_budgets)).T
    lo = np.broadcast_to(lo[:, None, :], (n_budgets, n_obj, req.k)).copy()
    hi = np.broadcast_to(hi[:, None, :], (n_budgets, n_obj, req.k)).copy()
    flat = n_budgets * n_obj
    slo, shi = req.solver_box(lo.reshape(flat, req.k), hi.reshape(flat, req.k))
    w = np.broadcast_to(req.W[None], (n_budgets, n_obj, len(req.targets))).reshape(flat, -1)
    starts = _map_starts(_random_starts(n_starts, req.k, seed), slo, shi)
    softmax = _softmax_mode(lo, hi)
    h, _, n_best = _run(req, log_n.reshape(flat), log_d.reshape(flat), slo, shi, w, starts, softmax)
    settings = dict(req.settings, n_starts=n_starts, seed=seed, method=_method(softmax))
    n2 = None if n is None else np.broadcast_to(n[:, None], (n_budgets, n_obj)).copy()
    d2 = None if d is None else np.broadcast_to(d[:, None], (n_budgets, n_obj)).copy()
    return _finish(
        req,
        n2,
        d2,
        None,
        log_n,
        log_d,
        lo,
        hi,
        h.reshape(n_budgets, n_obj, req.k),
        n_best.reshape(n_budgets, n_obj),
        settings,
        seed,
        fit,
    )


def replicate_mixtures(
    fit: FitResult,
    coordinates: np.ndarray,
    *,
    N=None,
    D=None,
    targets: Sequence[str] | None = None,
    target_weights=None,
    bounds="data",
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
      targets, target_weights, bounds, token_budget, fixed, seed: as in :func:`optimal_mixture`.
      n_starts: random starts per replicate (the uniform mixture first).
      warm: optional (R, k) or (k,) extra start, e.g. the fit's own h*.

    Returns:
      (h* (R, k), objective at h* (R,), the targets of the objective).
    """
    n_starts = whole_number(n_starts, "n_starts", minimum=1)
    req = _request(fit, targets, target_weights, bounds, token_budget, fixed, None)
    n, d, n_budgets = _budgets(req.law, N, D)
    if n_budgets != 1:
        raise MixlawError(f"replicate_mixtures solves one budget (N, D) at a time, not {n_budgets}")
    lo, hi, feasible, messages = req.problems(d)
    if not feasible.all():
        raise MixlawError(messages[0])
    coordinates = np.asarray(coordinates, dtype=float)
    n_rep = coordinates.shape[0]
    index = [fit.targets.index(t) for t in req.targets]
    slo, shi = req.solver_box(lo, hi)
    slo, shi = np.broadcast_to(slo, (n_rep, req.k)), np.broadcast_to(shi, (n_rep, req.k))
    starts = _map_starts(_random_starts(n_starts, req.k, seed), slo, shi)
    if warm is not None:
        starts = np.concatenate([np.broadcast_to(np.asarray(warm, float), (n_rep, req.k))[:, None], starts], axis=1)
    log_n = np.full(n_rep, np.log(n[0]) if n is not None else 0.0)
    log_d = np.full(n_rep, np.log(d[0]) if d is not None else 0.0)
    w = np.broadcast_to(req.W[-1], (n_rep, len(req.targets)))
    h, f, _ = _run(req, log_n, log_d, slo, shi, w, starts, _softmax_mode(lo, hi), coords=coordinates[:, index])
    return np.clip(h, lo, hi), f, req.targets


def _method(softmax: bool) -> dict:
    return {
        "explore": ("adam on h = softmax(theta)" if softmax else "projected adam"),
        "adam_steps": ADAM_STEPS,
        "polish": "spectral projected gradient (Barzilai-Borwein, Armijo backtracking)",
        "max_polish_iterations": SPG_MAX_ITER,
    }


def compute_optimal(
    fit: FitResult,
    *,
    C,
    targets: Sequence[str] | None = None,
    target_weights=None,
    bounds="data",
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

    A result whose N sits at the edge of the tokens-per-parameter range is flagged with a warning and listed in
    ``settings["at_edge"]``: widen ``tokens_per_parameter``.

    Args:
      fit: a :class:`FitResult` of a law that uses both N and D.
      C: FLOPs budgets, a scalar or 1-D array, > 0.
      targets, target_weights, bounds, token_budget, fixed, reference, n_starts, seed: as in
        :func:`optimal_mixture`.
      tokens_per_parameter: (low, high) range of D / N searched.
      n_grid: points per grid (first stage and each refinement round), >= 3.
      refine_rounds: zoom rounds.

    Returns:
      A :class:`MixtureResult` with ``compute`` = C, and ``n``, ``d`` chosen per budget and objective.

    Raises:
      MixlawError: as :func:`optimal_mixture`, plus a law without N or D, bad C, or no feasible mixture anywhere
        on the grid for some C.
    """
    n_starts = whole_number(n_starts, "n_starts", minimum=1)
    req = _request(fit, targets, target_weights, bounds, token_budget, fixed, reference)
    if not (req.law.uses_n and req.law.uses_d):
        raise MixlawError(f"compute_optimal needs a law of N and D; {req.law.name!r} does not use both")
    c = _budget_array(C, "C")
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
    n_budgets, n_obj, k, T = len(c), len(req.objectives), req.k, len(req.targets)
    log_c6 = np.log(c / 6.0)
    # u = log N and r = D / N = (C/6) / N^2, so u = (log(C/6) - log r) / 2
    u_min = (log_c6 - math.log(r_hi)) / 2  # (B,)
    u_max = (log_c6 - math.log(r_lo)) / 2
    spacing = (u_max - u_min) / (n_grid - 1)
    z_all = _random_starts(n_starts, k, seed)
    few = max(4, n_starts // 8)
    ij = (np.arange(n_budgets)[:, None], np.arange(n_obj)[None, :])

    def evaluate(u, warm, n_random):
        """u (B, O, M) log N; warm (B, O, k) -> h (B, O, M, k), f (B, O, M), n_best, lo, hi, feasible, messages."""
        m = u.shape[2]
        log_d = log_c6[:, None, None] - u
        lo, hi, feasible, messages = req.problems(np.exp(log_d).reshape(-1))
        q = lo.shape[0]
        lo_s, hi_s = np.where(feasible[:, None], lo, 0.0), np.where(feasible[:, None], hi, 1.0)
        lo_s, hi_s = req.solver_box(lo_s, hi_s)
        w = np.broadcast_to(req.W[None, :, None, :], (n_budgets, n_obj, m, T)).reshape(q, T)
        warm_q = np.broadcast_to(warm[:, :, None, :], (n_budgets, n_obj, m, k)).reshape(q, 1, k)
        starts = np.concatenate([warm_q, _map_starts(z_all[:n_random], lo_s, hi_s)], axis=1)
        h, f, n_best = _run(req, u.reshape(q), log_d.reshape(q), lo_s, hi_s, w, starts, _softmax_mode(lo, hi))
        f = np.where(feasible, f, np.inf)
        shape = (n_budgets, n_obj, m)
        return (
            h.reshape(shape + (k,)),
            f.reshape(shape),
            n_best.reshape(shape),
            lo.reshape(shape + (k,)),
            hi.reshape(shape + (k,)),
            feasible.reshape(shape),
            messages,
        )

    # 1. grid (the same u for every objective)
    grid = u_min[:, None] + spacing[:, None] * np.arange(n_grid)[None, :]  # (B, J)
    u = np.broadcast_to(grid[:, None, :], (n_budgets, n_obj, n_grid)).copy()
    uniform = np.full((n_budgets, n_obj, k), 1.0 / k)
    h, f, _, _, _, feasible, messages = evaluate(u, uniform, few)
    for b in range(n_budgets):
        if not feasible[b, 0].any():
            raise MixlawError(
                f"C = {c[b]:.6g}: no feasible mixture anywhere on the grid of N; at the largest N: "
                f"{messages[(b * n_obj) * n_grid + n_grid - 1]}"
            )
    j = np.argmin(f, axis=2)  # (B, O)
    u_best, h_best, f_best = u[ij + (j,)], h[ij + (j,)], f[ij + (j,)]
    # 2. zoom: n_grid points on [u - delta, u + delta], same shapes as the grid (one compiled program)
    delta = np.broadcast_to(spacing[:, None], (n_budgets, n_obj)).copy()
    offsets = np.linspace(-1.0, 1.0, n_grid)
    for _ in range(refine_rounds):
        u = np.clip(u_best[:, :, None] + delta[:, :, None] * offsets, u_min[:, None, None], u_max[:, None, None])
        h, f, *_ = evaluate(u, h_best, few)
        j = np.argmin(f, axis=2)
        better = f[ij + (j,)] <= f_best
        u_best = np.where(better, u[ij + (j,)], u_best)
        h_best = np.where(better[..., None], h[ij + (j,)], h_best)
        f_best = np.where(better, f[ij + (j,)], f_best)
        delta = delta * 2.0 / (n_grid - 1)
    # 3. final solve at the chosen (N, D): full starts plus the warm start
    h, f, n_best, lo, hi, _, _ = evaluate(u_best[:, :, None], h_best, n_starts)
    h, f, n_best, lo, hi = h[:, :, 0], f[:, :, 0], n_best[:, :, 0], lo[:, :, 0], hi[:, :, 0]
    h = np.where((f <= f_best)[..., None], h, h_best)
    edge = (u_best - u_min[:, None] < spacing[:, None] / 2) | (u_max[:, None] - u_best < spacing[:, None] / 2)
    at_edge = [[float(c[b]), req.objectives[o]] for b, o in zip(*np.nonzero(edge))]
    if at_edge:
        warnings.warn(
            f"compute_optimal: the best N is at the edge of tokens_per_parameter={tokens_per_parameter} "
            f"for (C, objective) {at_edge}; widen the range",
            stacklevel=2,
        )
    log_n, log_d = u_best, log_c6[:, None] - u_best
    settings = dict(
        req.settings,
        n_starts=n_starts,
        seed=seed,
        method=_method(_softmax_mode(lo, hi)),
        tokens_per_parameter=[r_lo, r_hi],
        n_grid=int(n_grid),
        refine_rounds=int(refine_rounds),
        at_edge=at_edge,
    )
    return _finish(req, np.exp(log_n), np.exp(log_d), c.copy(), log_n, log_d, lo, hi, h, n_best, settings, seed, fit)


__all__ = ["MixtureResult", "compute_optimal", "load_mixture", "optimal_mixture", "project", "replicate_mixtures"]
