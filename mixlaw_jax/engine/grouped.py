"""Rows grouped by mixture: a linearisation that works out each distinct mixture once.

A run table holds few distinct mixtures (SlimPajama: 60 in 2408 rows), and a law written as
``Law.from_features`` sees the mixture only through F features phi(theta, h). With q the law's row
parameters (``MixtureFeatures.row_params``), the Jacobian of a row's prediction m_j in law coordinates u is

    dm_j/du = v_j^T K_g,   v_j = (dm_j/dq, dm_j/dphi) in R^a (a = |q| + F),
                           K_g = [selection of q; dphi(h_g)/du]   (a x P, one per group g of rows sharing h_g),

so the step's Gram and gradient-side vector (``solvers.Linearisation``) are

    J^T Omega J = sum_g K_g^T (sum_{j in g} omega_j v_j v_j^T) K_g,
    J^T (w psi) = sum_g K_g^T sum_{j in g} w_j psi_j v_j,

and the chain rule to the search coordinates z is diagonal (u = to_law(z) acts coordinate by coordinate).

K_g is sparse: each coordinate feeds one or a few of the a quantities (in the built-in laws exactly one: E, alpha
and beta only q; C and gamma only the mixture term; A_pure and tau_A only log A_h). Its non-zero entries, the
*pieces* (p, b) with kappa_{g,pb} = dq_b/du_p or dphi_b(h_g)/du_p, are found once per law (:func:`structure`), and

    Gram_pieces[pb, p'b'] = sum_g kappa_{g,pb} A_g[b, b'] kappa_{g,p'b'},   A_g = sum_{j in g} omega_j v_j v_j^T,

is one (n_b, G) x (G, n) product per quantity b (n pieces, n_b of them on b); a coordinate's row and column of the
Gram sum its pieces'. Features that share no coordinate are differentiated together: one reverse pass whose
cotangent is 1 on each of them gives every piece of all of them (the features' *colours*; one pass in the
built-in laws instead of F). Per row this costs a few exponentials and an a x a outer product instead of a P-wide
reverse pass and a P x P Gram; per group, a reverse pass per colour and ~n (n + a) multiply-adds. The result
equals the row-by-row linearisation to rounding (tests/test_grouped.py).

The engine lays the rows out in groups of ``size`` rows of one mixture each (a mixture with more rows fills
several groups; the last is padded with weight-0 copies of one of its rows, which no objective sees), and picks
``size`` by the cost model of :func:`plan` — or keeps the row-by-row path where that is cheaper (one row per
mixture, as in the RegMix tables). :func:`objective` gives f alone on the same layout (the LM step's test of a trial
point before it is linearised, for many parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..laws import Inputs, Law, log_prediction, raw_prediction
from ..objective import huber_objective
from . import solvers
from .space import ParamSpace, make_space

#: Cost model of one linearisation in nanoseconds per start (constants fitted to the timings in benchmarks/NOTES.md,
#: session 8, item 7): the row path costs ROW_NS_PER_P * P + ROW_NS_PER_P2 * P^2 per row (its reverse pass, and
#: its P x P Gram term, which dominates from P ~ 150: joint law, k = 64, P = 261, 8 rows per mixture: 25.9 ms
#: against the grouped path's 7.2 ms per start and iteration; session 18); the grouped path n (n + a) / MACS_PER_NS
#: per group (n pieces; this also covers the features' reverse pass, which grows with P) and SLOT_NS per slot.
ROW_NS_PER_P = 13.0
ROW_NS_PER_P2 = 0.08
MACS_PER_NS = 1.7
SLOT_NS = 40.0


def plan(space: ParamSpace, h: np.ndarray) -> int | None:
    """Rows per group for the grouped linearisation of rows with mixtures h, or None where the row path is cheaper
    by the cost model above (each size from 1 to the largest count of rows sharing a mixture is tried)."""
    if space.law.mixture_features is None or len(h) == 0:
        return None
    counts = np.unique(h, axis=0, return_counts=True)[1]
    st = structure(space.law, space.k)
    n, a = len(st.piece_param), len(st.row_index) + st.n_features
    per_group = n * (n + a) / MACS_PER_NS
    best, best_cost = None, len(h) * (ROW_NS_PER_P + ROW_NS_PER_P2 * space.size) * space.size
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


class Structure(NamedTuple):
    """Which law coordinates reach the prediction through which of the a = |q| + F quantities (q, phi).

    A *piece* is one (coordinate, quantity) pair with a non-zero derivative; pieces are sorted by quantity. The
    features are split into *colours*, sets of features that share no coordinate, so that one reverse pass with
    the colour's indicator as cotangent yields every piece of its features (one colour for the built-in laws).
    """

    row_index: np.ndarray  # (|q|,) flat index of each row parameter
    place: dict  # row parameter name -> its index or slice in q
    n_features: int  # F
    colours: np.ndarray  # (C, F) 0/1 cotangents, one per colour
    piece_param: np.ndarray  # (n,) coordinate of each piece
    piece_quantity: np.ndarray  # (n,) its quantity in [0, a): q first, then the features
    piece_colour: np.ndarray  # (n,) colour of a feature piece (0 for a row piece, unused)
    quantity_start: np.ndarray  # (a + 1,) first piece of each quantity
    param_pieces: np.ndarray  # (P, M) pieces of each coordinate, padded with n (a zero piece)


#: Random points (law coordinates from the default init box, and interior mixtures) at which the structure is read.
STRUCTURE_SAMPLES = 4


@lru_cache(maxsize=64)
def structure(law: Law, k: int) -> Structure:
    """The :class:`Structure` of a feature law for k domains.

    Which coordinates each feature depends on is read from its Jacobian at ``STRUCTURE_SAMPLES`` random points and
    interior mixtures (a NaN counts as a dependence): a derivative that vanishes at every one of them but not
    elsewhere would be missed, which the analytic features of a scaling law do not do.
    """
    index = law.unflatten(np.arange(law.n_params(k)), k)  # name -> flat index, or (k,) indices
    row_index, place = [], {}
    for name in law.mixture_features.row_params:
        at = len(row_index)
        place[name] = at if np.ndim(index[name]) == 0 else slice(at, at + k)
        row_index += np.atleast_1d(index[name]).tolist()
    space = make_space(law, k)
    rng = np.random.default_rng(0)
    h = rng.dirichlet(np.ones(k), STRUCTURE_SAMPLES)
    u = np.clip(
        space.init_lo + (space.init_hi - space.init_lo) * rng.uniform(size=(STRUCTURE_SAMPLES, space.size)),
        space.lo,
        space.hi,
    )

    def jacobian(u_s, h_s):
        return jax.jacfwd(
            lambda v: law.mixture_features.features(law.unflatten(v, k), Inputs(None, None, h_s, jnp.log(h_s)))
        )(u_s)

    jac = np.asarray(jax.jit(jax.vmap(jacobian))(u, h))  # (S, F, P); one compiled program, not op by op
    depends = np.any(jac != 0, axis=0)  # NaN != 0 too
    n_features = depends.shape[0]
    colour_of = []  # greedy: the first colour none of whose features overlap
    for a in range(n_features):
        c = 0
        while any(colour_of[b] == c and np.any(depends[a] & depends[b]) for b in range(a)):
            c += 1
        colour_of.append(c)
    colours = (np.arange(max(colour_of) + 1)[:, None] == np.array(colour_of)[None]).astype(float)
    pieces = [(p, i, 0) for i, p in enumerate(row_index)]
    pieces += [(p, len(row_index) + a, colour_of[a]) for a in range(n_features) for p in np.flatnonzero(depends[a])]
    piece_param, piece_quantity, piece_colour = (np.array(c, dtype=int) for c in zip(*pieces))
    of_param = [np.flatnonzero(piece_param == p) for p in range(law.n_params(k))]
    width = max(1, max(len(o) for o in of_param))
    param_pieces = np.array([np.pad(o, (0, width - len(o)), constant_values=len(pieces)) for o in of_param])
    quantity_start = np.searchsorted(piece_quantity, np.arange(len(row_index) + n_features + 1))
    return Structure(
        np.array(row_index),
        place,
        n_features,
        colours,
        piece_param,
        piece_quantity,
        piece_colour,
        quantity_start,
        param_pieces,
    )


class _Groups(NamedTuple):
    """Rows laid out in groups of ``size`` (:func:`layout`), as the grouped functions see them."""

    structure: Structure
    h: jax.Array  # (G, k): each group's mixture
    log_h: jax.Array
    log_n: jax.Array  # (G, size)
    log_d: jax.Array
    features: Callable  # (u, h_g, log h_g) -> the group's features phi (F,)
    row_prediction: Callable  # (q, phi, log N, log D) -> one row's prediction


def _groups(space: ParamSpace, x: Inputs, size: int) -> _Groups:
    split, law, k = space.law.mixture_features, space.law, space.k
    st = structure(law, k)
    groups = x.h.shape[0] // size
    predict = log_prediction if space.loss_space == "log" else raw_prediction

    def features(u, hg, log_hg):
        return split.features(law.unflatten(u, k), Inputs(None, None, hg, log_hg))

    def row_prediction(q, phi, ln, ld):
        named = {n: q[at] for n, at in st.place.items()}
        return predict(*split.combine(named, phi, Inputs(ln, ld, None, None)))

    return _Groups(
        st,
        x.h[::size],
        x.log_h[::size],
        x.log_n.reshape(groups, size),
        x.log_d.reshape(groups, size),
        features,
        row_prediction,
    )


def objective(space: ParamSpace, x: Inputs, size: int, rows: solvers.Rows, delta: float) -> Callable:
    """z -> f(z) on rows laid out in groups of ``size``: each group's features once, no derivatives (the LM step's
    test of a trial point, ``solvers.lm_step``'s ``value``)."""
    grouping = _groups(space, x, size)
    per_row = jax.vmap(jax.vmap(grouping.row_prediction, in_axes=(None, None, 0, 0)), in_axes=(None, 0, 0, 0))

    def value(z):
        u = space.to_law(z)
        phi = jax.vmap(partial(grouping.features, u))(grouping.h, grouping.log_h)
        m = per_row(u[grouping.structure.row_index], phi, grouping.log_n, grouping.log_d).reshape(-1)
        return huber_objective(rows.y - m, rows.w, rows.c, delta)

    return value


