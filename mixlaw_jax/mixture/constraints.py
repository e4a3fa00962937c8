"""The feasible set of the optimal-mixture problem, its exact projection, and the validation of a request.

Shukor et al. 2025 ("Scaling Laws for Optimal Data Mixtures") find optimal domain weights by minimising a fitted
law (their eq. 2.4, additive, or eq. 2.5, joint) over the simplex Δ_k = {h : h_i >= 0, Σ_i h_i = 1}. Here the
minimum is taken over the bounded simplex

    F(D) = {h ∈ R^k : Σ_i h_i = 1,  lo_i <= h_i <= hi_i(D)},   hi_i(D) = min(u_i, e_max U_i / D),

with [lo_i, u_i] the weight bounds of domain i (by default the range of h_i seen in the fitted runs, since a law is
no evidence about mixtures it never saw; a fixed domain has lo_i = u_i), U_i its unique tokens and e_max the most
epochs of a domain allowed: domain i then supplies h_i D <= e_max U_i tokens. A ``token_budget`` given as
{domain: U_i} has e_max = 1 (a weight above U_i / D would repeat data, which the laws without U do not model); a
:class:`DataLimits` carries its own ``max_epochs`` (for a law that prices repeats, ``repetition_aware``, the pools
then go to the law and the cap is only the one asked for). F(D) is empty unless lo_i <= hi_i(D) for every i and
Σ_i lo_i <= 1 <= Σ_i hi_i(D): a budget D that the pools cannot supply even at e_max epochs (Σ_i hi_i(D) < 1) is an
error naming the domains, their caps and D, never a clip.

The Euclidean projection Π_F(v) = argmin_{h ∈ F} ||h - v||² is h_i = clip(v_i - λ, lo_i, hi_i), with λ the root
of φ(λ) = Σ_i clip(v_i - λ, lo_i, hi_i) - 1 (a continuous quadratic knapsack problem; Kiwiel 2008, "Breakpoint
searching algorithms for the continuous quadratic knapsack problem"). φ is non-increasing and piecewise linear with
breakpoints {v_i - hi_i, v_i - lo_i}: λ is found exactly by evaluating φ at the 2k breakpoints and interpolating
linearly on the segment where it crosses 0 (O(k²) work, no iteration count to tune). The rounding left in Σ_i h_i
is then put on the coordinates strictly inside their bounds, so lo <= Π_F(v) <= hi exactly and
|Σ_i Π_F(v)_i - 1| ~ 1e-16.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..data import index_of
from ..errors import MixlawError
from ..laws import Law, get_law
from ..options import real_number
from ..results import FitResult
from .result import WEIGHTED

#: feasibility tolerance on lo_i <= hi_i and Σ lo <= 1 <= Σ hi.
FEASIBILITY_TOL = 1e-12
#: a bound counts as active at h* when h* is within this distance of it.
ACTIVE_TOL = 1e-6


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


def active_bounds(h: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Which bound holds each h_i: ``"fixed"`` (lower = upper), ``"lower"`` / ``"upper"`` (h_i within ACTIVE_TOL of
    it) or ``""`` (free); an array of strings shaped like h."""
    active = np.full(h.shape, "", dtype="<U5")
    active[h - lower <= ACTIVE_TOL] = "lower"
    active[upper - h <= ACTIVE_TOL] = "upper"
    active[upper - lower <= ACTIVE_TOL] = "fixed"
    return active


# ----------------------------------------------------------------------------------------------------------------
# data limits


