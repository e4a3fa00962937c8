"""The batched engine: every target (and bootstrap replicate) is a *problem*; every problem gets many starts.

One fit is

1. **screen** — ``n_starts`` random points from the law's init box are scored on every problem with
   one vmapped objective evaluation (predictions are shared by all problems and computed in chunks of
   ``chunk_size`` starts, so memory stays bounded); the best ``schedule[0][0]`` per problem go on;
2. **refine by successive halving** — for each ``(keep, n_iter, row_fraction)`` in ``schedule`` the
   best ``keep`` starts of each problem run ``n_iter`` Levenberg-Marquardt IRLS iterations
   (``solvers``), all problems x starts in one vmapped, jitted call. Early stages may use a fixed
   random fraction of the rows (multi-fidelity): the basins are much the same, each iteration is
   cheaper, so more starts can be explored for the same time; screening uses the first stage's rows;
3. **keep the best** start per problem, with diagnostics.

No Python loop runs over targets, replicates or starts: the loops are over stages and chunks only.
Compiled programs depend on (law, k, rows, problems, starts), never on the data values, so repeated
fits of the same shapes reuse them.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..laws import Inputs
from ..objective import huber, observed, prediction
from . import solvers
from .space import ParamSpace

#: (starts kept, Levenberg-Marquardt iterations, fraction of rows used) per successive-halving stage.
DEFAULT_SCHEDULE: tuple[tuple[int, int, float], ...] = ((1024, 30, 0.25), (256, 60, 0.25), (64, 100, 1.0),
                                                        (16, 300, 1.0))
#: A row subset keeps at least this many rows per parameter (or all rows).
MIN_ROWS_PER_PARAM = 10
#: A start is "in the best basin" when its objective is within this relative distance of the best.
BASIN_RTOL = 1e-6
#: Default memory budget (bytes) for one batched Levenberg-Marquardt call.
DEFAULT_MEMORY = 2e9


#: B fitting problems on the same rows: ``solvers.Rows`` with a leading batch axis (y (B, n), w (B, n), c (B,)).
Problems = solvers.Rows


@dataclasses.dataclass(frozen=True)
class Solution:
    """Best start per problem, with diagnostics (every array has leading axis B)."""

    z: np.ndarray               # (B, P) fitted coordinates
    objective: np.ndarray       # (B,)
    gradient_norm: np.ndarray   # (B,)
    n_in_basin: np.ndarray      # (B,) final-stage starts within BASIN_RTOL of the best
    n_final: int                # starts in the final stage
    n_failed: np.ndarray        # (B,) screened starts whose objective was not finite
    iterations: np.ndarray      # (B,) iteration of the best start's last improving step
    converged: np.ndarray       # (B,) the best start met the solver's convergence test (solvers.converged)


def make_problems(y: np.ndarray, w: np.ndarray, loss_space: str, reduction: str) -> Problems:
    """Problems from observed losses y (B, n), NaN for missing cells, and row weights w (B, n)."""
    finite = np.isfinite(y)
    w = np.where(finite, w, 0.0)
    y_obs = np.asarray(observed(jnp.asarray(np.where(finite, y, 1.0)), loss_space))
    total = w.sum(axis=1)
    c = 1.0 / total if reduction == "mean" else np.ones(len(y))
    return Problems(jnp.asarray(np.where(w > 0, y_obs, 0.0)), jnp.asarray(w, dtype=jnp.float64), jnp.asarray(c))


def _model(space: ParamSpace, x: Inputs) -> Callable[[jax.Array], jax.Array]:
    return lambda z: prediction(space.law, space.law_params(z), x, space.loss_space)


def _model_and_jacobian(space: ParamSpace, x: Inputs):
    """z -> (predictions (n,), Jacobian (n, P)), by reverse mode one row at a time.

    Laws are row-wise, so each row's prediction is a scalar function of z whose gradient costs a few
    forward passes; vmapped over rows this is ~5x faster than forward mode over P tangents
    (benchmarks/NOTES.md).
    """
    def row(z, x_row):
        one = jax.tree.map(lambda a: a[None], x_row)
        return prediction(space.law, space.law_params(z), one, space.loss_space)[0]

    row_value_and_grad = jax.vmap(jax.value_and_grad(row), in_axes=(None, 0))
    return lambda z: row_value_and_grad(z, x)


@partial(jax.jit, static_argnames=("delta",))
def _score_chunk(space: ParamSpace, x: Inputs, problems: Problems, z_chunk: jax.Array,
                 delta: float) -> tuple[jax.Array, jax.Array]:
    """Objective of every start in the chunk on every problem, (B, c), and the starts (B, c, P).

    Predictions are computed once per start and shared by all problems. In raw space the offset E is
    profiled: each start is scored, and kept, with E moved by the weighted mean residual, so that
    screening ranks the *shape* of a start rather than its level.
    """
    pred = jax.vmap(_model(space, x))(z_chunk)                              # (c, n)
    used = problems.w[:, None, :] > 0
    r = jnp.where(used, problems.y[:, None, :] - pred[None], 0.0)           # (B, c, n)
    z = jnp.broadcast_to(z_chunk, (problems.y.shape[0],) + z_chunk.shape)
    if space.offset_index is not None and space.loss_space == "raw":
        shift = jnp.sum(problems.w[:, None, :] * r, axis=-1) / jnp.sum(problems.w, axis=-1)[:, None]
        shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
        z = space.shift_offset(z, shift)
        r = jnp.where(used, r - (space.to_law(z) - space.to_law(z_chunk))[..., space.offset_index, None], 0.0)
    f = problems.c[:, None] * jnp.sum(problems.w[:, None, :] * huber(r, delta), axis=-1)
    return jnp.where(jnp.isfinite(f), f, jnp.inf), z


def screen_chunk_size(n_problems: int, n_rows: int, chunk_size: int, memory_bytes: float) -> int:
    """Starts scored at once: at most ``chunk_size``, and few enough that the (problems, starts, rows)
    residual temporaries (~4 float64 arrays) fit in ``memory_bytes``."""
    return int(max(1, min(chunk_size, memory_bytes // (32.0 * n_problems * n_rows))))


def screen(space: ParamSpace, x: Inputs, problems: Problems, starts: jax.Array, keep: int, delta: float,
           chunk_size: int) -> tuple[jax.Array, np.ndarray]:
    """Score every start on every problem, ``chunk_size`` starts at a time; keep the best ``keep`` per problem.

    Returns (z (B, keep, P), count of non-finite starts per problem (B,)).
    """
    best_f = best_z = None
    n_failed = 0
    for lo in range(0, starts.shape[0], chunk_size):
        f, z = _score_chunk(space, x, problems, starts[lo:lo + chunk_size], delta)        # (B, c), (B, c, P)
        n_failed = n_failed + np.asarray(jnp.sum(~jnp.isfinite(f), axis=1))
        if best_f is not None:
            f = jnp.concatenate([best_f, f], axis=1)
            z = jnp.concatenate([best_z, z], axis=1)
        order = jnp.argsort(f, axis=1)[:, :keep]
        best_f = jnp.take_along_axis(f, order, axis=1)
        best_z = jnp.take_along_axis(z, order[..., None], axis=1)
    return best_z, n_failed


def _take(states, order):
    return jax.tree.map(lambda a: jnp.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1),
                        states)


@partial(jax.jit, static_argnames=("delta",))
def _init_states(space: ParamSpace, x: Inputs, problems: Problems, z: jax.Array, delta: float):
    model = _model(space, x)
    per_problem = jax.vmap(lambda rows, zs: jax.vmap(lambda z0: solvers.init_state(model, rows, delta, z0))(zs))
    return per_problem(problems, z)


@partial(jax.jit, static_argnames=("delta", "batch_size"))
def _lm_stage(space: ParamSpace, x: Inputs, problems: Problems, states: solvers.SolverState, first_iter,
              delta: float, n_iter: int, batch_size: int) -> solvers.SolverState:
    """``n_iter`` LM iterations for every (problem, start), ``batch_size`` of them vmapped at a time."""
    model, model_jac = _model(space, x), _model_and_jacobian(space, x)
    n_problems, n_starts = states.f.shape

    def one(item):
        b, state = item
        rows = solvers.Rows(problems.y[b], problems.w[b], problems.c[b])
        return solvers.lm_run(model, model_jac, rows, delta, state, first_iter, n_iter)

    flat = jax.tree.map(lambda a: a.reshape((n_problems * n_starts,) + a.shape[2:]), states)
    owner = jnp.repeat(jnp.arange(n_problems), n_starts)
    out = jax.lax.map(one, (owner, flat), batch_size=min(batch_size, n_problems * n_starts))
    return jax.tree.map(lambda a: a.reshape((n_problems, n_starts) + a.shape[1:]), out)


def lm_batch_size(n_rows: int, n_params: int, k: int, memory_bytes: float) -> int:
    """(problem, start) pairs refined at once so that Jacobian-sized temporaries fit in ``memory_bytes``."""
    per_item = 8.0 * n_rows * n_params * (k + 8)
    return int(max(1, min(4096, memory_bytes // per_item)))


@partial(jax.jit, static_argnames=("delta",))
def _gradient_norms(space: ParamSpace, x: Inputs, problems: Problems, z: jax.Array, delta: float) -> jax.Array:
    model = _model(space, x)
    return jax.vmap(lambda rows, zb: solvers.gradient_norm(model, rows, delta, zb))(problems, z)


def row_subset(n_rows: int, fraction: float, n_params: int, key: jax.Array) -> np.ndarray | None:
    """Sorted random row indices for a coarse stage, or None when the stage uses every row.

    A table too small for the fraction to keep ``MIN_ROWS_PER_PARAM`` rows per parameter is not subsampled.
    """
    size = int(round(fraction * n_rows))
    if size >= n_rows or size < MIN_ROWS_PER_PARAM * n_params:
        return None
    return np.sort(np.asarray(jax.random.choice(key, n_rows, (size,), replace=False)))


def solve(space: ParamSpace, x: Inputs, problems: Problems, *, key: jax.Array, n_starts: int,
          schedule: Sequence[tuple] = DEFAULT_SCHEDULE, delta: float = 1e-3, chunk_size: int = 2048,
          warm_starts: jax.Array | None = None, memory_bytes: float = DEFAULT_MEMORY, progress=None) -> Solution:
    """Minimise the Huber objective of every problem from many starts (see module docstring).

    Args:
      space: the law's coordinate layout.
      x: row inputs shared by all problems.
      problems: B problems (targets x replicates).
      key: PRNG key for the random starts and row subsets.
      n_starts: random starts screened per problem (shared by all problems).
      schedule: successive-halving stages ``(keep, n_iter)`` or ``(keep, n_iter, row_fraction)``.
      warm_starts: optional (B, W, P) starts added to each problem's screened set (the bootstrap passes
        the full-data optimum here).
      memory_bytes: budget for the temporaries of one batched call; screened starts and (problem, start)
        pairs are processed in chunks that fit it, so memory stays bounded however many problems and starts.
      progress: optional callable ``progress(stage_index, n_stages)``.
    """
    stages = [(int(s[0]), int(s[1]), float(s[2]) if len(s) > 2 else 1.0) for s in schedule]
    key_starts, key_rows = jax.random.split(key)
    n_rows = problems.y.shape[1]
    subsets = {}
    for _, _, fraction in stages:
        if fraction not in subsets:
            subsets[fraction] = row_subset(n_rows, fraction, space.size, jax.random.fold_in(key_rows, len(subsets)))

    def data(fraction):
        rows = subsets[fraction]
        if rows is None:
            return x, problems
        # the normaliser c stays the full table's: a coarse objective only has to rank starts
        return jax.tree.map(lambda a: a[rows], x), Problems(problems.y[:, rows], problems.w[:, rows], problems.c)

    def rescore(states, x_rows, problems_rows):
        """The same points scored on other rows, keeping each start's iteration record."""
        fresh = _init_states(space, x_rows, problems_rows, states.z, delta)
        return fresh._replace(last_improved=states.last_improved)

    first_keep = stages[0][0]
    n_warm = 0 if warm_starts is None else warm_starts.shape[1]
    n_random = max(first_keep - n_warm, 0)
    x_stage, problems_stage = data(stages[0][2])
    if n_starts > 0 and n_random > 0:
        starts = space.sample(key_starts, max(n_starts, n_random), float(jnp.mean(x.log_n)),
                              float(jnp.mean(x.log_d)))
        chunk = screen_chunk_size(problems.y.shape[0], problems_stage.y.shape[1], chunk_size, memory_bytes)
        z0, n_failed = screen(space, x_stage, problems_stage, starts, n_random, delta, chunk)
    else:
        z0 = jnp.zeros((problems.y.shape[0], 0, space.size))
        n_failed = np.zeros(problems.y.shape[0], dtype=int)
    if warm_starts is not None:
        z0 = jnp.concatenate([jnp.asarray(warm_starts, z0.dtype), z0], axis=1)
    states = _init_states(space, x_stage, problems_stage, z0, delta)
    first_iter = 0
    current = stages[0][2]
    for i, (keep, n_iter, fraction) in enumerate(stages):
        if fraction != current:
            x_stage, problems_stage = data(fraction)
            states = rescore(states, x_stage, problems_stage)
            current = fraction
        states = _take(states, jnp.argsort(states.f, axis=1)[:, :keep])
        batch = lm_batch_size(problems_stage.y.shape[1], space.size, space.k, memory_bytes)
        states = _lm_stage(space, x_stage, problems_stage, states, jnp.asarray(first_iter), delta,
                           jnp.asarray(n_iter), batch)
        states.f.block_until_ready()
        first_iter += n_iter
        if progress is not None:
            progress(i + 1, len(stages))
    converged = solvers.converged(states)
    if current != 1.0 and subsets[current] is not None:
        states = rescore(states, x, problems)
    order = jnp.argsort(states.f, axis=1)
    states, converged = _take(states, order), jnp.take_along_axis(converged, order, axis=1)
    best_z = states.z[:, 0]
    f = np.asarray(states.f)
    best = f[:, :1]
    in_basin = np.sum(f <= best + BASIN_RTOL * np.abs(best), axis=1)
    return Solution(z=np.asarray(best_z), objective=f[:, 0],
                    gradient_norm=np.asarray(_gradient_norms(space, x, problems, best_z, delta)),
                    n_in_basin=in_basin, n_final=f.shape[1], n_failed=np.asarray(n_failed),
                    iterations=np.asarray(states.last_improved[:, 0]),
                    converged=np.asarray(converged[:, 0]))
