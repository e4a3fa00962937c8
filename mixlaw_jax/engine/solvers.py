"""The local solver for the Huber objective, as pure functions of one start (vmapped by the engine).

It minimises

    f(z) = c * sum_j w_j Huber_delta(y_j - m_j(z))

for a model m (the law's prediction in raw or log space), row weights w and normaliser c.

``lm_step`` / ``lm_run`` — iteratively reweighted Gauss-Newton with Levenberg-Marquardt damping.
With r = y - m(z), J = dm/dz, psi = clip(r, -delta, delta) and IRLS weights
omega_j = w_j min(1, delta / |r_j|) (the curvature of the quadratic that majorises Huber at r_j),
a step solves

    (J^T Omega J + lambda diag(J^T Omega J)) s = J^T (w * psi)

and is accepted when it lowers f (then lambda /= 3, else lambda *= 4). Near-L1 objectives
(delta = 1e-3 on raw losses) are badly conditioned for first-order methods; this step is invariant
to the scale of each coordinate and needs tens, not tens of thousands, of iterations.

The design named "Huber-loss gradient descent plus L-BFGS". From the same starts, optax's Adam (2000 steps) then
L-BFGS (4000 steps) took 31-35x LM's time and still ended higher (``benchmarks/local_solvers.py``,
benchmarks/NOTES.md), so the engine's local solver is LM alone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import MixlawError
from ..objective import huber_objective, huber_psi

Model = Callable[[jax.Array], jax.Array]  # z (P,) -> model values (n,)
ModelJacobian = Callable[[jax.Array], tuple[jax.Array, jax.Array]]  # z -> (values (n,), Jacobian (n, P))


#: kappa in the IRLS weight kappa * delta / |r| of residuals outside the Huber band (1: the majoriser).
OUTER_CURVATURE = 1.0
#: An iteration "stalls" when it lowers f by less than this fraction; STALL_LIMIT in a row ends a run
#: (the damping has then grown 4^STALL_LIMIT-fold without finding a decrease worth having).
STALL_RTOL = 1e-12
STALL_LIMIT = 6
#: A run has converged when it stalled, or when its last fifth of iterations lowered f by at most this fraction
#: (near-L1 objectives keep yielding decreases of ~1e-12 that reset the stall count without moving the optimum).
CONVERGED_RTOL = 1e-6


class Rows(NamedTuple):
    """A fitting problem's data: targets y (NaN-free where w > 0), row weights w, normaliser c.

    One problem has y, w of shape (n,); the engine batches B problems along a leading axis.
    """

    y: jax.Array
    w: jax.Array
    c: jax.Array


class SolverState(NamedTuple):
    """What a solver carries between iterations, per start."""

    z: jax.Array  # (P,) current point
    f: jax.Array  # objective at z (inf for a failed start)
    damping: jax.Array  # Levenberg-Marquardt lambda
    last_improved: jax.Array  # iteration of the last accepted step
    stall: jax.Array  # consecutive iterations that lowered f by less than STALL_RTOL (relative)
    f_mark: jax.Array  # f when the current run entered its last fifth of iterations (inf before)
    gradient_norm: jax.Array  # |grad f(z)|_2 from lm_run's last linearisation (inf before one, or where not finite)


def objective(model: Model, rows: Rows, delta: float, z: jax.Array) -> jax.Array:
    """f(z); +inf where the model is not finite on a weighted row (a failed start, never NaN)."""
    return huber_objective(rows.y - model(z), rows.w, rows.c, delta)


#: Levenberg-Marquardt lambda of a fresh start.
INITIAL_DAMPING = 1e-2


def start_states(z) -> SolverState:
    """Fresh states at the points z (..., P), as host arrays, before any evaluation (f = inf): ``lm_run``'s first pass
    evaluates them, so a run of 0 iterations scores the points. Counters take JAX's default integer type, so that
    these states and those ``lm_run`` returns have one signature (one compiled program)."""
    z = np.asarray(z)
    shape = z.shape[:-1]
    count = np.zeros(shape, jax.dtypes.canonicalize_dtype(np.int64))
    inf = np.full(shape, np.inf, z.dtype)
    return SolverState(z, inf, np.full(shape, INITIAL_DAMPING, z.dtype), count, count, inf, inf)


def spd_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """x with a x = b for a symmetric positive definite (P, P) matrix a, by Gauss-Jordan elimination in XLA.

    With s = diag(a)^(-1/2), it eliminates the unit-diagonal system (S a S) y = S b column by column without
    pivoting (the pivots of an SPD matrix are its positive Schur complements) and returns x = S y. P steps of
    O(P^2) work in plain XLA on every platform: the solvers' default, and the engine's for the screen's small
    least-squares systems (the LM step uses :func:`sequential_cholesky_solve` or :func:`cholesky_solve`, 3-4x
    faster for P = 33). A matrix that is not SPD gives a non-finite or useless x, which the caller's acceptance
    test rejects.
    """
    s = 1.0 / jnp.sqrt(jnp.diag(a))
    a = a * s[:, None] * s[None, :]
    y = b * s

    def eliminate(j, carry):
        a, y = carry
        row, yj = a[j] / a[j, j], y[j] / a[j, j]
        column = a[:, j].at[j].set(0.0)
        a = (a - column[:, None] * row[None, :]).at[j].set(row)
        y = (y - column * yj).at[j].set(yj)
        return a, y

    return jax.lax.fori_loop(0, a.shape[0], eliminate, (a, y))[1] * s


def cholesky_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """x with a x = b for a symmetric positive definite a, by the platform's Cholesky (LAPACK, cuSOLVER) of the
    same Jacobi-scaled system as :func:`spd_solve`; a matrix that is not SPD gives a non-finite x. Under ``vmap`` it
    is one batched call: the accelerators' solve (:func:`sequential_cholesky_solve` on a CPU)."""
    s = 1.0 / jnp.sqrt(jnp.diag(a))
    factor = jax.scipy.linalg.cho_factor(a * s[:, None] * s[None, :])
    return jax.scipy.linalg.cho_solve(factor, b * s) * s