@dataclasses.dataclass(frozen=True)
class DataLimits:
    """The unique tokens each limited domain can supply, and the most epochs of it allowed.

    ``optimal_mixture`` / ``compute_optimal`` (``token_budget=DataLimits(...)``) cap every budget D at
    h_i <= max_epochs · U_i / D, and raise a :class:`MixlawError` naming the domains, their caps and D when the caps
    sum to less than 1 (D cannot be trained on even at the most repetition allowed). A law that prices repeats
    (``repetition_aware``) also reads the pools U_i; one that does not needs ``max_epochs`` (1: no repeat).
    ``design_swarm`` (``data_limits=``) scales the pools down for proxies of the target run of ``target_tokens``
    (``mixlaw_jax.design``).

    Attributes:
      unique_tokens: {domain: U_i}, the unique tokens of each limited domain (the domains not named are unlimited).
      target_tokens: D_T, the target run's training tokens, for ``design_swarm`` (the optimal-mixture functions do
        not read it: their caps use each budget's own D). None: not given.
      max_epochs: e_max: every mixture keeps h_i D / U_i <= e_max (None: no cap).
    """

    unique_tokens: Mapping[str, float]
    target_tokens: float | None = None
    max_epochs: float | None = None

    def pools(self, names: tuple[str, ...]) -> np.ndarray:
        """(k,) U_i, +inf for a domain without a limit; a MixlawError naming a bad domain or value."""
        if not isinstance(self.unique_tokens, Mapping) or not self.unique_tokens:
            raise MixlawError(
                f"DataLimits.unique_tokens must be a non-empty dict {{domain: tokens}}, not {self.unique_tokens!r}"
            )
        u = domain_vector(self.unique_tokens, names, "DataLimits.unique_tokens", default=np.inf)
        bad = [i for i in range(len(names)) if not (u[i] > 0)]
        if bad:
            raise MixlawError(f"DataLimits.unique_tokens of {names[bad[0]]!r} must be > 0, not {float(u[bad[0]])!r}")
        return u

    def proxy_pools(self, proxy_tokens) -> dict[str, np.ndarray]:
        """{domain: U_i^P = U_i · D_P / D_T}: the subsampled pools a proxy of ``proxy_tokens`` D_P (a number or an
        array) should draw from, so that every mixture repeats each limited domain as the target run would (Zhou
        et al. 2026, "Repetition Mismatch": proxies that match the target's repetition rates recover its optimum)."""
        target_tokens, _ = self.checked()
        d = np.asarray(proxy_tokens, dtype=float)
        if not (np.isfinite(d).all() and (d > 0).all()):
            raise MixlawError(f"proxy_tokens must be finite and > 0, not {proxy_tokens!r}")
        pools = self.pools(tuple(self.unique_tokens))
        return {domain: u * d / target_tokens for domain, u in zip(self.unique_tokens, pools)}

    def epochs_cap(self) -> float | None:
        """e_max, validated (> 0), or None."""
        if self.max_epochs is None:
            return None
        e = real_number(self.max_epochs, "DataLimits.max_epochs")
        if e <= 0:
            raise MixlawError(f"DataLimits.max_epochs must be > 0, not {e!r}")
        return e

    def checked(self) -> tuple[float, float | None]:
        """(D_T, e_max), validated; D_T is required (a design scales the pools to it)."""
        if self.target_tokens is None:
            raise MixlawError("DataLimits.target_tokens (the target run's D) is needed to scale pools for proxies")
        d = real_number(self.target_tokens, "DataLimits.target_tokens")
        if d <= 0:
            raise MixlawError(f"DataLimits.target_tokens must be > 0, not {d!r}")
        return d, self.epochs_cap()


# ----------------------------------------------------------------------------------------------------------------
# the feasible sets F(D)


class Box(NamedTuple):
    """The feasible sets F(D_b) of B budgets."""

    lower: np.ndarray  #: (B, k) lo_i
    upper: np.ndarray  #: (B, k) hi_i(D_b)
    feasible: np.ndarray  #: (B,) whether F(D_b) is non-empty
    messages: list  #: (B,) why F(D_b) is empty (naming the domains and numbers), or None

    def raise_if_infeasible(self) -> None:
        """A MixlawError with the first budget's reason, if some F(D_b) is empty."""
        if not self.feasible.all():
            raise MixlawError(self.messages[int(np.argmin(self.feasible))])


