"""The batched engine: every target (and bootstrap replicate) is a *problem*; every problem gets many starts.

One fit is

1. **screen** — ``n_starts`` random points from the law's init box are scored on every problem with
   one vmapped objective evaluation, in chunks of ``chunk_size`` starts so that memory stays bounded. In
   raw space each start is first moved, per problem, to the least-squares values of the law's linear
   parameters (the offset E and each term's level, ``_profiled``), so the screen ranks shapes rather than
   random levels; the best ``schedule[0][0]`` per problem go on;
2. **refine by successive halving** — for each ``(keep, n_iter, row_fraction)`` in ``schedule`` the
   best ``keep`` starts of each problem run ``n_iter`` Levenberg-Marquardt IRLS iterations
   (``solvers``), all problems x starts in one vmapped, jitted call. Early stages may use a fixed
   random fraction of the rows (multi-fidelity): the basins are much the same, each iteration is
   cheaper, so more starts can be explored for the same time; screening uses the first stage's rows (at most
   ``SCREEN_ROWS`` or so of them: ``screen_subset``);
3. **confirm** — a problem's best point counts as found when several final starts agree on it
   (``options.Confirmation``); an unconfirmed problem gets extra rounds (its final starts run further, then fresh
   searches whose final starts join them), all unconfirmed problems batched, until confirmed or the rounds run out;
4. **keep the best** start per problem, with diagnostics (its gradient norm comes from the last linearisation).

Scoring a stage's starts, refining them and the final gradient norms are all the one LM program of the stage's
rows (``solvers.lm_run`` with 0 iterations only evaluates), so a fit compiles one program per row layout.

No Python loop runs over targets, replicates or starts: the loops are over stages, rounds and chunks only.
Compiled programs depend on (law, k, rows, problems, starts), never on the data values, so repeated
fits of the same shapes reuse them. Their row counts are padded up to a few *row buckets* with weight-0 rows
(``row_bucket``, ``pad_rows``), so that a table of another size within the bucket reuses them too (from JAX's
on-disk cache in a fresh process, ``compile_cache``).

**Devices and memory** (``devices`` module). On several devices the batch axis of each heavy call is split
over a 1-D mesh: the starts of a screening chunk, and the flattened (problem, start) pairs of the LM program
(padded to a multiple of the device count). Each call's temporaries
are bounded by a per-device budget, taken from the device's free memory where it reports it: screening scores
as many starts (and, for very many problems, as few problems) at a time as fit, keeping only the running best
``keep`` per problem; the per-pair work runs in equal blocks of pairs that fit. On one CPU device those blocks run
from ``CPU_THREADS`` threads: XLA runs one program's loop on one core.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from ..compile_cache import before_solve
from ..laws import Inputs
from ..objective import huber_objective, observed, prediction
from ..options import Resources, Search
from . import grouped, solvers
from .devices import AXIS, Placement, fetch, pad_leading
from .space import ParamSpace

#: A row subset keeps at least this many rows per parameter (or all rows).
MIN_ROWS_PER_PARAM = 10
#: Screening splits the problems into blocks rather than score fewer starts than this at a time.
MIN_SCREEN_STARTS = 64
#: The screen scores at most max(SCREEN_ROWS, SCREEN_ROWS_PER_PARAM x P) rows (a random subset of the first stage's
#: rows where there are more): it only ranks random starts, and a law evaluation costs the same per row whatever the
#: table. Joint law, k = 64, 3072 rows: the screen took 62 of the fit's 225 s on every row (benchmarks/NOTES.md,
#: session 24). Every real table in ../shared/data screens all its rows under the default search.
SCREEN_ROWS = 1024
SCREEN_ROWS_PER_PARAM = 4
#: Pairs refined at once on a CPU device: as few as CPU_LM_BATCH[0], since a vmapped LM run lasts as long as its
#: slowest start and small blocks keep both threads busy, but enough that a block holds CPU_BLOCK_WORK rows x
#: coordinates, so that small problems amortise each call, and at most CPU_LM_BATCH[1] (temporaries in cache). The
#: measurements behind both numbers are in benchmarks/NOTES.md (sessions 7 and 10). Accelerators take the largest
#: batch that fits their memory.
CPU_LM_BATCH = (2, 16)
CPU_BLOCK_WORK = 65536
#: From this many parameters a CPU block is one pair, run without vmap, so that its LM linearises only the trial
#: points it accepts (``_map_pairs``'s ``lazy``; 31-45% of the steps are rejected at k = 64). Same objectives, warm fits
#: (1024 starts, 64 x 30 and 8 x 100 iterations) joint k = 64 / 32 / 16 11.5 / 3.0 / 0.4 s -> 7.9 / 2.3 / 0.3 s,
#: additive k = 64 / 32 3.5 / 0.5 s -> 1.7 / 0.4 s; below, SlimPajama's 8 targets (P = 19 and 33, batched blocks of up
#: to 16 pairs) are mixed: additive 2.2 -> 2.8 s, joint 3.0 -> 2.8 s (benchmarks/NOTES.md, session 24).
LAZY_FROM_PARAMS = 64
#: Threads that run the per-pair blocks of a one-device CPU fit: XLA runs one program's loop on one core, and
#: programs run from different threads run at once (measured in benchmarks/NOTES.md, session 9).
CPU_THREADS = max(1, min(2, os.cpu_count() or 1))
#: Bytes of screening temporaries per (problem, start, row): ~12 float64 arrays (residuals, Huber terms, the
#: weighted design of the offset and the term levels).
SCREEN_BYTES_PER_ROW = 8 * 12


#: Significant bits of a *row bucket* (``row_bucket``): every program's row count is padded up to a number
#: m 2^e with 2^(b-1) <= m < 2^b, so that tables of nearby sizes share their compiled programs (issue 25; 4 bits:
#: eight buckets per doubling, at most 12.5% padding, benchmarks/NOTES.md session 17). None: no padding.
ROW_BUCKET_BITS: int | None = 4
#: Whether the LM programs see the problems padded to a power of two (``pad_problems``): a pair reads only the
#: problem it names, so the padding costs no work, and fits of 3 and of 4 targets (or bootstraps of 100 and 120
#: replicates) share their programs. The screen scores every problem it is given, so it is not padded.
PROBLEM_BUCKETS = True


#: B fitting problems on the same rows: ``solvers.Rows`` with a leading batch axis (y (B, n), w (B, n), c (B,)).
Problems = solvers.Rows


@dataclasses.dataclass(frozen=True)
class Solution:
    """Best start per problem, with diagnostics (every array has leading axis B)."""

    z: np.ndarray  # (B, P) search coordinates z of the best start
    objective: np.ndarray  # (B,)
    gradient_norm: np.ndarray  # (B,)
    n_in_basin: np.ndarray  # (B,) final starts within the confirmation rule's rtol of the best (Search.confirm)
    n_final: int  # starts in the final stage
    n_failed: np.ndarray  # (B,) screened starts whose objective was not finite
    iterations: np.ndarray  # (B,) iteration of the best start's last improving step
    status: np.ndarray  # (B,) how the best start's last run ended: solvers.Status codes
    confirmed: np.ndarray  # (B,) whether n_in_basin reached the confirmation rule's count (Search.confirm)
    rounds: np.ndarray  # (B,) extra rounds of search the problem took to confirm (or until the budget ran out)


def make_problems(y: np.ndarray, w: np.ndarray, loss_space: str, reduction: str) -> Problems:
    """Problems from observed losses y (B, n), NaN for missing cells, and row weights w (B, n)."""
    finite = np.isfinite(y)
    w = np.where(finite, w, 0.0)
    y_obs = observed(np.where(finite, y, 1.0), loss_space)
    total = w.sum(axis=1)
    c = 1.0 / total if reduction == "mean" else np.ones(len(y))
    return Problems(*(jax.device_put(np.asarray(a, np.float64)) for a in (np.where(w > 0, y_obs, 0.0), w, c)))


def row_bucket(n: int) -> int:
    """The row count a program of n rows runs at: the least m 2^e >= n with m < 2^b (b = ``ROW_BUCKET_BITS``), e.g.
    ..., 224, 240, 256, 288, 320, ... for b = 4; n itself below 2^b or without buckets. Padding is under
    2^(1-b) n."""
    if ROW_BUCKET_BITS is None:
        return n
    step = 1 << max(0, int(n).bit_length() - ROW_BUCKET_BITS)
    return -(-n // step) * step


def pad_rows(x: Inputs, problems: Problems, group_size: int | None = None) -> tuple[Inputs, Problems]:
    """x and problems with their rows padded up to a row bucket (``row_bucket``; in whole groups of ``group_size``
    rows, ``grouped``, whose count is bucketed): the padding rows are copies of the first row (group) with y = 0
    and weight 0, so that no objective, step or gradient sees them (``huber_objective``, ``solvers.linearise`` and
    ``grouped.linearise`` leave weight-0 rows and groups out), and the programs compiled for one table serve every
    table of its bucket. Whatever is computed from the data itself (row subsets, start sampling, mixture groups,
    the normaliser c) is computed before, on the real rows only."""
    size = group_size or 1
    groups = problems.y.shape[1] // size
    extra = (row_bucket(groups) - groups) * size
    if extra == 0:
        return x, problems
    index = np.concatenate([np.arange(groups * size), np.tile(np.arange(size), extra // size)])

    def zeros_after(a):
        return jax.device_put(np.pad(np.asarray(a), ((0, 0), (0, extra))))

    return (
        jax.tree.map(lambda a: jax.device_put(np.asarray(a)[index]), x),
        Problems(zeros_after(problems.y), zeros_after(problems.w), problems.c),
    )


def pad_problems(problems: Problems) -> Problems:
    """B problems padded to the next power of two (``PROBLEM_BUCKETS``) with empty ones (y = w = 0, c = 1), which
    no (problem, start) pair names, so that one LM program serves every problem count of its bucket."""
    n = problems.y.shape[0]
    extra = (1 << (n - 1).bit_length()) - n if PROBLEM_BUCKETS else 0
    if extra == 0:
        return problems

    def pad(a, value):
        a = np.asarray(a)
        return jax.device_put(np.concatenate([a, np.full((extra,) + a.shape[1:], value, a.dtype)]))

    return Problems(pad(problems.y, 0.0), pad(problems.w, 0.0), pad(problems.c, 1.0))


def model(space: ParamSpace, x: Inputs) -> Callable[[jax.Array], jax.Array]:
    return lambda z: prediction(space.law, space.law_coordinates(z), x, space.loss_space)


def model_and_jacobian(space: ParamSpace, x: Inputs):
    """z -> (predictions (n,), Jacobian (n, P)), by reverse mode one row at a time.

    Laws are row-wise, so each row's prediction is a scalar function of z whose gradient costs a few
    forward passes; vmapped over rows this is ~5x faster than forward mode over P tangents
    (benchmarks/NOTES.md).
    """

    def row(z, x_row):
        one = jax.tree.map(lambda a: a[None], x_row)
        return prediction(space.law, space.law_coordinates(z), one, space.loss_space)[0]

    row_value_and_grad = jax.vmap(jax.value_and_grad(row), in_axes=(None, 0))
    return lambda z: row_value_and_grad(z, x)


def _profiled(space: ParamSpace, x: Inputs, problems: Problems, z_chunk: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Every start of the chunk with its linear parameters fitted to every problem: (z (B, c, P), residuals (B, c, n)).

    A law L = E + sum_m T_m is linear in its offset E and in the level s_m of each term that has one
    (``Law.term_scales``). For each start and problem, weighted least squares gives (e, s) minimising

        sum_j w_j (y_j - (E + e) - sum_m s_m T_mj)^2,

    and the start moves there: E by e (kept within its bounds) and each term's level coordinates by
    sign * log s_m. Screening then ranks a start by its shape (exponents, mixture weights) rather than by its
    random levels. A level that comes out non-positive or non-finite stays at s_m = 1, and e is then the
    weighted mean of what remains; residuals are always those of the point returned.
    """
    offset, log_terms = jax.vmap(lambda z: space.law.terms(space.law_coordinates(z), x))(z_chunk)  # (c, n), (c, M, n)
    levelled = [m for m, scale in enumerate(space.term_scales) if scale is not None]
    terms = jnp.exp(log_terms)
    fixed = offset + jnp.sum(jnp.delete(terms, np.array(levelled, int), axis=1), axis=1)  # (c, n)
    basis = terms[:, levelled]  # (c, m, n)
    w = problems.w[:, None, :]
    target = jnp.where(w > 0, problems.y[:, None, :] - fixed[None], 0.0)  # (B, c, n)
    if levelled:
        design = jnp.concatenate([jnp.ones_like(basis[:, :1]), basis], axis=1)  # (c, m + 1, n)
        gram = jnp.einsum("bn,ckn,cln->bckl", problems.w, design, design)
        rhs = jnp.einsum("bn,ckn,bcn->bck", problems.w, design, target)
        ridge = (
            1e-12 * jnp.eye(design.shape[1]) * jnp.maximum(jnp.diagonal(gram, axis1=-2, axis2=-1), 1e-300)[..., None]
        )
        level = jax.vmap(jax.vmap(solvers.spd_solve))(gram + ridge, rhs)[..., 1:]  # (B, c, m)
        level = jnp.where(jnp.isfinite(level) & (level > 0), level, 1.0)
        target = target - jnp.einsum("bcm,cmn->bcn", level, basis)
        log_s = jnp.zeros(level.shape[:2] + (log_terms.shape[1],)).at[..., np.array(levelled)].set(jnp.log(level))
        z = space.scale_terms(jnp.broadcast_to(z_chunk, log_s.shape[:2] + z_chunk.shape[-1:]), log_s)
    else:
        z = jnp.broadcast_to(z_chunk, (problems.y.shape[0],) + z_chunk.shape)
    shift = jnp.sum(w * target, axis=-1) / jnp.sum(problems.w, axis=-1)[:, None]
    moved = space.shift_offset(z, jnp.where(jnp.isfinite(shift), shift, 0.0))
    applied = (space.to_law(moved) - space.to_law(z))[..., space.offset_index]
    return moved, target - applied[..., None]