@jax.custom_batching.custom_vmap
def sequential_cholesky_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """:func:`cholesky_solve`, but under ``vmap`` the systems are solved one after another (``lax.map``).

    jaxlib 0.10's batched LAPACK kernels split a batch over the process's shared thread pool and wait for it; when
    two programs solve at once (two threads, or two devices of one process) every pool thread can end up waiting
    and the process hangs (docs/multihost.md). One system per call runs inline. For P = 33 it costs ~7.5 us against
    5.5 us batched and 20-30 us for :func:`spd_solve` (this project's 2-core CPU; benchmarks/NOTES.md, session 9).
    """
    return cholesky_solve(a, b)


@sequential_cholesky_solve.def_vmap
def _sequential_cholesky_batched(axis_size, in_batched, a, b):
    a, b = (v if batched else jnp.broadcast_to(v, (axis_size,) + v.shape) for v, batched in zip((a, b), in_batched))
    return jax.lax.map(lambda ab: sequential_cholesky_solve(*ab), (a, b)), True


Solve = Callable[[jax.Array, jax.Array], jax.Array]  # (a, b) -> x with a x = b, a SPD


class Linearisation(NamedTuple):
    """What a step needs from the current point: f, the gradient-side vector c J^T (w psi) = -grad f and the Gram
    c J^T Omega J."""

    f: jax.Array  # objective (inf where the model is not finite)
    g: jax.Array  # (P,)
    gram: jax.Array  # (P, P)


Linearise = Callable[[jax.Array], Linearisation]  # z -> Linearisation at z (rows and delta fixed)


