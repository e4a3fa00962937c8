"""Rows grouped by mixture: a linearisation that works out each distinct mixture once.

A run table holds few distinct mixtures (SlimPajama: 60 in 2408 rows), and a law written as
``Law.from_features`` sees the mixture only through F features phi(theta, h). With q the law's row
parameters (``MixtureFeatures.row_params``), the Jacobian of a row's prediction m_j in law coordinates u is

    dm_j/du = v_j^T K_g,   v_j = (dm_j/dq, dm_j/dphi) in R^a (a = |q| + F),
                           K_g = [selection of q; dphi(h_g)/du]   (a x P, one per group g of rows sharing h_g),

so the step's Gram and gradient-side vector (``solvers.Linearisation``) are

    J^T Omega J = sum_g K_g^T (sum_{j in g} omega_j v_j v_j^T) K_g,   J^T (w psi) = sum_g K_g^T sum_{j in g} w_j psi_j v_j,

and the chain rule to the fitted coordinates z is diagonal (u = to_law(z) acts coordinate by coordinate).
Per row this costs a few exponentials and an a x a outer product instead of a P-wide reverse pass and a P x P
Gram; per group, one feature Jacobian and an (a, P) x (a, a) x (a, P) product. The result equals the
row-by-row linearisation to rounding (tests/test_grouped.py).

The engine lays the rows out in groups of ``size`` rows of one mixture each (a mixture with more rows fills
several groups; the last is padded with weight-0 copies of one of its rows, which no objective sees), and picks
``size`` by the cost model of :func:`plan` — or keeps the row-by-row path where that is cheaper (one row per
mixture, as in the RegMix tables).
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from ..laws import Inputs, Law
from ..laws._base import log_prediction, raw_prediction
from . import solvers
from .space import ParamSpace

#: Cost model of one linearisation in nanoseconds, fitted to timings on this project's 2-core CPU (SlimPajama rows,
#: additive P = 19 and joint P = 33, 64 starts vmapped; benchmarks/NOTES.md, session 7): the row path costs
#: ROW_NS_PER_P2 * P^2 per row; the grouped path GROUP_NS + a P (P + a) / MACS_PER_NS per group and SLOT_NS per slot.
ROW_NS_PER_P2 = 1.2
GROUP_NS = 600.0
MACS_PER_NS = 3.0
SLOT_NS = 80.0


def plan(space: ParamSpace, h: np.ndarray) -> int | None:
    """Rows per group for the grouped linearisation of rows with mixtures h, or None where the row path is cheaper
    by the cost model above (each size from 1 to the largest count of rows sharing a mixture is tried)."""
    if space.law.mixture_features is None or len(h) == 0:
        return None
    counts = np.unique(h, axis=0, return_counts=True)[1]
    p = space.size
    row_index, _, n_features = _row_split(space.law, space.k)
    a = len(row_index) + n_features
    per_group = GROUP_NS + a * p * (p + a) / MACS_PER_NS
    best, best_cost = None, len(h) * ROW_NS_PER_P2 * p * p
    for size in range(1, int(counts.max()) + 1):
        groups = int(np.sum(-(-counts // size)))
        cost = groups * (per_group + size * SLOT_NS)
        if cost < best_cost:
            best, best_cost = size, cost
    return best


def layout(h: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(row of every slot, whether the slot is a real row): the rows of each mixture in consecutive groups of
    ``size`` slots, the last group of a mixture padded with copies of its first row."""
    _, mixture = np.unique(h, axis=0, return_inverse=True)
    mixture = mixture.ravel()
    slots, real = [], []
    for m in range(mixture.max() + 1):
        rows = np.flatnonzero(mixture == m)
        pad = -len(rows) % size
        slots.append(np.concatenate([rows, np.full(pad, rows[0])]))
        real.append(np.arange(len(rows) + pad) < len(rows))
    return np.concatenate(slots), np.concatenate(real)