def score(
    space: ParamSpace, x: Inputs, problems: Problems, z_chunk: jax.Array, delta: float
) -> tuple[jax.Array, jax.Array]:
    """Objective of every start in the chunk on every problem, (B, c), and the starts (B, c, P).

    In raw space the linear parameters are profiled (``_profiled``), so a start is scored, and kept, at its best
    offset and term levels for each problem; otherwise predictions are computed once per start and shared by all
    problems.
    """
    if space.offset_index is not None and space.loss_space == "raw":
        z, r = _profiled(space, x, problems, z_chunk)
    else:
        pred = jax.vmap(model(space, x))(z_chunk)  # (c, n)
        z = jnp.broadcast_to(z_chunk, (problems.y.shape[0],) + z_chunk.shape)
        r = problems.y[:, None, :] - pred[None]
    return huber_objective(r, problems.w[:, None, :], problems.c[:, None], delta), z


score_chunk = jax.jit(score, static_argnames=("delta",))


@lru_cache(maxsize=64)
def sharded_score(mesh, delta: float):
    """``_score`` with the chunk's starts split over ``mesh``; outputs split the same way."""
    split = PartitionSpec(None, AXIS)
    scored = jax.shard_map(
        partial(score, delta=delta),
        mesh=mesh,
        out_specs=(split, split),
        in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec(), PartitionSpec(AXIS)),
    )
    return jax.jit(scored)