@dataclasses.dataclass(frozen=True)
class Constraints:
    """Weight bounds, fixed domains and token limits of one request: the feasible sets F(D) (module docstring).

    Made (and validated) by :meth:`from_arguments`.

    Attributes:
      domains: the k domain names, in the order of the fit's weight columns.
      lower, upper: (k,) weight bounds lo_i, u_i; a fixed domain has lower = upper = its weight.
      source: (k,) what set each domain's bounds ("simplex", "data range", "weight_bounds", "fixed at w"), named
        in the messages about an empty F(D).
      tokens: (k,) unique tokens U_i per domain (np.inf = unlimited), or None without a cap from them.
      settings: the arguments as JSON values, for ``MixtureResult.settings``: ``bounds`` (the weight bounds),
        ``token_budget``, ``fixed``, and ``max_epochs`` where a :class:`DataLimits` gave one.
      max_epochs: e_max of the caps h_i <= e_max U_i / D (1 for a {domain: U_i} budget).
    """

    domains: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    source: tuple[str, ...]
    tokens: np.ndarray | None
    settings: dict
    max_epochs: float = 1.0

    def __post_init__(self):
        _read_only(self.lower, self.upper, self.tokens)

    @classmethod
    def from_arguments(cls, fit: FitResult, weight_bounds, fixed, token_budget) -> Constraints:
        """Validate ``weight_bounds``, ``fixed`` and ``token_budget`` (as in :func:`optimal_mixture`) for ``fit``.

        Raises:
          MixlawError: naming the argument, the domain and the value at fault.
        """
        return cls.for_domains(
            tuple(fit.weight_columns),
            weight_bounds=weight_bounds,
            fixed=fixed,
            token_budget=token_budget,
            weight_range=fit.weight_range,
        )

    @classmethod
    def for_domains(
        cls, domains: tuple[str, ...], *, weight_bounds=None, fixed=None, token_budget=None, weight_range=None
    ) -> Constraints:
        """Validate ``weight_bounds``, ``fixed`` and ``token_budget`` for the named domains, without a fit (the
        experiment design uses this); ``weight_bounds="data"`` needs ``weight_range`` (k, 2), the runs' range.

        Raises:
          MixlawError: naming the argument, the domain and the value at fault.
        """
        domains = tuple(domains)
        lower, upper, source, bounds_setting = _weight_bounds(weight_bounds, domains, weight_range)
        fixed_setting = _fix_domains(fixed, domains, lower, upper, source)
        tokens, max_epochs = _token_limits(token_budget, domains)
        if max_epochs is None:  # a DataLimits without a cap
            tokens = None
        settings = {"bounds": bounds_setting, "token_budget": _tokens_setting(tokens, domains), "fixed": fixed_setting}
        if isinstance(token_budget, DataLimits) and max_epochs is not None:
            settings["max_epochs"] = max_epochs
        return cls(domains, lower, upper, tuple(source), tokens, settings, 1.0 if max_epochs is None else max_epochs)

    @property
    def k(self) -> int:
        return len(self.domains)

    def at(self, d: np.ndarray | None) -> Box:
        """F(D_b) for training tokens d (B,), or for one budget when d is None (a law without D)."""
        if self.tokens is not None and d is None:
            raise MixlawError("token_budget needs D (the caps are e_max U_i / D)")
        n_budgets = 1 if d is None else len(d)
        lower = np.broadcast_to(self.lower, (n_budgets, self.k)).copy()
        upper = np.broadcast_to(self.upper, (n_budgets, self.k)).copy()
        upper_source = [list(self.source) for _ in range(n_budgets)]
        if self.tokens is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                cap = self.max_epochs * self.tokens[None, :] / d[:, None]
            for b, i in zip(*np.nonzero(cap < upper)):  # for a fixed domain this makes lo > hi: reported
                upper_source[b][i] = (
                    f"token budget {self.tokens[i]:.6g} / D = {d[b]:.6g}"
                    if self.max_epochs == 1.0
                    else f"at most {self.max_epochs:g} epochs of {self.tokens[i]:.6g} unique tokens / D = {d[b]:.6g}"
                )
                upper[b, i] = cap[b, i]
        messages = [
            _infeasibility(self.domains, lower[b], upper[b], self.source, upper_source[b], None if d is None else d[b])
            for b in range(n_budgets)
        ]
        return Box(lower, upper, np.asarray([m is None for m in messages]), messages)