@lru_cache(maxsize=64)
def _row_split(law: Law, k: int) -> tuple[np.ndarray, dict, int]:
    """(flat indices of the row parameters q, each one's place in q, the number of features F) for k domains."""
    index = law.unflatten(np.arange(law.n_params(k)), k)        # name -> flat index, or (k,) indices
    row_index, place = [], {}
    for name in law.mixture_features.row_params:
        at = len(row_index)
        place[name] = at if np.ndim(index[name]) == 0 else slice(at, at + k)
        row_index += np.atleast_1d(index[name]).tolist()
    one = Inputs(None, None, jnp.ones(k) / k, jnp.full(k, -np.log(k)))
    params = law.unflatten(jnp.zeros(law.n_params(k)), k)
    n_features = jax.eval_shape(lambda: law.mixture_features.features(params, one)).shape[0]
    return np.array(row_index), place, int(n_features)


def linearise(space: ParamSpace, x: Inputs, size: int, rows: solvers.Rows, delta: float) -> solvers.Linearise:
    """z -> ``solvers.Linearisation`` on rows laid out by :func:`layout` in groups of ``size`` (module docstring)."""
    split = space.law.mixture_features
    law, k = space.law, space.k
    row_index, place, n_features = _row_split(law, k)
    groups = x.h.shape[0] // size
    h, log_h = x.h[::size], x.log_h[::size]                                # (G, k): each group's mixture
    log_n, log_d = x.log_n.reshape(groups, size), x.log_d.reshape(groups, size)
    used = (rows.w > 0).reshape(groups, size)
    active = jnp.any(used, axis=1)[:, None, None]     # a group no row of which is weighted must not touch the sums
    predict = log_prediction if space.loss_space == "log" else raw_prediction

    def row_prediction(q, phi, ln, ld):
        named = {n: q[at] for n, at in place.items()}
        return predict(*split.combine(named, phi, Inputs(ln, ld, None, None)))

    per_slot = jax.vmap(jax.vmap(jax.value_and_grad(row_prediction, argnums=(0, 1)), in_axes=(None, None, 0, 0)),
                        in_axes=(None, 0, 0, 0))

    def lin(z):
        u, du = jax.jvp(space.to_law, (z,), (jnp.ones_like(z),))

        def group_features(hg, log_hg):
            phi, pullback = jax.vjp(lambda v: split.features(law.unflatten(v, k), Inputs(None, None, hg, log_hg)), u)
            return phi, jax.vmap(pullback)(jnp.eye(n_features, dtype=u.dtype))[0]

        phi, dphi = jax.vmap(group_features)(h, log_h)                         # (G, F), (G, F, P)
        m, (dq, dphi_row) = per_slot(u[row_index], phi, log_n, log_d)          # (G, s), (G, s, |q|), (G, s, F)
        v = jnp.concatenate([dq, dphi_row], axis=-1)                            # (G, s, a)
        select = jnp.broadcast_to(jnp.eye(space.size, dtype=u.dtype)[row_index], (groups, len(row_index), space.size))
        basis = jnp.where(active, jnp.concatenate([select, dphi], axis=1) * du, 0.0)   # (G, a, P) in z coordinates
        f, w_psi, omega = solvers.irls_weights(rows, delta, m.reshape(-1))
        v = jnp.where(used[..., None], v, 0.0)
        inner = jnp.einsum("gsa,gsb->gab", v * omega.reshape(groups, size, 1), v)
        side = jnp.einsum("gs,gsa->ga", w_psi.reshape(groups, size), v)
        # sum_g K_g^T (inner_g K_g) as one (G a, P)^T (G a, P) product: ~3x faster than a three-operand einsum
        weighted = jnp.einsum("gab,gbp->gap", inner, basis).reshape(-1, space.size)
        gram = weighted.T @ basis.reshape(-1, space.size)
        return solvers.Linearisation(f, basis.reshape(-1, space.size).T @ side.reshape(-1), gram)

    return lin