def _scorer(placement: Placement, space: ParamSpace, x: Inputs, problems: Problems, delta: float):
    """z_chunk (c, P) -> ``_score`` of the chunk on ``problems``, on the placement's devices."""
    if placement.mesh is None:
        return lambda z_chunk: score_chunk(space, x, problems, z_chunk, delta)
    scored = sharded_score(placement.mesh, delta)
    shared = placement.put((space, x, problems), PartitionSpec())

    def run(z_chunk):
        c = z_chunk.shape[0]
        padded = placement.put(pad_leading(z_chunk, placement.padded(c)), PartitionSpec(AXIS))
        f, z = fetch(scored(*shared, padded))
        return f[:, :c], z[:, :c]

    return run


def screen_sizes(n_problems: int, n_rows: int, chunk_size: int, memory_bytes: float) -> tuple[int, int]:
    """(problems, starts) scored at once per device: at most ``chunk_size`` starts, and few enough that the
    (problems, starts, rows) temporaries (``SCREEN_BYTES_PER_ROW``) fit in ``memory_bytes``. The problems are
    split into blocks only where not even ``MIN_SCREEN_STARTS`` starts of all of them fit."""
    per_pair = float(SCREEN_BYTES_PER_ROW * n_rows)
    starts = int(max(1, min(chunk_size, memory_bytes // (per_pair * n_problems))))
    floor = min(chunk_size, MIN_SCREEN_STARTS)
    if starts >= floor:
        return n_problems, starts
    return int(max(1, min(n_problems, memory_bytes // (per_pair * floor)))), floor


def screen(
    space: ParamSpace,
    x: Inputs,
    problems: Problems,
    starts: jax.Array,
    keep: int,
    delta: float,
    chunk_size: int,
    placement: Placement,
) -> tuple[np.ndarray, np.ndarray]:
    """Score every start on every problem in memory-sized chunks; keep the best ``keep`` per problem.

    Returns host arrays (z (B, keep, P), count of non-finite starts per problem (B,)).
    """
    n_problems, n_rows = problems.y.shape
    block, per_device = screen_sizes(n_problems, n_rows, chunk_size, placement.memory_bytes)
    chunk = per_device * placement.n_devices
    starts = np.asarray(starts)  # chunks sliced on the host: an eager slice of a device array compiles per chunk
    kept, failed = [], []
    for first in range(0, n_problems, block):
        score = _scorer(placement, space, x, jax.tree.map(lambda a: a[first : first + block], problems), delta)
        best_f = best_z = None
        n_failed = 0
        for lo in range(0, starts.shape[0], chunk):
            f, z = (np.asarray(a) for a in score(starts[lo : lo + chunk]))  # (b, c), (b, c, P)
            n_failed = n_failed + np.sum(~np.isfinite(f), axis=1)
            if best_f is not None:
                f, z = np.concatenate([best_f, f], axis=1), np.concatenate([best_z, z], axis=1)
            order = _best_first(f)[:, :keep]
            best_f, best_z = np.take_along_axis(f, order, axis=1), np.take_along_axis(z, order[..., None], axis=1)
        kept.append(best_z)
        failed.append(n_failed)
    return np.concatenate(kept), np.concatenate(failed)


def _take(states, order):
    """Host arrays (B, S, ...) reordered along S by ``order`` (B, S')."""
    return jax.tree.map(
        lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1), states
    )


def _best_first(f: np.ndarray) -> np.ndarray:
    """Order of each problem's starts by objective, ties in start order (host numpy: no per-shape compilation)."""
    return np.argsort(f, axis=1, kind="stable")


def _map_pairs(
    space: ParamSpace,
    x: Inputs,
    problems: Problems,
    owner: jax.Array,
    states: solvers.SolverState,
    first_iter,
    n_iter,
    delta: float,
    group_size: int | None = None,
    solve: solvers.Solve = solvers.spd_solve,
    lazy: bool = False,
):
    """``n_iter`` LM iterations (``solvers.lm_run``; 0: only evaluate f and the gradient norm) on each (problem
    ``owner[i]``, ``states[i]``) pair, vmapped. LM linearises row by row, or by mixture groups of ``group_size`` rows
    (``grouped``; rows laid out so), and solves its steps with ``solve``. ``lazy``: the block is one pair, run
    without ``vmap``, linearising accepted trial points only (``solvers.lm_step``'s ``value``)."""
    model_jac = model_and_jacobian(space, x)

    def one(b, state):
        rows = solvers.Rows(problems.y[b], problems.w[b], problems.c[b])
        if group_size is None:
            lin = partial(solvers.linearise, model_jac, rows, delta)
        else:
            lin = grouped.linearise(space, x, group_size, rows, delta)
        if not lazy:
            value = None
        elif group_size is None:
            value = partial(solvers.objective, model(space, x), rows, delta)
        else:
            value = grouped.objective(space, x, group_size, rows, delta)
        return solvers.lm_run(lin, state, first_iter, n_iter, solve, value)

    if lazy:
        return jax.tree.map(lambda a: a[None], one(owner[0], jax.tree.map(lambda a: a[0], states)))
    return jax.vmap(one)(owner, states)


_map_pairs_jit = jax.jit(_map_pairs, static_argnames=("delta", "group_size", "solve", "lazy"))


@lru_cache(maxsize=64)
def sharded_map_pairs(mesh, delta: float, group_size: int | None, solve: solvers.Solve):
    """``_map_pairs`` with the pairs split over ``mesh``; outputs split the same way."""
    rep, split = PartitionSpec(), PartitionSpec(AXIS)
    mapped = jax.shard_map(
        partial(_map_pairs, delta=delta, group_size=group_size, solve=solve),
        mesh=mesh,
        in_specs=(rep, rep, rep, split, split, rep, rep),
        out_specs=split,
    )
    return jax.jit(mapped)


def _lm_solve(placement: Placement) -> solvers.Solve:
    """The LM step's linear solve: the platform's batched Cholesky, one system per call on a CPU (where batched
    LAPACK calls running at once, from threads or devices, can hang: ``solvers.sequential_cholesky_solve``)."""
    return solvers.sequential_cholesky_solve if placement.platform == "cpu" else solvers.cholesky_solve


@lru_cache(maxsize=1)
def cpu_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(CPU_THREADS, thread_name_prefix="mixlaw-cpu")


def _per_pair(
    placement: Placement,
    space: ParamSpace,
    x: Inputs,
    problems: Problems,
    values,
    *,
    delta: float,
    batch_size: int,
    group_size: int | None = None,
    first_iter=0,
    n_iter=0,
    which: np.ndarray | None = None,
):
    """``_map_pairs`` over every (problem, start) of ``values`` (leading axes (B', S); problem ``which[b]`` of
    ``problems``, default all B in order), flattened and cut into blocks
    of ``batch_size`` pairs per device. Every block has the same shape (the last is padded), so the stages of a fit
    that share rows share one compiled program, whatever their numbers of starts. On one CPU device the blocks after
    the first (which compiles the program) run from ``CPU_THREADS`` threads. Returns host (numpy) arrays."""
    n_problems, n_starts = jax.tree.leaves(values)[0].shape[:2]
    n = n_problems * n_starts
    flat = jax.tree.map(lambda a: np.asarray(a).reshape((n,) + a.shape[2:]), values)
    owner = np.repeat(np.arange(n_problems) if which is None else which, n_starts)
    # a CPU block never shrinks to a stage's few pairs (a second program would cost more to compile than padding
    # costs to run); an accelerator's memory-sized batch does
    per_device = batch_size if placement.platform == "cpu" else min(batch_size, -(-n // placement.n_devices))
    block = per_device * placement.n_devices
    owner, flat = pad_leading((owner, flat), -(-n // block) * block)
    first_iter, n_iter = jax.device_put(first_iter), jax.device_put(n_iter)
    solve = _lm_solve(placement)
    if placement.mesh is None:

        def run(lo):  # the default device is thread-local, and part of the compiled program's cache key
            with jax.default_device(placement.devices[0]):
                out = _map_pairs_jit(
                    space,
                    x,
                    problems,
                    owner[lo : lo + block],
                    jax.tree.map(lambda a: a[lo : lo + block], flat),
                    first_iter,
                    n_iter,
                    delta,
                    group_size,
                    solve,
                    lazy=block == 1 and placement.platform == "cpu",
                )
            return jax.tree.map(np.asarray, out)
    else:
        mapped = sharded_map_pairs(placement.mesh, delta, group_size, solve)
        space, x, problems, first_iter, n_iter = placement.put(
            (space, x, problems, first_iter, n_iter), PartitionSpec()
        )

        def run(lo):
            owner_block, flat_block = placement.put(
                (owner[lo : lo + block], jax.tree.map(lambda a: a[lo : lo + block], flat)), PartitionSpec(AXIS)
            )
            return mapped(space, x, problems, owner_block, flat_block, first_iter, n_iter)

    starts = range(0, len(owner), block)
    if placement.mesh is None and placement.platform == "cpu" and len(starts) > 1:
        blocks = [run(starts[0])] + list(cpu_pool().map(run, starts[1:]))
    else:
        blocks = [run(lo) for lo in starts]
    if placement.mesh is not None:
        blocks = fetch(blocks)
    return jax.tree.map(
        lambda *parts: np.concatenate(parts)[:n].reshape((n_problems, n_starts) + parts[0].shape[1:]), *blocks
    )


def lm_batch_size(n_rows: int, n_params: int, k: int, memory_bytes: float, platform: str = "cpu") -> int:
    """(problem, start) pairs refined at once per device so that Jacobian-sized temporaries fit in
    ``memory_bytes``; on a CPU, CPU_BLOCK_WORK / (rows x coordinates) within ``CPU_LM_BATCH``, or 1 from
    ``LAZY_FROM_PARAMS`` coordinates on."""
    per_item = 8.0 * n_rows * n_params * (k + 8)
    if platform == "cpu" and n_params >= LAZY_FROM_PARAMS:
        wanted = 1
    elif platform == "cpu":
        wanted = min(max(CPU_BLOCK_WORK // (n_rows * n_params), CPU_LM_BATCH[0]), CPU_LM_BATCH[1])
    else:
        wanted = 4096
    return int(max(1, min(wanted, memory_bytes // per_item)))


def row_subset(n_rows: int, fraction: float, n_params: int, key: jax.Array) -> np.ndarray | None:
    """Sorted random row indices for a coarse stage, or None when the stage uses every row.

    A table too small for the fraction to keep ``MIN_ROWS_PER_PARAM`` rows per parameter is not subsampled.
    """
    size = int(round(fraction * n_rows))
    if size >= n_rows or size < MIN_ROWS_PER_PARAM * n_params:
        return None
    return np.sort(np.asarray(_draw_rows(key, n_rows, size)))


def screen_subset(rows: np.ndarray | None, n_rows: int, n_params: int, key: jax.Array) -> np.ndarray | None:
    """The rows the screen scores: ``rows`` (None: all ``n_rows``), or a sorted random subset of them of
    max(``SCREEN_ROWS``, ``SCREEN_ROWS_PER_PARAM`` x ``n_params``) rows where they are more."""
    available = np.arange(n_rows) if rows is None else rows
    size = max(SCREEN_ROWS, SCREEN_ROWS_PER_PARAM * n_params)
    if len(available) <= size:
        return rows
    return np.sort(available[np.asarray(_draw_rows(key, len(available), size))])


@partial(jax.jit, static_argnums=(1, 2))
def _draw_rows(key: jax.Array, n_rows: int, size: int) -> jax.Array:
    return jax.random.choice(key, n_rows, (size,), replace=False)


def solve(
    space: ParamSpace,
    x: Inputs,
    problems: Problems,
    search: Search,
    *,
    delta: float,
    resources: Resources = Resources(),
    key: jax.Array | None = None,
    warm_starts: jax.Array | None = None,
    progress=None,
) -> Solution:
    """Minimise the Huber objective of every problem from many starts, and confirm each best point (see module
    docstring).

    Args:
      space: the law's coordinate layout.
      x: row inputs shared by all problems.
      problems: B problems (targets x replicates).
      search: random starts screened per problem (shared by all problems), the successive-halving stages, the
        starts scored at once per device while screening, and the confirmation rule (``Search.confirm``).
      delta: the Huber threshold of the objective.
      resources: the devices and the per-device memory budget of one batched call (default: every device, a
        budget from the device's free memory, or ``devices.DEFAULT_MEMORY`` where it reports none); screened
        starts and (problem, start) pairs are processed in chunks that fit it, so memory stays bounded however many
        problems and starts. Every process of a multi-process run must make the same call.
      key: PRNG key of the random starts and row subsets (default: from ``search.seed``).
      warm_starts: optional (B, W, P) starts added to each problem's screened set (the bootstrap passes
        the full-data optimum here); extra rounds of confirmation search do not use them, so that their starts
        are independent of the first round's.
      progress: optional callable ``progress(stage_index, n_stages)``.

    The first call in a process switches the on-disk compilation cache on, and a process near its memory-map limit
    drops its compiled programs (:mod:`mixlaw_jax.compile_cache`).
    """
    before_solve()
    placement = Placement.create(resources.devices, resources.memory_bytes)
    key = jax.random.PRNGKey(search.seed) if key is None else key
    where = jax.default_device(placement.devices[0]) if placement.mesh is None else contextlib.nullcontext()
    with where:
        engine = _Engine(space, x, problems, delta, placement)
        everything = np.arange(problems.y.shape[0])
        final, n_failed = engine.schedule(everything, key, search, warm_starts, progress)
        final, rounds = engine.confirm(final, key, search)
    f = np.asarray(final.states.f)
    return Solution(
        z=np.asarray(final.states.z[:, 0]),
        objective=f[:, 0],
        gradient_norm=np.asarray(final.states.gradient_norm[:, 0]),
        n_in_basin=search.confirm.agreeing(f),
        n_final=f.shape[1],
        n_failed=np.asarray(n_failed),
        iterations=np.asarray(final.states.last_improved[:, 0]),
        status=final.status[:, 0],
        confirmed=search.confirm.confirmed(f),
        rounds=rounds,
    )


class _Final(NamedTuple):
    """Each problem's final-stage starts: solver states (host arrays, (B, S)) and their Status codes (B, S)."""

    states: solvers.SolverState
    status: np.ndarray

    def best_first(self, keep: int | None = None) -> _Final:
        """The starts ordered by objective (ties in start order), the best ``keep`` of them (default all)."""
        order = _best_first(np.asarray(self.states.f))[:, :keep]
        return _Final(_take(self.states, order), np.take_along_axis(self.status, order, axis=1))

    def rows(self, which: np.ndarray) -> _Final:
        """The problems ``which``."""
        return jax.tree.map(lambda a: np.asarray(a)[which], self)

    def join(self, other: _Final) -> _Final:
        """Both sets of starts, per problem."""
        return jax.tree.map(lambda a, b: np.concatenate([a, b], axis=1), self, other)

    def update(self, which: np.ndarray, other: _Final) -> _Final:
        """These starts with the problems ``which`` replaced by ``other``'s."""

        def put(a, b):
            a = np.array(a)
            a[which] = b
            return a

        return jax.tree.map(put, self, other)


@dataclasses.dataclass(frozen=True)
class _Engine:
    """The rows, problems and devices of one ``solve`` call, and the searches run on them."""

    space: ParamSpace
    x: Inputs
    problems: Problems
    delta: float
    placement: Placement

    @property
    def n_rows(self) -> int:
        return int(self.problems.y.shape[1])

    def gather(self, rows: np.ndarray, real) -> tuple[Inputs, Problems]:
        """x and problems at ``rows``, the weight of a slot that is not ``real`` set to 0; the normaliser c stays the
        full table's (a coarse objective only has to rank starts). Gathered on the host."""
        x, problems = self.x, self.problems
        return (
            jax.tree.map(lambda a: jax.device_put(np.asarray(a)[rows]), x),
            Problems(
                jax.device_put(np.where(real, np.asarray(problems.y)[:, rows], 0.0)),
                jax.device_put(np.where(real, np.asarray(problems.w)[:, rows], 0.0)),
                problems.c,
            ),
        )

    def screening_rows(self, rows: np.ndarray | None, which: np.ndarray) -> tuple[Inputs, Problems]:
        """The problems ``which`` on ``rows`` (None: all) as they are (screening scores each row once, so mixture
        groups would only pad), padded to a row bucket (``pad_rows``)."""
        x, problems = (self.x, self.problems) if rows is None else self.gather(rows, True)
        return pad_rows(x, jax.tree.map(lambda a: jax.device_put(np.asarray(a)[which]), problems))

    def layout(self, rows: np.ndarray | None) -> tuple[Inputs, Problems, int | None]:
        """``rows`` (None: all), laid out in mixture groups where that pays (``grouped``), and the group size (None:
        row by row); padded to a row bucket (``pad_rows``), the problems to a problem bucket (``pad_problems``)."""
        x, problems, size = self._layout(rows)
        return x, pad_problems(problems), size

    def _layout(self, rows: np.ndarray | None) -> tuple[Inputs, Problems, int | None]:
        law = self.space.law
        h = np.asarray(self.x.h) if law.mixture_features is not None and not law.uses_u else None
        mixtures = None if h is None else h if rows is None else h[rows]
        size = None if mixtures is None else grouped.plan(self.space, mixtures)
        if size is None and rows is None:
            return *pad_rows(self.x, self.problems), None
        rows = np.arange(self.n_rows) if rows is None else rows
        real = True
        if size is not None:
            slots, real = grouped.layout(mixtures, size)
            rows = rows[slots]
        return *pad_rows(*self.gather(rows, real), size), size

    def lm(self, layout, states, which: np.ndarray, first_iter=0, n_iter=0) -> solvers.SolverState:
        """``n_iter`` LM iterations of every state (B', S) of the problems ``which`` on the ``layout``'s rows (0:
        score the points)."""
        x_rows, problems_rows, size = layout
        space, placement = self.space, self.placement
        batch = lm_batch_size(problems_rows.y.shape[1], space.size, space.k, placement.memory_bytes, placement.platform)
        return _per_pair(
            placement,
            space,
            x_rows,
            problems_rows,
            states,
            delta=self.delta,
            batch_size=batch,
            group_size=size,
            first_iter=first_iter,
            n_iter=n_iter,
            which=which,
        )

    def rescore(self, states, layout, which: np.ndarray) -> solvers.SolverState:
        """The same points scored afresh on other rows, keeping each start's iteration record."""
        return self.lm(layout, solvers.start_states(states.z), which)._replace(last_improved=states.last_improved)

    def schedule(
        self, which: np.ndarray, key: jax.Array, search: Search, warm_starts=None, progress=None
    ) -> tuple[_Final, np.ndarray]:
        """Screen and refine the problems ``which`` through ``search``'s stages: their final starts, best first, and
        the number of screened starts that failed (non-finite objective) per problem."""
        space, stages = self.space, search.stages
        key_starts, key_rows = jax.random.split(key)
        subsets = {}
        for _, _, fraction in stages:
            if fraction not in subsets:
                subsets[fraction] = row_subset(
                    self.n_rows, fraction, space.size, jax.random.fold_in(key_rows, len(subsets))
                )
        first_keep = stages[0][0]
        n_warm = 0 if warm_starts is None else warm_starts.shape[1]
        n_random = max(first_keep - n_warm, 0)
        current = stages[0][2]
        layout = self.layout(subsets[current])
        if search.n_starts > 0 and n_random > 0:
            starts = space.sample(
                key_starts,
                max(search.n_starts, n_random),
                float(np.mean(np.asarray(self.x.log_n))),
                float(np.mean(np.asarray(self.x.log_d))),
                search.ties(space.k),
            )
            rows = screen_subset(subsets[current], self.n_rows, space.size, jax.random.fold_in(key_starts, 1))
            x_screen, problems_screen = self.screening_rows(rows, which)
            z0, n_failed = screen(
                space, x_screen, problems_screen, starts, n_random, self.delta, search.chunk_size, self.placement
            )
        else:
            z0 = np.zeros((len(which), 0, space.size))
            n_failed = np.zeros(len(which), dtype=int)
        if warm_starts is not None:
            z0 = np.concatenate([np.asarray(warm_starts, z0.dtype), z0], axis=1)
        states = self.lm(layout, solvers.start_states(z0), which)
        first_iter = 0
        for i, (keep, n_iter, fraction) in enumerate(stages):
            if subsets[fraction] is not subsets[current]:  # fractions that keep every row share the full rows
                layout = self.layout(subsets[fraction])
                states = self.rescore(states, layout, which)
            current = fraction
            states = _take(states, _best_first(states.f)[:, :keep])
            states = self.lm(layout, states, which, first_iter, n_iter)
            first_iter += n_iter
            if progress is not None:
                progress(i + 1, len(stages))
        status = solvers.status(states)
        if subsets[current] is not None:
            states = self.rescore(states, self.layout(None), which)
        return _Final(states, status).best_first(), np.asarray(n_failed)

    def confirm(self, final: _Final, key: jax.Array, search: Search) -> tuple[_Final, np.ndarray]:
        """Search more where a best point is not confirmed (``search.confirm``, :class:`options.Confirmation`).

        Round 1 runs an unconfirmed problem's final starts for another final stage of iterations on all rows (a
        start still descending a valley reaches its floor); each later round first adds a fresh search
        (``schedule`` with a new key, no warm starts, the unconfirmed problems only), whose final starts join the
        problem's own (the best S kept), then runs those further too. All unconfirmed problems are batched; a
        confirmed one stops. Returns the final starts and the rounds each problem took.
        """
        rule, n_final = search.confirm, final.status.shape[1]
        rounds = np.zeros(final.status.shape[0], dtype=int)
        first_iter = sum(n_iter for _, n_iter, _ in search.stages)
        polish = search.stages[-1][1]
        for round_ in range(1, rule.rounds + 1):
            f = np.asarray(final.states.f)
            todo = np.flatnonzero(np.isfinite(f[:, 0]) & ~rule.confirmed(f))
            if not todo.size or (round_ > 1 and search.n_starts == 0):
                break
            if round_ > 1:
                fresh, _ = self.schedule(todo, jax.random.fold_in(key, round_), search)
                final = final.update(todo, final.rows(todo).join(fresh).best_first(n_final))
            states = self.lm(self.layout(None), final.rows(todo).states, todo, first_iter, polish)
            final = final.update(todo, _Final(states, solvers.status(states)).best_first())
            first_iter += polish
            rounds[todo] = round_
        return final, rounds
