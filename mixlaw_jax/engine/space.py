"""A law's coordinates: the map between search and law coordinates, bounds and random starts.

Three coordinate systems, one name each:

- **search coordinates** ``z``: an unconstrained vector in R^P, what the optimiser moves;
- **law coordinates** ``u``: the law's own flat vector, the log of each positive parameter and the value of the
  others; what ``Law.terms`` takes (by name, ``Law.unflatten``) and what a ``FitResult`` stores
  (``FitResult.coordinates``);
- **parameter values**: the published parameters, exp of the positive ones, after the law's ``report`` transform
  (``Law.parameter_values``; ``FitResult.params``).

Each search coordinate maps to its law coordinate (:meth:`ParamSpace.to_law`; :meth:`ParamSpace.from_law` is the
inverse) through

    unbounded:        u = z
    bounds (lo, hi):  u = lo + (hi - lo) * sigmoid(z)
    bounds (lo, inf): u = lo + softplus(z)
    bounds (-inf, hi): u = hi - softplus(-z)

    positive offset in log space: u = exp(z)

(in log-space fits the law's offset E must stay positive for log L to be defined). Bounds are given on the values
of the law's parameters (exp(u) for a positive parameter, u otherwise; before any ``report`` transform) and
converted to law coordinates. A parameter whose law coordinate ends within ``BOUND_TOL`` (relative to the bound's
width) of a bound is reported as at its bound.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import MixlawError
from ..laws import Law

BOUND_TOL = 1e-4
#: Jitter of a domain-tied start's per-domain coordinates, as a fraction of their init width (``sample``; 0.1 gave
#: the results quoted at ``options.Search``).
TIED_JITTER = 0.1
#: Values beyond these magnitudes are reported as extreme (a term switched on just outside the data).
EXTREME_EXPONENT = 20.0
EXTREME_LOG_COEFFICIENT = 50.0

IDENTITY, SIGMOID, LOWER, UPPER, EXP = 0, 1, 2, 3, 4


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ParamSpace:
    """Flat coordinate layout of one law for k domains: the map between search coordinates z and law coordinates u,
    bounds and init ranges (module docstring)."""

    law: Law = dataclasses.field(metadata=dict(static=True))
    k: int = dataclasses.field(metadata=dict(static=True))
    loss_space: str = dataclasses.field(metadata=dict(static=True))
    #: per log term: (coordinates that set its level, sign), or None where the law declares none or one of those
    #: coordinates is bounded (``Law.term_scales``)
    term_scales: tuple = dataclasses.field(metadata=dict(static=True))
    kind: np.ndarray  # (P,) transform code per coordinate
    lo: np.ndarray  # (P,) lower bound in law coordinates (may be -inf)
    hi: np.ndarray  # (P,) upper bound in law coordinates (may be +inf)
    init_lo: np.ndarray  # (P,) init range in law coordinates
    init_hi: np.ndarray
    centre_exponent: np.ndarray  # (P,) index of the exponent that centres this coordinate's init, or -1
    centre_of: np.ndarray  # (P,) 0: none, 1: mean log N, 2: mean log D
    first_of_param: np.ndarray  # (P,) first coordinate of its parameter (domain 0 of a per-domain one)

    @property
    def size(self) -> int:
        return len(self.kind)

    @property
    def names(self) -> list[str]:
        return self.law.names(self.k)

    @jax.jit  # one program: eager, its ~12 operations each compiled for the first call of a process
    def to_law(self, z: jax.Array) -> jax.Array:
        """z -> law coordinates u (vectorised over leading axes)."""
        lo = jnp.where(jnp.isfinite(self.lo), self.lo, 0.0)
        hi = jnp.where(jnp.isfinite(self.hi), self.hi, 0.0)
        options = [z, lo + (hi - lo) * jax.nn.sigmoid(z), lo + jax.nn.softplus(z), hi - jax.nn.softplus(-z), jnp.exp(z)]
        return jnp.select([self.kind == c for c in range(5)], options)

    @jax.jit
    def from_law(self, u: jax.Array) -> jax.Array:
        """Law coordinates -> z (inverse of :meth:`to_law`); values on or past a bound map just inside it."""
        u = jnp.asarray(u, dtype=jnp.float64)
        finite_lo, finite_hi = jnp.isfinite(self.lo), jnp.isfinite(self.hi)
        lo = jnp.where(finite_lo, self.lo, 0.0)
        hi = jnp.where(finite_hi, self.hi, 0.0)
        width = jnp.where(finite_lo & finite_hi, self.hi - self.lo, 1.0)
        eps = 1e-12
        frac = jnp.clip((u - lo) / width, eps, 1 - eps)

        def softplus_inv(v):
            v = jnp.maximum(v, eps)
            return jnp.where(v > 30, v, jnp.log(jnp.expm1(jnp.minimum(v, 30))))

        options = [
            u,
            jnp.log(frac) - jnp.log1p(-frac),
            softplus_inv(u - lo),
            -softplus_inv(hi - u),
            jnp.log(jnp.maximum(u, 1e-300)),
        ]
        return jnp.select([jnp.asarray(self.kind) == c for c in range(5)], options)

    def law_coordinates(self, z: jax.Array) -> dict:
        """z -> the law coordinates u by name (``Law.unflatten``), as ``Law.terms`` takes them."""
        return self.law.unflatten(self.to_law(z), self.k)

    @partial(jax.jit, static_argnames=("n", "tied"))  # one compiled program, not op by op
    def sample(
        self, key: jax.Array, n: int, mean_log_n: float = 0.0, mean_log_d: float = 0.0, tied: bool = False
    ) -> jax.Array:
        """n random starts, as search coordinates z (n, P): uniform in the init box (law coordinates), then centred.

        ``tied``: every other start (the even ones) is domain-tied: each per-domain parameter takes its domain-0
        draw in every domain, plus a uniform jitter of +-TIED_JITTER / 2 of its init width (kept in the box).
        A centred log-coefficient c (``Param.init_centre``) is shifted by exponent * mean log N (or D),
        so that its sampled range is the log of the power term's size at the table's centre.
        """
        width = self.init_hi - self.init_lo
        key, jitter_key = jax.random.split(key) if tied else (key, None)
        u = self.init_lo + width * jax.random.uniform(key, (n, self.size), jnp.float64)
        if tied:
            jitter = TIED_JITTER * width * jax.random.uniform(jitter_key, (n, self.size), jnp.float64, -0.5, 0.5)
            shared = jnp.clip(u[:, self.first_of_param] + jitter, self.init_lo, self.init_hi)
            u = jnp.where((jnp.arange(n) % 2 == 0)[:, None], shared, u)
        centre = jnp.select([self.centre_of == 1, self.centre_of == 2], [mean_log_n, mean_log_d], 0.0)
        exponent = u[:, jnp.maximum(self.centre_exponent, 0)]
        u = u + jnp.where(self.centre_exponent >= 0, exponent * centre, 0.0)
        return self.from_law(jnp.clip(u, self.lo, self.hi))

    @property
    def offset_index(self) -> int | None:
        """Position of the law's offset (E) in the flat vector, or None."""
        if self.law.offset is None:
            return None
        return self.names.index(self.law.offset)

    def scale_terms(self, z: jax.Array, log_s: jax.Array) -> jax.Array:
        """z with log term m multiplied by exp(log_s[..., m]) for every m with a level (``term_scales``)."""
        for m, scale in enumerate(self.term_scales):
            if scale is not None:
                coordinates, sign = scale
                z = z.at[..., np.array(coordinates)].add(sign * log_s[..., m, None])
        return z

    def shift_offset(self, z: jax.Array, shift: jax.Array) -> jax.Array:
        """z with the offset's value moved by ``shift`` (clipped to its bounds); z (..., P), shift (...)."""
        i = self.offset_index
        u = self.to_law(z)
        moved = jnp.clip(u[..., i] + shift, self.lo[i], self.hi[i])
        return self.from_law(u.at[..., i].set(moved))

    def at_bounds(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P,) masks of the law coordinates u within ``BOUND_TOL`` (relative to the bound's width, 1 for a half-open
        one) of their lower and of their upper bound."""
        u = np.asarray(u)
        width = np.where(np.isfinite(self.hi - self.lo), self.hi - self.lo, 1.0)
        lower = np.isfinite(self.lo) & (u - self.lo <= BOUND_TOL * width)
        upper = ~lower & np.isfinite(self.hi) & (self.hi - u <= BOUND_TOL * width)
        return lower, upper

    def flags(self, u: np.ndarray) -> list[str]:
        """Parameters at a bound (law coordinates u) or at an extreme value (parameter values), as text."""
        notes = []
        at_lower, at_upper = self.at_bounds(u)
        positive = np.concatenate([np.full(p.size(self.k), p.positive) for p in self.law.params])
        for name, value, low, high, pos in zip(self.names, np.asarray(u), at_lower, at_upper, positive):
            with np.errstate(over="ignore"):
                shown = np.exp(value) if pos else value
            if low:
                notes.append(f"{name}={shown:.4g} at lower bound")
            elif high:
                notes.append(f"{name}={shown:.4g} at upper bound")
        reported = self.law.parameter_values(self.law.unflatten(np.asarray(u), self.k))
        fitted = {p.name for p in self.law.params}
        for name, values in reported.items():
            for i, v in enumerate(np.atleast_1d(values)):
                label = f"{name}[{i}]" if np.ndim(values) else name
                exponent = name.startswith(("gamma", "alpha", "beta"))
                with np.errstate(divide="ignore"):
                    log_size = abs(np.log(abs(v))) if v != 0 else np.inf
                # coefficients converted from power-mean coordinates (C_A = P^tau) are tiny or huge whenever
                # |gamma_A| is small or large; only the coefficients fitted as such are judged by size
                coefficient = not exponent and name != self.law.offset and name in fitted
                if (exponent and abs(v) > EXTREME_EXPONENT) or (coefficient and log_size > EXTREME_LOG_COEFFICIENT):
                    notes.append(f"{label}={v:.4g} extreme")
                elif name == self.law.offset and v < 0:
                    notes.append(f"{label}={v:.4g} negative")
        return notes


def _value_bounds(name: str, pair) -> tuple[float, float]:
    """A parameter's (low, high) value bounds as floats; ±inf leaves a side open, NaN and non-numbers are refused."""
    if isinstance(pair, (str, bytes, Mapping)) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise MixlawError(f"bounds for {name!r} must be a pair (low, high), not {pair!r}")
    out = []
    for side, value in zip(("low", "high"), pair):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or np.isnan(value):
            raise MixlawError(f"bounds for {name!r}: the {side} bound must be a number (±inf for none), not {value!r}")
        out.append(float(value))
    return out[0], out[1]


