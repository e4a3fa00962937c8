"""A first swarm: which mixtures, at which model sizes and token counts, to train before any law is fitted.

The runs form a table with the columns ``load_runs`` reads back: one row per (mixture, scale), the weights
h ∈ F = {h : Σ_i h_i = 1, lo_i <= h_i <= hi_i} (weight bounds and fixed domains, validated by
``mixture.constraints.Constraints``, so a design and an optimal mixture read their bounds the same way), the model
size N and the training tokens D of the scale, and a run id.

Two ways to choose the n mixtures:

- ``"dirichlet"`` (RegMix, Liu et al. 2024; AllenAI's Olmix): h_J = m · g, g ~ Dirichlet(α) over the free domains
  J (those not fixed), m = 1 - Σ_fixed w, α_j = c · p_j / Σ_{i∈J} p_i for a prior p and concentration c. Draws
  outside the bounds are rejected and drawn again (never clipped), so the rows follow the Dirichlet truncated to F.
- ``"space-filling"``: many candidates spread over F (approximately uniformly, by hit-and-run, Smith 1984, started
  at random convex combinations of F's extreme points), with the points where each domain takes its smallest and
  largest feasible weight added; then a greedy maximin selection (farthest-point traversal, Gonzalez 1985): each
  next mixture is the candidate farthest from those already chosen, which gives at least half the best possible
  minimum pairwise distance among the candidates.

Data limits (``DataLimits``): the target run of D_T tokens has U_i unique tokens of domain i, so it repeats
domain i e_i = h_i D_T / U_i times. A proxy of D tokens is given the pool U_i^P = U_i · D / D_T (a subsample of
each domain in proportion), so that it repeats every domain exactly as the target would: h_i D / U_i^P = e_i
(Muennighoff et al. 2023's repetition enters a proxy as it will enter the target). A cap on the epochs,
e_i <= e_max, bounds every mixture: h_i <= e_max U_i / D_T.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import MixlawError
from .mixture.constraints import FEASIBILITY_TOL, Constraints, DataLimits, domain_vector, project
from .options import MAX_SEED, real_number, whole_number

#: Column names of the design table: the model size, the training tokens (``load_runs``' and the command's default
#: N and D columns), the run and the mixture of each row.
N_COLUMN, D_COLUMN, RUN_COLUMN, MIXTURE_COLUMN = "model_size", "n_tokens", "run_id", "mixture"
METHODS = ("dirichlet", "space-filling")
#: A prior must sum to 1 within this.
PRIOR_SUM_TOL = 1e-6
#: Rejection sampling gives up after this many Dirichlet draws per mixture asked for (and at least MIN_DRAWS).
DRAWS_PER_MIXTURE, MIN_DRAWS = 1000, 100_000
#: Space-filling candidates: this many per mixture asked for, within [MIN_CANDIDATES, MAX_CANDIDATES].
CANDIDATES_PER_MIXTURE, MIN_CANDIDATES, MAX_CANDIDATES = 64, 4096, 65536
#: Hit-and-run chains run side by side, and the steps each takes before its first candidate (per free domain).
CHAINS, BURN_IN_PER_DOMAIN = 512, 20


def design_swarm(
    domains,
    n: int,
    *,
    scales,
    prior=None,
    concentration: float | None = None,
    weight_bounds=None,
    fixed=None,
    method: str = "dirichlet",
    data_limits: DataLimits | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The runs of a first swarm: n mixtures, each at every scale (N, D).

    Args:
      domains: the number of domains k >= 2 (weight columns ``weight_0`` ... ``weight_{k-1}``, which
        ``load_runs(..., weights="weight_*")`` and the command's default read), or the k weight column names.
      n: the number of mixtures (>= 1).
      scales: the (N, D) pairs (model size, training tokens) at which every mixture is trained, each > 0.
      prior: ``"dirichlet"`` only: the mixture the draws centre on, k weights >= 0 summing to 1 (a sequence, or a
        dict {domain: weight} with the others 0); uniform by default. Every free domain needs a prior > 0 (fix a
        domain at 0 with ``fixed`` to leave it out).
      concentration: ``"dirichlet"`` only: c > 0 in α = c · prior (larger: draws closer to the prior); by default the
        number of free domains, so that a uniform prior gives draws uniform over the simplex.
      weight_bounds: bounds on the weights, as ``optimal_mixture`` takes them: None or ``"simplex"`` (none), a dict
        {domain: (lo, hi)} (the other domains [0, 1]) or a (k, 2) array.
      fixed: {domain: weight}: domains held at a weight in every mixture.
      method: ``"dirichlet"`` (RegMix / Olmix style) or ``"space-filling"`` (maximin); see the module docstring.
      data_limits: :class:`DataLimits`: the target run's unique tokens per domain; every row gets the pools
        ``unique_<domain>`` = U_i · D / D_T that repeat each domain as the target would, and ``max_epochs`` caps
        the weights (module docstring).
      seed: the random seed; the same arguments and seed give the same table.

    Returns:
      A DataFrame with one row per (mixture, scale), mixture by mixture: ``run_id`` (one per mixture and model
      size, as ``load_runs`` counts runs: scales sharing N are checkpoints of one run), ``mixture`` (0..n-1), the k
      weight columns, ``model_size`` (N) and ``n_tokens`` (D). Once trained, add the loss columns and read it with
      ``load_runs(table, weights=..., N="model_size", D="n_tokens", targets=..., run_id="run_id")``.
      ``table.attrs`` holds ``method``, ``seed``, with ``data_limits`` ``epochs`` ({domain: [fewest, most]
        epochs e_i = h_i D_T / U_i in the design}), ``min_distance`` (the smallest Euclidean distance between two of
      the n mixtures; None for n = 1), ``weight_range`` ({domain: [smallest, largest weight in the design]}),
      ``feasible_range`` ({domain: [smallest, largest weight in F]}) and, for ``"dirichlet"``, ``acceptance`` (the
      share of draws inside the bounds).

    Raises:
      MixlawError: naming the argument and value at fault: k < 2, n < 1, bounds that leave no feasible mixture (or
        only one), a prior off the simplex, a concentration <= 0, an unknown method, a scale with N or D <= 0, or
        bounds that reject nearly every Dirichlet draw (use ``"space-filling"``, or a prior inside the bounds).

      With ``data_limits``: a column ``unique_<domain>`` per limited domain, and ``attrs["unique_tokens"]`` the
      ``load_runs(unique_tokens=...)`` argument that reads them back ({domain: column, or None: unlimited}).
    """
    names = _domain_names(domains)
    n = whole_number(n, "n", minimum=1)
    seed = whole_number(seed, "seed", maximum=MAX_SEED)
    if not isinstance(method, str) or method not in METHODS:
        raise MixlawError(f"method must be {' or '.join(map(repr, METHODS))}, not {method!r}")
    scale_array = _scales(scales)
    if data_limits is not None and not isinstance(data_limits, DataLimits):
        raise MixlawError(f"data_limits must be a DataLimits, not {type(data_limits).__name__}")
    pools, target_tokens, max_epochs = None, None, None
    if data_limits is not None:
        pools = data_limits.pools(names)
        target_tokens, max_epochs = data_limits.checked()
    capping = None if max_epochs is None else data_limits  # the limits that cap h_i <= e_max U_i / D_T, if any
    constraints = Constraints.for_domains(names, weight_bounds=weight_bounds, fixed=fixed, token_budget=capping)
    box = constraints.at(None if capping is None else np.asarray([target_tokens]))
    box.raise_if_infeasible()
    lo, hi = box.lower[0], box.upper[0]
    extremes = _extremes(lo, hi)
    feasible_lo, feasible_hi = extremes.min(axis=0), extremes.max(axis=0)
    moving = feasible_hi - feasible_lo > FEASIBILITY_TOL
    if moving.sum() < 2:
        raise MixlawError(
            f"the weight bounds and fixed domains leave one feasible mixture ({_show(feasible_lo, names)}); "
            f"there is nothing to design"
        )
    rng = np.random.default_rng(seed)
    attrs: dict = {"method": method, "seed": seed}
    if method == "dirichlet":
        h, attrs["acceptance"] = _dirichlet(n, names, lo, hi, prior, concentration, rng)
    else:
        for name, value in (("prior", prior), ("concentration", concentration)):
            if value is not None:
                raise MixlawError(f"{name} shapes the Dirichlet draws; method='space-filling' takes none")
        h = _space_filling(n, extremes, lo, hi, moving, rng)
    attrs["min_distance"] = min_distance(h)
    attrs["weight_range"] = {d: [float(h[:, i].min()), float(h[:, i].max())] for i, d in enumerate(names)}
    attrs["feasible_range"] = {d: [float(feasible_lo[i]), float(feasible_hi[i])] for i, d in enumerate(names)}
    table = _table(h, names, scale_array)
    if pools is not None:
        spec = {domain: f"unique_{domain}" if np.isfinite(u) else None for domain, u in zip(names, pools)}
        for domain, values in data_limits.proxy_pools(table[D_COLUMN].to_numpy()).items():
            if spec[domain] is not None:
                table[spec[domain]] = values
        epochs = h * target_tokens / pools
        attrs["unique_tokens"] = spec
        attrs["epochs"] = {d: [float(epochs[:, i].min()), float(epochs[:, i].max())] for i, d in enumerate(names)}
    table.attrs.update(attrs)
    return table