def irls_weights(rows: Rows, delta: float, m: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(f, c w psi(r), c omega) from model values m: the objective and the per-row weights of a step, with the
    normaliser c folded in, so that J^T (c w psi) = -grad f.

    r = y - m on weighted rows (0 elsewhere); omega_j = w_j min(1, kappa delta / |r_j|) (see module docstring).
    """
    r = jnp.where(rows.w > 0, rows.y - m, 0.0)
    abs_r = jnp.abs(r)
    cw = rows.c * rows.w
    omega = cw * jnp.where(abs_r <= delta, 1.0, OUTER_CURVATURE * delta / jnp.maximum(abs_r, delta))
    return huber_objective(rows.y - m, rows.w, rows.c, delta), cw * huber_psi(r, delta), omega


def linearise(model_jac: ModelJacobian, rows: Rows, delta: float, z: jax.Array) -> Linearisation:
    """f, c J^T (w psi(r)) and c J^T Omega J at z, from one model-and-Jacobian evaluation (see module docstring)."""
    m, jac = model_jac(z)
    f, w_psi, omega = irls_weights(rows, delta, m)
    jac = jnp.where((rows.w > 0)[:, None], jac, 0.0)
    return Linearisation(f, jac.T @ w_psi, (jac * omega[:, None]).T @ jac)


def lm_step(
    lin: Linearise,
    state: SolverState,
    here: Linearisation,
    it,
    solve: Solve = spd_solve,
    fresh=False,
    value: Callable[[jax.Array], jax.Array] | None = None,
) -> tuple[SolverState, Linearisation]:
    """One damped IRLS Gauss-Newton step (see module docstring) from the linearisation ``here`` at state.z.

    The trial point is linearised at once: its f decides acceptance, and an accepted step carries its
    linearisation to the next iteration, so each iteration costs one model-and-Jacobian evaluation. With
    ``value`` (z -> f, for one start outside ``vmap``) the trial point's f is evaluated first and only an accepted
    one is linearised (``lax.cond``): a rejected step then costs a forward pass instead of a Gram. A ``fresh``
    pass takes no step: it only linearises at state.z (``here`` is then a placeholder), so that a compiled
    run holds one copy of the linearisation.
    """
    z, f, lam, last, stall = state.z, state.f, state.damping, state.last_improved, state.stall
    diag = jnp.diag(here.gram)
    diag = jnp.maximum(diag, 1e-12 * jnp.max(diag) + 1e-300)
    z_new = jnp.where(fresh, z, z + solve(here.gram + lam * jnp.diag(diag), here.g))
    finite = jnp.all(jnp.isfinite(z_new))
    if value is None:
        trial = lin(z_new)
        accept = fresh | ((trial.f < f) & finite)
    else:
        accept = fresh | ((value(z_new) < f) & finite)
        trial = jax.lax.cond(accept, lin, lambda _: here, z_new)
        accept = accept & (fresh | (trial.f < f))
    progress = accept & (f - trial.f > STALL_RTOL * f)
    state = state._replace(
        z=jnp.where(accept, z_new, z),
        f=jnp.where(accept, trial.f, f),
        damping=jnp.where(fresh, lam, jnp.clip(jnp.where(accept, lam / 3.0, lam * 4.0), 1e-12, 1e12)),
        last_improved=jnp.where(accept & ~fresh, it + 1, last),
        stall=jnp.where(fresh, stall, jnp.where(progress, 0, stall + 1)),
    )
    return state, jax.tree.map(lambda new, old: jnp.where(accept, new, old), trial, here)


def lm_run(
    lin: Linearise,
    state: SolverState,
    first_iter,
    n_iter,
    solve: Solve = spd_solve,
    value: Callable[[jax.Array], jax.Array] | None = None,
) -> SolverState:
    """Up to ``n_iter`` LM iterations, stopping early once the run has stalled (see ``STALL_LIMIT``); ``value``:
    linearise accepted trial points only (``lm_step``).

    Under ``vmap`` the loop runs until every start in the batch has stalled or used its iterations. Its first
    pass (numbered first_iter - 1) linearises at the start point without stepping (``lm_step``'s ``fresh``), so it
    also evaluates f and the gradient norm there: with ``n_iter`` = 0 that is all it does.
    """
    mark = first_iter + n_iter - jnp.maximum(n_iter // 5, 1)
    placeholder = Linearisation(state.f, jnp.zeros_like(state.z), jnp.diag(jnp.ones_like(state.z)))

    def cond(carry):
        i, s, _ = carry
        return (i < first_iter + n_iter) & (s.stall < STALL_LIMIT)

    def body(carry):
        i, s, here = carry
        s = s._replace(f_mark=jnp.where(i == mark, s.f, s.f_mark))
        s, here = lm_step(lin, s, here, i, solve, fresh=i < first_iter, value=value)
        return i + 1, s, here

    start = state._replace(stall=jnp.zeros_like(state.stall), f_mark=jnp.full_like(state.f, jnp.inf))
    _, state, here = jax.lax.while_loop(cond, body, (first_iter - 1, start, placeholder))
    gradient_norm = jnp.linalg.norm(here.g)  # here: the linearisation at state.z
    return state._replace(gradient_norm=jnp.where(jnp.isfinite(gradient_norm), gradient_norm, jnp.inf))


class Status(enum.IntEnum):
    """How a start's last ``lm_run`` ended: ``CONVERGED`` (its last fifth of iterations lowered f by at most
    CONVERGED_RTOL), ``STALLED`` (STALL_LIMIT steps in a row found no decrease worth having: a minimum to the
    precision of f), ``ITERATION_LIMIT`` (still lowering f when its iterations ran out) or ``NON_FINITE`` (f not
    finite: every step from this start failed). The first two are converged."""

    CONVERGED = 0
    STALLED = 1
    ITERATION_LIMIT = 2
    NON_FINITE = 3

    @property
    def label(self) -> str:
        """The status as text: ``"converged"``, ``"stalled"``, ``"iteration limit"``, ``"non-finite"``."""
        return self.name.lower().replace("_", " ").replace("non finite", "non-finite")

    @property
    def converged(self) -> bool:
        return self in CONVERGED

    @classmethod
    def from_label(cls, label: str) -> Status:
        for status in cls:
            if status.label == label:
                return status
        raise MixlawError(f"unknown status {label!r}; expected one of {[s.label for s in cls]}")


#: The statuses that count as converged.
CONVERGED = (Status.CONVERGED, Status.STALLED)


def status_from_converged(converged) -> np.ndarray:
    """Status codes (int8) from the ``converged`` flags that result files held before the status existed: CONVERGED
    where the flag is set, ITERATION_LIMIT elsewhere."""
    return np.where(np.asarray(converged, dtype=bool), Status.CONVERGED, Status.ITERATION_LIMIT).astype(np.int8)


def status(state: SolverState) -> np.ndarray:
    """:class:`Status` codes (int8, the shape of ``state.f``) of states returned by ``lm_run`` (host arrays)."""
    f, stall, f_mark = (np.asarray(a) for a in (state.f, state.stall, state.f_mark))
    with np.errstate(invalid="ignore"):  # a failed start's inf - inf
        flat = f_mark - f <= CONVERGED_RTOL * np.abs(f)
    codes = np.select(
        [~np.isfinite(f), stall >= STALL_LIMIT, flat],
        [Status.NON_FINITE, Status.STALLED, Status.CONVERGED],
        Status.ITERATION_LIMIT,
    )
    return codes.astype(np.int8)