def _infeasibility(domains, lo, hi, lo_source, hi_source, d) -> str | None:
    """Why {h : Σ h = 1, lo <= h <= hi} is empty, naming the domains, bounds and what set them; None if it is not."""
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


def _weight_bounds(weight_bounds, domains: tuple[str, ...], weight_range) -> tuple:
    """(lower (k,), upper (k,), source (k,) list, JSON setting) of the ``weight_bounds`` argument, within [0, 1]."""
    k = len(domains)
    if weight_bounds is None or (isinstance(weight_bounds, str) and weight_bounds == "simplex"):
        lower, upper, source, setting = np.zeros(k), np.ones(k), ["simplex"] * k, "simplex"
    elif isinstance(weight_bounds, str) and weight_bounds == "data":
        lower, upper, source, setting = _data_bounds(weight_range, k)
    elif isinstance(weight_bounds, str):
        raise MixlawError(
            f"weight_bounds must be 'data', 'simplex', a dict {{domain: (lo, hi)}} or a (k, 2) array, "
            f"not {weight_bounds!r}"
        )
    elif isinstance(weight_bounds, Mapping):
        lower, upper, source, setting = _bounds_of_domains(weight_bounds, domains)
    else:
        lower, upper, source, setting = _bounds_array(weight_bounds, domains)
    for i in range(k):
        if not (np.isfinite(lower[i]) and np.isfinite(upper[i])) or lower[i] < 0 or upper[i] > 1:
            raise MixlawError(
                f"weight_bounds of domain {domains[i]!r} must lie in [0, 1], not ({lower[i]}, {upper[i]})"
            )
    return lower, upper, source, setting


def _data_bounds(weight_range, k: int) -> tuple:
    """weight_bounds="data": the range of h_i in the fitted runs (``fit.weight_range``)."""
    if weight_range is None:
        raise MixlawError(
            "weight_bounds='data' means the range of each weight in fitted runs, and there are none here; give "
            "'simplex' or per-domain bounds {domain: (lo, hi)}"
        )
    wr = np.asarray(weight_range, dtype=float)
    if wr.shape != (k, 2):
        raise MixlawError(f"fit.weight_range has shape {wr.shape}, expected ({k}, 2)")
    return wr[:, 0].copy(), wr[:, 1].copy(), ["data range"] * k, "data"


def _bounds_of_domains(weight_bounds: Mapping, domains: tuple[str, ...]) -> tuple:
    """weight_bounds={domain: (lo, hi)}; the other domains get [0, 1]."""
    k = len(domains)
    lower, upper, source = np.zeros(k), np.ones(k), ["simplex"] * k
    for name, pair in weight_bounds.items():
        i = index_of(domains, name, "domain")
        try:
            a, b = pair
        except (TypeError, ValueError):
            raise MixlawError(f"weight_bounds[{name!r}] must be a pair (lo, hi), not {pair!r}") from None
        lower[i], upper[i] = _number(a, f"weight_bounds[{name!r}] lower"), _number(b, f"weight_bounds[{name!r}] upper")
        source[i] = "weight_bounds"
    setting = {name: [float(lower[domains.index(name)]), float(upper[domains.index(name)])] for name in weight_bounds}
    return lower, upper, source, setting


def _bounds_array(weight_bounds, domains: tuple[str, ...]) -> tuple:
    """weight_bounds as a (k, 2) array of (lo, hi) rows."""
    k = len(domains)
    try:
        arr = np.asarray(weight_bounds, dtype=float)
    except (TypeError, ValueError):
        raise MixlawError(
            f"weight_bounds must be 'data', 'simplex', a dict or a (k, 2) array, not {weight_bounds!r}"
        ) from None
    if arr.shape != (k, 2):
        raise MixlawError(
            f"weight_bounds has shape {arr.shape}; expected ({k}, 2) for the k = {k} domains ({', '.join(domains)})"
        )
    return arr[:, 0].copy(), arr[:, 1].copy(), ["weight_bounds"] * k, arr.tolist()