def nearest_distances(h: np.ndarray) -> np.ndarray:
    """min_{b != a} ||h_a - h_b||₂ for every row a of h (m, k), a block of rows at a time (inf for a single row)."""
    h = np.asarray(h, dtype=float)
    nearest = np.full(len(h), np.inf)
    rows = max(1, min(1024, 2**22 // max(h.size, 1)))  # a block holds at most ~2^22 differences
    for start in range(0, len(h), rows):
        d2 = ((h[start : start + rows, None, :] - h[None, :, :]) ** 2).sum(axis=-1)
        d2[np.arange(d2.shape[0]), start + np.arange(d2.shape[0])] = np.inf  # not a row with itself
        nearest[start : start + rows] = d2.min(axis=1)
    return np.sqrt(nearest)


def min_distance(h: np.ndarray) -> float | None:
    """min_{a < b} ||h_a - h_b||₂ over the rows of h (m, k); None for fewer than two rows."""
    return float(nearest_distances(h).min()) if len(h) >= 2 else None


def _domain_names(domains) -> tuple[str, ...]:
    """weight_0 ... weight_{k-1} for a count k, or the names given (distinct, not a design column)."""
    if isinstance(domains, numbers.Integral) and not isinstance(domains, bool):
        names = tuple(f"weight_{i}" for i in range(int(domains)))
    elif isinstance(domains, Sequence) and not isinstance(domains, str):
        names = tuple(domains)
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise MixlawError(f"domain names must be non-empty strings, not {name!r}")
        repeated = sorted({d for d in names if names.count(d) > 1})
        if repeated:
            raise MixlawError(f"domain {repeated[0]!r} is named {names.count(repeated[0])} times")
        clash = [d for d in names if d in (N_COLUMN, D_COLUMN, RUN_COLUMN, MIXTURE_COLUMN)]
        if clash:
            raise MixlawError(f"domain name {clash[0]!r} is a column of the design table; rename the domain")
    else:
        raise MixlawError(f"domains must be a number of domains k or a list of weight column names, not {domains!r}")
    if len(names) < 2:
        raise MixlawError(f"a mixture needs k >= 2 domains, not {len(names)} ({domains!r})")
    return names


def _scales(scales) -> np.ndarray:
    """(S, 2) array of the (N, D) pairs: at least one, each finite and > 0, none repeated."""
    try:
        out = np.asarray(scales, dtype=float)
    except (TypeError, ValueError):
        raise MixlawError(f"scales must be a list of (N, D) pairs of numbers, not {scales!r}") from None
    if out.ndim != 2 or out.shape[1] != 2 or len(out) == 0:
        raise MixlawError(f"scales must be a non-empty list of (N, D) pairs, not {scales!r}")
    for s, (size, tokens) in enumerate(out):
        for what, value in (("N", size), ("D", tokens)):
            if not (np.isfinite(value) and value > 0):
                raise MixlawError(f"scales[{s}]: {what} = {float(value)!r} must be finite and > 0")
    _, first, count = np.unique(out, axis=0, return_index=True, return_counts=True)
    if (count > 1).any():
        size, tokens = out[first[np.argmax(count > 1)]]
        raise MixlawError(f"scales repeats (N, D) = ({size:.6g}, {tokens:.6g})")
    return out


def _extremes(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(2k, k): for each domain i, the point of F where h_i is largest, then the one where it is smallest.

    Π_F(±2 e_i) (the exact projection): moving weight from domain j to i changes ||h - 2 e_i||² by
    2ε (h_j - (2 - h_i)) < 0, so the projection of 2 e_i puts the most F allows on i (likewise -2 e_i the least).
    """
    import jax

    k = len(lo)
    targets = np.concatenate([2.0 * np.eye(k), -2.0 * np.eye(k)])
    points = np.asarray(jax.vmap(project, in_axes=(0, None, None))(targets, lo, hi), dtype=float)
    return np.clip(points, lo, hi)


def _dirichlet(n, names, lo, hi, prior, concentration, rng) -> tuple[np.ndarray, float]:
    """n mixtures h_J = m · Dirichlet(α) on the free domains inside the bounds (rejection), and the acceptance rate."""
    k = len(names)
    fixed = lo == hi
    free = np.flatnonzero(~fixed)
    mass = 1.0 - lo[fixed].sum()
    p = _prior(prior, names)
    zero = [names[i] for i in free if p[i] == 0]
    if zero:
        raise MixlawError(
            f"the prior of domain {zero[0]!r} is 0, but a Dirichlet needs every domain that is not fixed to have a "
            f"prior > 0; fix it at 0 with fixed={{{zero[0]!r}: 0}}"
        )
    c = float(len(free)) if concentration is None else real_number(concentration, "concentration")
    if c <= 0:
        raise MixlawError(f"concentration must be > 0, not {c!r}")
    alpha = c * p[free] / p[free].sum()
    limit = max(MIN_DRAWS, DRAWS_PER_MIXTURE * n)
    kept, drawn, accepted = [], 0, 0
    while accepted < n and drawn < limit:
        size = min(limit - drawn, max(4 * (n - accepted), 1024))
        h = np.tile(lo, (size, 1))
        h[:, free] = mass * rng.dirichlet(alpha, size=size)
        ok = np.isfinite(h).all(axis=1) & (h >= lo).all(axis=1) & (h <= hi).all(axis=1)
        kept.append(h[ok])
        drawn, accepted = drawn + size, accepted + int(ok.sum())
    if accepted < n:
        raise MixlawError(
            f"only {accepted} of {drawn} Dirichlet draws ({100 * accepted / drawn:.3g}%) lie inside the weight "
            f"bounds, fewer than the n = {n} mixtures asked for; move the prior inside the bounds, raise the "
            f"concentration, or use method='space-filling'"
        )
    return np.concatenate(kept)[:n].reshape(n, k), accepted / drawn


def _prior(prior, names) -> np.ndarray:
    """The prior (k,): uniform by default; weights >= 0 summing to 1."""
    k = len(names)
    if prior is None:
        return np.full(k, 1.0 / k)
    if not isinstance(prior, Mapping):
        try:
            shape = np.shape(np.asarray(prior, dtype=float))
        except (TypeError, ValueError):
            raise MixlawError(f"prior must be {k} weights or a dict {{domain: weight}}, not {prior!r}") from None
        if shape != (k,):
            raise MixlawError(f"prior has shape {shape}; expected ({k},) for the k = {k} domains ({', '.join(names)})")
    p = domain_vector(prior, names, "prior", default=0.0)
    if not np.isfinite(p).all() or (p < 0).any():
        bad = next(i for i in range(k) if not (np.isfinite(p[i]) and p[i] >= 0))
        raise MixlawError(f"prior of domain {names[bad]!r} must be finite and >= 0, not {float(p[bad])!r}")
    if abs(p.sum() - 1.0) > PRIOR_SUM_TOL:
        raise MixlawError(f"prior must be a mixture summing to 1, not {p.tolist()} (sum {p.sum():.6g})")
    return p


def _space_filling(n, extremes, lo, hi, moving, rng) -> np.ndarray:
    """n mixtures picked by farthest-point traversal among the extremes and hit-and-run candidates of F."""
    size = int(np.clip(CANDIDATES_PER_MIXTURE * n, MIN_CANDIDATES, MAX_CANDIDATES))
    pool = np.concatenate([extremes, _hit_and_run(size, extremes, lo, hi, moving, rng)])
    pool = np.unique(pool, axis=0)
    if len(pool) < n:  # F is a segment or a small polytope whose candidates repeat
        raise MixlawError(f"the weight bounds leave fewer than n = {n} distinct candidate mixtures ({len(pool)})")
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = np.argmax(((pool - pool.mean(axis=0)) ** 2).sum(axis=1))
    gap = np.full(len(pool), np.inf)
    for j in range(1, n):
        gap = np.minimum(gap, ((pool - pool[chosen[j - 1]]) ** 2).sum(axis=1))
        chosen[j] = np.argmax(gap)
    return pool[chosen]


def _hit_and_run(size, extremes, lo, hi, moving, rng) -> np.ndarray:
    """``size`` points of F, approximately uniform: hit-and-run chains over the moving domains (Smith 1984).

    Each step draws a direction u with Σ u = 0 on the moving domains and moves to h + t u with t uniform on the
    chord {t : lo <= h + t u <= hi}. Chains start at random convex combinations of F's extreme points, take
    BURN_IN_PER_DOMAIN · (moving domains) steps, then give a point every (moving domains) steps.
    """
    m = int(moving.sum())
    chains = min(CHAINS, size)
    h = rng.dirichlet(np.ones(len(extremes)), size=chains) @ extremes
    h = np.clip(h, lo, hi)
    lo_m, hi_m = lo[moving], hi[moving]
    out = []
    steps = BURN_IN_PER_DOMAIN * m + m * -(-size // chains)
    for step in range(steps):
        x = h[:, moving]
        u = rng.standard_normal((chains, m))
        u -= u.mean(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = (lo_m - x) / u, (hi_m - x) / u
        t_lo = np.where(u > 0, a, np.where(u < 0, b, -np.inf)).max(axis=1)
        t_hi = np.where(u > 0, b, np.where(u < 0, a, np.inf)).min(axis=1)
        t = t_lo + rng.random(chains) * np.maximum(t_hi - t_lo, 0.0)
        # the chord's ends are exact up to rounding (~1e-17): clip keeps every point inside the bounds exactly
        h[:, moving] = np.clip(x + t[:, None] * u, lo_m, hi_m)
        if step >= BURN_IN_PER_DOMAIN * m and (step - BURN_IN_PER_DOMAIN * m) % m == m - 1:
            out.append(h.copy())
    return np.concatenate(out)[:size]


def _table(h: np.ndarray, names, scales: np.ndarray) -> pd.DataFrame:
    """One row per (mixture, scale), mixture by mixture; a run is a distinct (mixture, N), as ``load_runs`` counts."""
    n, n_scales = len(h), len(scales)
    mixture = np.repeat(np.arange(n), n_scales)
    size, tokens = np.tile(scales[:, 0], n), np.tile(scales[:, 1], n)
    _, size_index = np.unique(scales[:, 0], return_inverse=True)
    run = mixture * (int(size_index.max()) + 1) + np.tile(size_index, n)
    _, run = np.unique(run, return_inverse=True)
    frame = pd.DataFrame({RUN_COLUMN: run.astype(np.int64), MIXTURE_COLUMN: mixture})
    weights = pd.DataFrame(np.repeat(h, n_scales, axis=0), columns=list(names))
    frame = pd.concat([frame, weights], axis=1)
    frame[N_COLUMN], frame[D_COLUMN] = size, tokens
    return frame


def _show(h: np.ndarray, names) -> str:
    return ", ".join(f"{d} = {w:.6g}" for d, w in zip(names, h))
