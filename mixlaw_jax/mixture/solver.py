"""The solver of the optimal-mixture problem, batched: budgets x objectives x starts in one compiled program.

For targets t = 1..T with objective weights w_t >= 0, Σ_t w_t = 1, and a budget (N, D), it finds

    h* = argmin_{h ∈ F} f(h),    f(h) = Σ_t w_t L_t(N, D, h),

over a bounded simplex F (:mod:`.constraints`), L_t being a fitted law of Shukor et al. 2025 ("Scaling Laws for
Optimal Data Mixtures"; eq. 2.4, additive, or eq. 2.5, joint). Shukor et al. minimise L over the simplex by
mirror descent; here, from each start:

1. *Explore.* Without constraints (F = the simplex), Adam steps on θ with h = softmax(θ) = e^θ / Σ_j e^θ_j, which
   keeps h on the simplex with no projection. With constraints, projected Adam steps h <- Π_F(h + Δ_adam).
2. *Polish.* Spectral projected gradient (SPG; Birgin, Martínez & Raydan 2000, "Nonmonotone spectral projected
   gradient methods on convex sets") in h-space, with projected Newton candidates. Each iteration evaluates at
   once the SPG candidates h + t d, d = Π_F(h - α g) - h with the Barzilai-Borwein step α = s·s / s·y, and the
   Newton candidates Π_F(h + t d_N), where d_N minimises the quadratic model g·d + d·H'd/2 on the current face of
   F (H' the Hessian with |eigenvalues|, bounded away from 0), for t ∈ {1, 1/2, ..., 2^-11}; it moves to the
   lowest f among those passing the Armijo test f(c) <= f(h) + 1e-4 min(g·(c - h), 0). SPG makes progress from
   anywhere; the Newton candidates converge quadratically where plain gradient steps crawl (weights near 0, where
   h^γ curves sharply). It stops when ||d||_∞ <= 1e-15 or no candidate decreases f any more (the floating-point
   floor of f): a stationary point to machine precision, not a step-count budget (at most 200 iterations).
3. Keep the start with the lowest f per problem. Starts are the projection of the uniform mixture and random
   Dirichlet(1) points mapped into F (h0 = lo + (1 - Σ lo) z, then projected).

Inside the solver each lower bound of 0 is raised to 1e-12 (where that keeps Σ lo <= 1): the gradient of h_i^γ
with γ < 1 is infinite at h_i = 0, and the law evaluates h_i = 0 as "term absent" with a zero gradient, which
would trap a projected method on the face h_i = 0.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..compile_cache import before_solve
from ..laws import Inputs, Law
from ..options import MAX_SEED, whole_number
from .constraints import project

#: lower bounds of 0 are raised to this inside the solver (finite gradients of h^γ, γ < 1).
H_FLOOR = 1e-12
ADAM_STEPS = 100
SOFTMAX_LR = 0.05
PROJECTED_LR = 0.01
SPG_MAX_ITER = 200
LINE_SEARCH = 12
ARMIJO = 1e-4
ALPHA_MIN, ALPHA_MAX = 1e-14, 1e8
STEP_TOL = 1e-15


def target_losses(law: Law, k: int, coordinates, log_n, log_d, h, log_u=None) -> jax.Array:
    """(T,) predicted losses L_t(N, D, h) of every target at one (log N, log D, h (k,)); coordinates (T, P); for a
    law that reads the unique tokens, log U (k,) (None otherwise)."""
    x = Inputs.from_logs(log_n[None], log_d[None], h[None], None if log_u is None else log_u[None])
    return jax.vmap(lambda u: law.predict(law.unflatten(u, k), x)[0])(coordinates)


def weighted_loss(law: Law, k: int, coordinates, w, log_n, log_d, h, log_u=None) -> jax.Array:
    """The objective h* minimises: Σ_t w_t L_t(N, D, h) at one (log N, log D, h (k,)); coordinates (T, P), w (T,)."""
    return jnp.dot(w, target_losses(law, k, coordinates, log_n, log_d, h, log_u))


@functools.partial(jax.jit, static_argnames=("law", "k"))
def losses(law: Law, k: int, coordinates, log_n, log_d, h, log_u=None) -> jax.Array:
    """(Q, T) losses of every target at Q points (log_n (Q,), log_d (Q,), h (Q, k), log_u (Q, k) or None);
    coordinates (T, P)."""
    return jax.vmap(lambda ln, ld, hh, lu: target_losses(law, k, coordinates, ln, ld, hh, lu))(log_n, log_d, h, log_u)


# ----------------------------------------------------------------------------------------------------------------
# one start of one problem (pure JAX; vmapped by ``_solve_batch``)


def _finite(g):
    return jnp.where(jnp.isfinite(g), g, 0.0)


def _explore_softmax(f, h0, steps: int):
    """Adam on θ, h = softmax(θ), from θ = log h0: the unconstrained simplex needs no projection."""
    opt = optax.adam(SOFTMAX_LR)
    theta0 = jnp.log(h0)

    def step(carry, _):
        theta, state = carry
        g = jax.grad(lambda t: f(jax.nn.softmax(t)))(theta)
        updates, state = opt.update(_finite(g), state)
        return (optax.apply_updates(theta, updates), state), None

    (theta, _), _ = jax.lax.scan(step, (theta0, opt.init(theta0)), None, length=steps)
    return jax.nn.softmax(theta)


def _explore_projected(f, h0, lo, hi, steps: int):
    """Projected Adam: h <- Π_F(h + Δ_adam)."""
    opt = optax.adam(PROJECTED_LR)

    def step(carry, _):
        h, state = carry
        g = jax.grad(f)(h)
        updates, state = opt.update(_finite(g), state)
        return (project(h + updates, lo, hi), state), None

    (h, _), _ = jax.lax.scan(step, (h0, opt.init(h0)), None, length=steps)
    return h


def _descend(f, h0, lo, hi, softmax: bool, adam_steps: int, spg_iter: int):
    """Explore (softmax or projected Adam) then polish (SPG) from one start; returns (h, f(h))."""

    def safe(h):
        value = f(h)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    h0 = project(h0, lo, hi)
    if adam_steps > 0:
        if softmax:
            h1 = project(_explore_softmax(f, h0, adam_steps), lo, hi)
        else:
            h1 = _explore_projected(f, h0, lo, hi, adam_steps)
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


def _line_search(safe, h, fval, g, d, d_newton, lo, hi, ts):
    """The lowest of the SPG candidates h + t d and the Newton candidates Π_F(h + t d_N) that pass the Armijo test.

    Returns (h_new, f(h_new), whether it moved); h_new = h when no candidate passes.
    """
    spg = h[None, :] + ts[:, None] * d[None, :]
    newton = jax.vmap(lambda t: project(h + t * d_newton, lo, hi))(ts)
    candidates = jnp.concatenate([spg, newton], axis=0)
    fc = jax.vmap(safe)(candidates)
    decrease = jnp.minimum((candidates - h[None, :]) @ g, 0.0)
    ok = (fc <= fval + ARMIJO * decrease) & (fc < fval) & jnp.isfinite(fc)
    moved = jnp.any(ok)
    j = jnp.argmin(jnp.where(ok, fc, jnp.inf))
    return jnp.where(moved, candidates[j], h), jnp.where(moved, fc[j], fval), moved


def _barzilai_borwein(s, y):
    """The spectral step α = s·s / s·y (ALPHA_MAX where s·y <= 0), clipped to [ALPHA_MIN, ALPHA_MAX]."""
    sy, ss = jnp.dot(s, y), jnp.dot(s, s)
    return jnp.where(sy > 0, jnp.clip(ss / jnp.where(sy > 0, sy, 1.0), ALPHA_MIN, ALPHA_MAX), ALPHA_MAX)


class _PolishState(NamedTuple):
    h: jax.Array
    f: jax.Array
    g: jax.Array  # centred gradient at h
    alpha: jax.Array  # SPG step
    it: jax.Array
    done: jax.Array


def _polish(f, safe, h, lo, hi, max_iter: int):
    """Spectral projected gradient with Barzilai-Borwein steps, plus projected Newton candidates (module docstring).

    Returns (h, f(h)) at the stationary point reached (or after ``max_iter`` iterations).
    """
    value_and_grad = jax.value_and_grad(f)
    hessian = jax.hessian(f)
    movable = (hi > lo).astype(h.dtype)
    ts = 0.5 ** jnp.arange(LINE_SEARCH, dtype=h.dtype)

    def centred(g):
        # P(h - α g) is unchanged by adding a constant to g (it shifts λ); removing the mean over the movable
        # coordinates keeps v = h - α g small, so λ is found without cancellation when α is large.
        g = _finite(g)
        return g - jnp.sum(g * movable) / jnp.maximum(jnp.sum(movable), 1.0)

    def body(state: _PolishState) -> _PolishState:
        d = project(state.h - state.alpha * state.g, lo, hi) - state.h
        d_newton = _newton_direction(state.g, hessian(state.h), state.h, lo, hi, movable)
        h_new, f_new, moved = _line_search(safe, state.h, state.f, state.g, d, d_newton, lo, hi, ts)
        _, g_new = value_and_grad(h_new)
        g_finite = jnp.all(jnp.isfinite(g_new))
        g_new = jnp.where(g_finite, centred(g_new), state.g)
        bb = _barzilai_borwein(h_new - state.h, g_new - state.g)
        alpha_new = jnp.where(moved, bb, state.alpha * ts[-1] * 0.5)
        stalled = ~moved & (jnp.max(jnp.abs(d_newton)) * ts[-1] < STEP_TOL)
        done = (jnp.max(jnp.abs(d)) <= STEP_TOL) | (alpha_new < ALPHA_MIN) | ~g_finite | stalled
        return _PolishState(h_new, f_new, g_new, alpha_new, state.it + 1, done)

    f0, g0 = value_and_grad(h)
    g0 = centred(g0)
    d0 = project(h - g0, lo, hi) - h
    alpha0 = jnp.clip(1.0 / jnp.maximum(jnp.max(jnp.abs(d0)), 1e-12), ALPHA_MIN, ALPHA_MAX)
    done0 = ~jnp.isfinite(f0)
    state = _PolishState(h, jnp.where(done0, jnp.inf, f0), g0, alpha0, jnp.asarray(0), done0)
    state = jax.lax.while_loop(lambda s: (s.it < max_iter) & ~s.done, body, state)
    h = project(state.h, lo, hi)
    return h, safe(h)


# ----------------------------------------------------------------------------------------------------------------
# Q problems x S starts


@functools.partial(jax.jit, static_argnames=("law", "k", "softmax", "adam_steps", "spg_iter"))
def _solve_batch(
    law: Law,
    k: int,
    coordinates,
    w,
    log_n,
    log_d,
    lo,
    hi,
    starts,
    log_u,
    *,
    softmax: bool,
    adam_steps: int,
    spg_iter: int,
):
    """Q problems x S starts in one program (arguments as in :func:`solve`, as JAX arrays)."""

    def problem(coordinates_q, w_q, ln, ld, lo_q, hi_q, starts_q, lu):
        def f(h):
            return weighted_loss(law, k, coordinates_q, w_q, ln, ld, h, lu)

        h, fv = jax.vmap(lambda h0: _descend(f, h0, lo_q, hi_q, softmax, adam_steps, spg_iter))(starts_q)
        best = jnp.argmin(fv)
        near = fv <= fv[best] + 1e-9 * jnp.maximum(1.0, jnp.abs(fv[best]))
        return h[best], fv[best], jnp.sum(near)

    return jax.vmap(problem)(coordinates, w, log_n, log_d, lo, hi, starts, log_u)


class Solution(NamedTuple):
    """The best start of each of Q problems."""

    h: np.ndarray  #: (Q, k) best point
    f: np.ndarray  #: (Q,) objective there
    starts_at_best: np.ndarray  #: (Q,) starts that reached it (within 1e-9 relative)


def solve(law: Law, coordinates, w, log_n, log_d, lo, hi, starts, softmax: bool, log_u=None) -> Solution:
    """Minimise f_q(h) = Σ_t w_qt L_t(N_q, D_q, h; coordinates_q) over F_q for Q problems, from S starts each.

    Args:
      law: the fitted law.
      coordinates: (Q, T, P) law coordinates of every target, per problem (a bootstrap solves each replicate's law).
      w: (Q, T) objective weights; log_n, log_d: (Q,) (zeros for a law without N or D).
      lo, hi: (Q, k) bounds of F_q, as given by :func:`solver_box`.
      starts: (Q, S, k) start points (projected onto each F_q first).
      softmax: explore with h = softmax(θ) (:func:`softmax_mode`) instead of projected Adam.
      log_u: (Q, k) log of the unique tokens per domain for a law that reads them (+inf: unlimited), else None.

    The first call in a process switches the on-disk compilation cache on, and a process near its memory-map limit
    drops its compiled programs (:mod:`mixlaw_jax.compile_cache`).
    """
    before_solve()
    h, f, n_best = _solve_batch(
        law,
        lo.shape[-1],
        jnp.asarray(coordinates),
        jnp.asarray(w),
        jnp.asarray(log_n),
        jnp.asarray(log_d),
        jnp.asarray(lo),
        jnp.asarray(hi),
        jnp.asarray(starts),
        None if log_u is None else jnp.asarray(log_u),
        softmax=softmax,
        adam_steps=ADAM_STEPS,
        spg_iter=SPG_MAX_ITER,
    )
    return Solution(np.asarray(h), np.asarray(f), np.asarray(n_best))


def solver_box(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raise lower bounds of 0 to H_FLOOR where that keeps Σ lo <= 1 (finite gradients of h^γ at 0)."""
    floored = np.where(hi > lo, np.maximum(lo, np.minimum(H_FLOOR, hi)), lo)
    ok = floored.sum(axis=-1, keepdims=True) <= 1.0
    return np.where(ok, floored, lo), hi


def softmax_mode(lo: np.ndarray, hi: np.ndarray) -> bool:
    """Unconstrained simplex everywhere (no bounds, caps or fixed domains): explore with h = softmax(θ)."""
    return bool((lo <= 0).all() and (hi >= 1).all())


def random_starts(n_random: int, k: int, seed: int) -> np.ndarray:
    """(n_random, k) Dirichlet(1) points, the uniform mixture first."""
    rng = np.random.default_rng(whole_number(seed, "seed", maximum=MAX_SEED))
    z = rng.dirichlet(np.ones(k), size=max(n_random - 1, 0))
    return np.concatenate([np.full((1, k), 1.0 / k), z], axis=0)[:n_random]


def map_starts(z: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Starts z (S, k) on the simplex mapped into each box (Q, k): lo + (1 - Σ lo) z, shape (Q, S, k)."""
    slack = 1.0 - lo.sum(axis=-1)
    return lo[:, None, :] + slack[:, None, None] * z[None, :, :]


def method_settings(softmax: bool) -> dict:
    """The method, as recorded in ``MixtureResult.settings["method"]``."""
    return {
        "explore": ("adam on h = softmax(theta)" if softmax else "projected adam"),
        "adam_steps": ADAM_STEPS,
        "polish": "spectral projected gradient (Barzilai-Borwein, Armijo backtracking)",
        "max_polish_iterations": SPG_MAX_ITER,
    }