def _fix_domains(fixed, domains: tuple[str, ...], lower, upper, source) -> dict | None:
    """Hold the domains of ``fixed`` ({domain: weight}) at their weight (lower = upper, in place); the JSON setting."""
    if fixed is None:
        return None
    if not isinstance(fixed, Mapping):
        raise MixlawError(f"fixed must be a dict {{domain: weight}}, not {fixed!r}")
    setting = {}
    for name, v in fixed.items():
        i = index_of(domains, name, "domain")
        value = _number(v, f"fixed[{name!r}]")
        if not 0 <= value <= 1:
            raise MixlawError(f"fixed weight of domain {name!r} must lie in [0, 1], not {value}")
        lower[i] = upper[i] = value
        source[i] = f"fixed at {value:.6g}"
        setting[name] = value
    return setting


def _token_limits(token_budget, domains: tuple[str, ...]) -> tuple[np.ndarray | None, float | None]:
    """(unique tokens U_i (k,) of ``token_budget``, np.inf = unlimited; e_max): a {domain: U_i} dict or length-k array
    has e_max = 1, a :class:`DataLimits` its ``max_epochs`` (None: no cap); (None, None) without a budget."""
    if token_budget is None:
        return None, None
    if isinstance(token_budget, DataLimits):
        return token_budget.pools(domains), token_budget.epochs_cap()
    tokens = domain_vector(token_budget, domains, "token_budget", default=np.inf)
    if np.isnan(tokens).any() or (tokens < 0).any():
        bad = [f"{domains[i]!r}: {tokens[i]}" for i in range(len(domains)) if not tokens[i] >= 0]
        raise MixlawError(f"token_budget must be >= 0 (np.inf for unlimited): {', '.join(bad)}")
    return tokens, 1.0


def _tokens_setting(tokens: np.ndarray | None, domains: tuple[str, ...]) -> dict | None:
    """{domain: U_i} of the limited domains, as JSON values; None without pools."""
    if tokens is None:
        return None
    return {domains[i]: float(tokens[i]) for i in range(len(domains)) if np.isfinite(tokens[i])}


def domain_vector(value, domains: tuple[str, ...], what: str, *, default: float) -> np.ndarray:
    """A per-domain vector from a dict {domain: value} (others = default) or a length-k sequence."""
    k = len(domains)
    if isinstance(value, Mapping):
        out = np.full(k, default, dtype=float)
        for name, v in value.items():
            out[index_of(domains, name, "domain")] = _number(v, f"{what}[{name!r}]")
        return out
    try:
        out = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise MixlawError(
            f"{what} must be a dict {{domain: value}} or a sequence of {k} numbers, not {value!r}"
        ) from None
    if out.shape != (k,):
        raise MixlawError(f"{what} has shape {out.shape}; the fit has k = {k} domains ({', '.join(domains)})")
    return out


def _read_only(*arrays) -> None:
    """Lock the arrays of a frozen dataclass against writes (None is skipped)."""
    for a in arrays:
        if a is not None:
            a.setflags(write=False)