def linearise(space: ParamSpace, x: Inputs, size: int, rows: solvers.Rows, delta: float) -> solvers.Linearise:
    """z -> ``solvers.Linearisation`` on rows laid out by :func:`layout` in groups of ``size`` (module docstring)."""
    grouping = _groups(space, x, size)
    st, h, log_h, log_n, log_d = grouping.structure, grouping.h, grouping.log_h, grouping.log_n, grouping.log_d
    n_rows = len(st.row_index)
    groups = h.shape[0]
    used = (rows.w > 0).reshape(groups, size)
    active = jnp.any(used, axis=1)[:, None]  # a group no row of which is weighted must not touch the sums
    feature_pieces = slice(n_rows, None)
    row_prediction = grouping.row_prediction

    per_slot = jax.vmap(
        jax.vmap(jax.value_and_grad(row_prediction, argnums=(0, 1)), in_axes=(None, None, 0, 0)),
        in_axes=(None, 0, 0, 0),
    )

    def lin(z):
        u, du = jax.jvp(space.to_law, (z,), (jnp.ones_like(z),))

        def group_features(hg, log_hg):
            phi, pullback = jax.vjp(lambda v: grouping.features(v, hg, log_hg), u)
            # cotangents built from phi, so that under shard_map they vary over the mesh as phi does
            return phi, jax.vmap(pullback)(st.colours * jnp.ones_like(phi))[0]

        phi, dphi = jax.vmap(group_features)(h, log_h)  # (G, F), (G, C, P)
        kappa = jnp.concatenate(
            [
                jnp.ones((groups, n_rows), u.dtype),
                dphi[:, st.piece_colour[feature_pieces], st.piece_param[feature_pieces]],
            ],
            axis=1,
        )
        kappa = jnp.where(active, kappa * du[st.piece_param], 0.0)  # (G, n): K_g's entries, search coordinates z
        m, (dq, dphi_row) = per_slot(u[st.row_index], phi, log_n, log_d)  # (G, s), (G, s, |q|), (G, s, F)
        v = jnp.where(used[..., None], jnp.concatenate([dq, dphi_row], axis=-1), 0.0)  # (G, s, a)
        f, w_psi, omega = solvers.irls_weights(rows, delta, m.reshape(-1))
        inner = jnp.einsum("gsa,gsb->gab", v * omega.reshape(groups, size, 1), v)
        side = jnp.einsum("gs,gsa->ga", w_psi.reshape(groups, size), v)
        # per piece: inner K_g column by column, then one (n_b, G) x (G, n) product per quantity b
        start = st.quantity_start
        gram = jnp.concatenate(
            [
                kappa[:, start[b] : start[b + 1]].T @ (inner[:, b, st.piece_quantity] * kappa)
                for b in range(len(start) - 1)
                if start[b + 1] > start[b]
            ]
        )
        g = jnp.sum(kappa * side[:, st.piece_quantity], axis=0)
        # pieces -> coordinates: sum over each coordinate's pieces (padding points at an appended zero piece)
        gram, g = jnp.pad(gram, ((0, 1), (0, 1))), jnp.pad(g, (0, 1))
        table = st.param_pieces
        coordinate_gram = sum(
            gram[table[:, i][:, None], table[:, j][None, :]]
            for i in range(table.shape[1])
            for j in range(table.shape[1])
        )
        return solvers.Linearisation(f, jnp.sum(g[table], axis=1), coordinate_gram)

    return lin