def make_space(
    law: Law, k: int, loss_space: str = "raw", bounds: str | None | Mapping[str, tuple[float, float]] = "default"
) -> ParamSpace:
    """Lay out the coordinates of ``law`` for k domains.

    Args:
      bounds: ``"default"`` for the law's plausible ranges (exponents, offset), ``None`` for an
        unbounded fit, or a dict ``name -> (low, high)`` of value bounds (overriding the defaults
        for the names it gives; ``(-inf, inf)`` removes one).
    """
    if bounds is None:
        value_bounds = {}
    elif isinstance(bounds, str):
        if bounds != "default":
            raise MixlawError(f"bounds must be 'default', None or a dict, not {bounds!r}")
        value_bounds = {p.name: p.bounds for p in law.params if p.bounds is not None}
    else:
        names = {p.name for p in law.params}
        unknown = set(bounds) - names
        if unknown:
            raise MixlawError(
                f"bounds name unknown parameters {sorted(unknown)} of law {law.name!r}; "
                f"parameters: {', '.join(p.name for p in law.params)}"
            )
        value_bounds = {p.name: p.bounds for p in law.params if p.bounds is not None}
        value_bounds.update({n: _value_bounds(n, b) for n, b in bounds.items()})

    kind, lo, hi, ilo, ihi, c_exp, c_of, first = [], [], [], [], [], [], [], []
    starts = np.cumsum([0] + [p.size(k) for p in law.params])
    position = {p.name: int(starts[i]) for i, p in enumerate(law.params)}
    for p in law.params:
        b_lo, b_hi = value_bounds.get(p.name, (-np.inf, np.inf))
        if b_lo >= b_hi:
            raise MixlawError(f"bounds for {p.name!r}: low {b_lo} must be below high {b_hi}")
        if p.positive and b_hi <= 0:
            raise MixlawError(
                f"bounds for {p.name!r}: the parameter is positive, so its high bound must be > 0, not {b_hi}"
            )
        positive_offset = loss_space == "log" and p.name == law.offset
        if p.positive:
            with np.errstate(divide="ignore"):
                b_lo, b_hi = np.log(max(b_lo, 0.0)), np.log(b_hi)
        elif positive_offset:
            b_lo = max(b_lo, 0.0)
        i_lo, i_hi = max(p.init[0], b_lo), min(p.init[1], b_hi)
        if i_lo >= i_hi:  # init box outside the bounds: sample inside the bounds instead
            i_lo, i_hi = b_lo, b_hi
        if np.isfinite(b_lo) and np.isfinite(b_hi):
            code = SIGMOID
        elif np.isfinite(b_lo):
            code = LOWER
        elif np.isfinite(b_hi):
            code = UPPER
        else:
            code = IDENTITY
        if positive_offset and code == LOWER and b_lo == 0.0:
            code = EXP  # log L needs E > 0: fit log E
        size = p.size(k)
        if p.init_centre is not None:
            c_exp += [position[p.init_centre[0]]] * size
            c_of += [1 if p.init_centre[1] == "n" else 2] * size
        else:
            c_exp += [-1] * size
            c_of += [0] * size
        kind += [code] * size
        first += [position[p.name]] * size
        lo += [b_lo] * size
        hi += [b_hi] * size
        ilo += [i_lo] * size
        ihi += [i_hi] * size
    kind = np.array(kind)
    size_of = {p.name: p.size(k) for p in law.params}
    term_scales = ()
    for scale in law.term_scales or ():
        coordinates = () if scale is None else tuple(range(position[scale[0]], position[scale[0]] + size_of[scale[0]]))
        free = bool(coordinates) and all(kind[i] == IDENTITY for i in coordinates)
        term_scales += ((coordinates, float(scale[1])) if free else None,)
    return ParamSpace(
        law,
        k,
        loss_space,
        term_scales,
        kind,
        np.array(lo, float),
        np.array(hi, float),
        np.array(ilo, float),
        np.array(ihi, float),
        np.array(c_exp),
        np.array(c_of),
        np.array(first),
    )