def _number(v, what: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise MixlawError(f"{what} must be a number, not {v!r}") from None


# ----------------------------------------------------------------------------------------------------------------
# the request: law, targets and their weights, constraints, reference mixture


@dataclasses.dataclass(frozen=True)
class Request:
    """One validated call of ``optimal_mixture``, ``compute_optimal`` or ``replicate_mixtures`` (``make_request``).

    Attributes:
      law: the fitted law.
      targets: the T targets optimised; the objectives are each of them, then ``"weighted"``.
      coordinates: (T, P) the fit's law coordinates of those targets.
      weights: (T,) weights w_t of the weighted objective, summing to 1.
      constraints: the feasible sets F(D).
      reference: (k,) the mixture that h* is compared with.
      settings: the request as JSON values, for ``MixtureResult.settings``.
      pools: (k,) the unique tokens U_i the law reads (a law with ``uses_u``: ``token_budget`` gives them, and they
        price repeats in the law; only a :class:`DataLimits`' ``max_epochs`` caps h then), or None.
    """

    law: Law
    targets: tuple[str, ...]
    coordinates: np.ndarray
    weights: np.ndarray
    constraints: Constraints
    reference: np.ndarray
    settings: dict
    pools: np.ndarray | None = None

    def __post_init__(self):
        _read_only(self.coordinates, self.weights, self.reference, self.pools)

    def log_u_of(self, q: int):
        """(q, k) log U for q problems of a law that reads the pools, else None."""
        if self.pools is None:
            return None
        with np.errstate(divide="ignore"):
            return jnp.asarray(np.broadcast_to(np.log(self.pools), (q, self.k)))

    @property
    def k(self) -> int:
        return self.constraints.k

    @property
    def domains(self) -> tuple[str, ...]:
        return self.constraints.domains

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.targets + (WEIGHTED,)

    @property
    def objective_weights(self) -> np.ndarray:
        """(O, T): objective o minimises Σ_t W_ot L_t; rows e_t for the targets alone, then w."""
        return np.concatenate([np.eye(len(self.targets)), self.weights[None, :]], axis=0)


def make_request(fit: FitResult, *, targets, target_weights, weight_bounds, token_budget, fixed, reference) -> Request:
    """Validate the arguments shared by the public functions (as in :func:`optimal_mixture`).

    Raises:
      MixlawError: naming the argument and the value at fault.
    """
    law = _mixture_law(fit)
    chosen = _targets(fit, targets)
    weights = _target_weights(target_weights, chosen)
    pools, caps = None, token_budget
    if law.uses_u:  # the law prices repeats: token_budget gives its pools; only a DataLimits' max_epochs caps h
        if token_budget is None:
            raise MixlawError(
                f"law {law.name!r} reads the unique tokens per domain: pass token_budget={{domain: U_i}} (others "
                f"unlimited) or a DataLimits; repeats are then priced by the law instead of capped"
            )
        pools, _ = _token_limits(token_budget, tuple(fit.weight_columns))
        if (pools <= 0).any():
            i = int(np.argmax(pools <= 0))
            raise MixlawError(f"token_budget of {fit.weight_columns[i]!r} must be > 0 for law {law.name!r}")
        caps = token_budget if isinstance(token_budget, DataLimits) else None
    elif isinstance(token_budget, DataLimits) and token_budget.epochs_cap() is None:
        raise MixlawError(
            f"law {law.name!r} does not price repeats, so a DataLimits without max_epochs would leave its pools "
            f"unused: give max_epochs (1: no domain repeated)"
        )
    constraints = Constraints.from_arguments(fit, weight_bounds, fixed, caps)
    reference, reference_setting = _reference(reference, constraints.domains)
    settings = {
        "targets": list(chosen),
        "target_weights": weights.tolist(),
        **constraints.settings,
        "reference": reference_setting,
    }
    if pools is not None:
        settings["token_budget"] = {d: float(u) for d, u in zip(fit.weight_columns, pools) if np.isfinite(u)}
        settings["repeats"] = "priced by the law"
    coordinates = np.asarray(fit.coordinates, dtype=float)[[fit.targets.index(t) for t in chosen]]
    return Request(law, chosen, coordinates, weights, constraints, reference, settings, pools)


def _mixture_law(fit: FitResult) -> Law:
    """The fit's law, checked to depend on h and to match the fit's k and coordinates."""
    if not isinstance(fit, FitResult):
        raise MixlawError(f"fit must be a FitResult (mixlaw_jax.fit or load_fit), not {type(fit).__name__}")
    law = get_law(fit.law)
    if not law.uses_h:
        raise MixlawError(
            f"law {law.name!r} does not depend on the mixture (it has no per-domain parameters), so "
            f"it has no optimal mixture; fit a mixture law such as 'additive' or 'joint'"
        )
    k = fit.k
    if len(fit.weight_columns) != k:
        raise MixlawError(f"the fit has k = {k} but {len(fit.weight_columns)} weight columns")
    shape = np.shape(np.asarray(fit.coordinates, dtype=float))
    if shape != (len(fit.targets), law.n_params(k)):
        raise MixlawError(
            f"fit coordinates have shape {shape}; law {law.name!r} with k = {k} needs "
            f"({len(fit.targets)}, {law.n_params(k)})"
        )
    return law


def _targets(fit: FitResult, targets) -> tuple[str, ...]:
    """The targets to optimise: every target of the fit by default; a name or a list of distinct names."""
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
    if WEIGHTED in chosen:
        raise MixlawError(f"a target named {WEIGHTED!r} clashes with the name of the weighted objective")
    return tuple(chosen)


def _target_weights(target_weights, chosen: tuple[str, ...]) -> np.ndarray:
    """Weights w_t (T,) of the weighted objective, normalised to sum to 1 (equal by default)."""
    n_targets = len(chosen)
    if target_weights is None:
        return np.full(n_targets, 1.0 / n_targets)
    if isinstance(target_weights, Mapping):
        w = np.zeros(n_targets)
        for name, v in target_weights.items():
            w[index_of(chosen, name, "target (in target_weights)")] = _number(v, f"target_weights[{name!r}]")
    else:
        try:
            w = np.asarray(target_weights, dtype=float)
        except (TypeError, ValueError):
            raise MixlawError(f"target_weights must be a dict or {n_targets} numbers, not {target_weights!r}") from None
        if w.shape != (n_targets,):
            raise MixlawError(f"target_weights has shape {w.shape}; there are {n_targets} targets ({list(chosen)})")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise MixlawError(f"target_weights must be finite, >= 0 and not all 0, not {w.tolist()}")
    return w / w.sum()


def _reference(reference, domains: tuple[str, ...]) -> tuple[np.ndarray, str | list]:
    """The reference mixture (k,) (uniform by default) and its JSON setting."""
    if reference is None or (isinstance(reference, str) and reference == "uniform"):
        return np.full(len(domains), 1.0 / len(domains)), "uniform"
    ref = domain_vector(reference, domains, "reference", default=0.0)
    if not np.isfinite(ref).all() or (ref < 0).any() or abs(ref.sum() - 1) > 1e-6:
        raise MixlawError(
            f"reference must be a mixture (weights >= 0 summing to 1), not {ref.tolist()} (sum {ref.sum():.6g})"
        )
    return ref, ref.tolist()


# ----------------------------------------------------------------------------------------------------------------
# budgets


class Budgets(NamedTuple):
    """Validated budgets: model sizes n and training tokens d, each (B,) or None for a law without them."""

    n: np.ndarray | None
    d: np.ndarray | None
    count: int  #: B


def budget_array(value, what: str) -> np.ndarray | None:
    """A scalar or 1-D array of finite, positive budgets (N, D or C) as a 1-D float array; None stays None."""
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


def budgets(law: Law, N, D) -> Budgets:
    """N and D of the law's budgets, broadcast to a common length B (a scalar is repeated)."""
    n, d = budget_array(N, "N"), budget_array(D, "D")
    for uses, value, what in ((law.uses_n, n, "N"), (law.uses_d, d, "D")):
        if uses and value is None:
            raise MixlawError(f"law {law.name!r} needs {what}: pass {what}=...")
    sizes = {len(a) for a in (n, d) if a is not None and len(a) > 1}
    if len(sizes) > 1:
        raise MixlawError(f"N and D must be scalars or arrays of the same length, not lengths {len(n)} and {len(d)}")
    count = sizes.pop() if sizes else 1
    n = None if n is None else np.broadcast_to(n, (count,)).copy()
    d = None if d is None else np.broadcast_to(d, (count,)).copy()
    return Budgets(n, d, count)
