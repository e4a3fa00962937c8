"""What a law is: a parameter spec plus a pure function of (law coordinates, inputs).

The three coordinate systems of a law are described in ``engine.space``: search coordinates z, law coordinates u
(what ``terms`` takes, named) and parameter values (what ``Law.parameter_values`` reports).

Every law in this package has the additive shape

    L(N, D, h) = offset + sum_m exp(log_term_m(N, D, h)),

so a law returns ``(offset, log_terms)``. Raw-space residuals use ``offset + sum exp(log_terms)``;
log-space residuals (Hoffmann / Epoch style) use ``logsumexp(log offset, log_terms)``, which never
overflows. A user law may return its prediction directly (``Law.from_predict``), with no log terms.

A law whose mixture enters only through a few per-mixture quantities can say so (``Law.from_features``):

    log_terms(N, D, h) = combine(q, phi(theta, h), N, D),   phi in R^F,  q = the "row" parameters,

so that the engine evaluates phi and its Jacobian once per distinct mixture instead of once per row
(``engine.grouped``). ``terms`` is then that composition, and every other use of the law is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import MixlawError

Shape = Literal["scalar", "domain"]


class Inputs(NamedTuple):
    """Row inputs of a law: log N, log D, the mixture weights (rows x k) and, for data-constrained laws, the unique
    tokens available per domain.

    ``log_h`` holds log h with ``-inf`` where h = 0; use :func:`scaled_log_h` for ``gamma * log h``
    so that gradients stay finite at h = 0.

    ``log_u`` holds log U (rows, k_u): the unique tokens of each domain's pool (k_u = k for a mixture table, 1 for a
    table without mixtures), ``+inf`` for an unlimited pool; None (the default) when the table gives no pool sizes,
    which every law that does not declare ``uses_u`` ignores. Rows are the leading axis of every field, so the
    engine's gathering, padding and sharding of rows carries it (None is an empty pytree).
    """

    log_n: jax.Array
    log_d: jax.Array
    h: jax.Array
    log_h: jax.Array
    log_u: jax.Array | None = None

    @classmethod
    def from_arrays(cls, n, d, h, u=None) -> Inputs:
        """Inputs from N, D (rows,), h (rows, k) and optionally U (rows, k_u; +inf: unlimited) (:meth:`from_logs`)."""
        xp = jnp if any(isinstance(a, jax.Array) for a in (n, d, h, u)) else np
        log_u = None
        if u is not None:
            with np.errstate(divide="ignore"):
                log_u = xp.log(xp.asarray(u, float))
        return cls.from_logs(xp.log(xp.asarray(n, float)), xp.log(xp.asarray(d, float)), h, log_u)

    @classmethod
    def from_logs(cls, log_n, log_d, h, log_u=None) -> Inputs:
        """Inputs from log N, log D (rows,), h (rows, k) and optionally log U (rows, k_u); log h = -inf where h = 0.
        Host arrays are worked out in numpy (no compilation), JAX arrays (traced ones included) in JAX."""
        xp = jnp if any(isinstance(a, jax.Array) for a in (log_n, log_d, h, log_u)) else np
        h = xp.asarray(h, float)
        positive = h > 0
        log_h = xp.where(positive, xp.log(xp.where(positive, h, 1.0)), -xp.inf)
        if xp is np:  # a plain transfer: jnp.asarray would compile a staging program per shape
            return cls(*(_to_device(a) for a in (log_n, log_d, h, log_h)), None if log_u is None else _to_device(log_u))
        log_u = None if log_u is None else jnp.asarray(log_u, float)
        return cls(*(jnp.asarray(a) for a in (log_n, log_d, h, log_h)), log_u)


def _to_device(a) -> jax.Array:
    """A host array on the default device as float64, without compiling anything (``jnp.asarray`` compiles)."""
    return jax.device_put(np.asarray(a, float))


def scaled_log_h(log_h: jax.Array, gamma: jax.Array) -> jax.Array:
    """gamma * log h with exp(.) = h^gamma, and 0 * (-inf) treated as -inf (h = 0 contributes nothing)."""
    finite = jnp.isfinite(log_h)
    return jnp.where(finite, gamma * jnp.where(finite, log_h, 0.0), -jnp.inf)


@dataclasses.dataclass(frozen=True)
class Param:
    """One named parameter of a law.

    Attributes:
      name: the symbol of the law's paper (``E``, ``A``, ``alpha``, ``B``, ``beta`` of Hoffmann et al. 2022;
        ``C``, ``gamma`` of Shukor et al. 2025; ``c``, ``k``, ``t`` of Ye et al. 2024), or of the law's own
        coordinates where it is fitted in others (``A_pure``, ``tau_A``: ``laws.mixture``).
      shape: ``"scalar"`` or ``"domain"`` (one value per mixture domain, length k).
      positive: if True the parameter's law coordinate is its logarithm (value = exp(u)).
      init: (low, high) range of the law coordinate u (the log for a positive parameter) for random
        initialisation.
      bounds: default plausible (low, high) range of the parameter's *value* (exp(u) for a positive parameter,
        u otherwise) used by the default parameter bounds of a fit, or None for no default bound. Either end may
        be +-inf.
      init_centre: ``(exponent name, "n" or "d")`` for a log-coefficient c of a power term
        exp(c - exponent * log N): its init range is then the log of the term's size at the table's
        mean log N (or log D), and the sampled c is shifted by exponent * mean log N. Random starts then
        give terms of plausible size instead of exp(+-20).
    """

    name: str
    shape: Shape = "scalar"
    positive: bool = False
    init: tuple[float, float] = (0.0, 1.0)
    bounds: tuple[float, float] | None = None
    init_centre: tuple[str, str] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise MixlawError(f"a parameter's name must be a non-empty string, not {self.name!r}")
        if self.shape not in ("scalar", "domain"):
            raise MixlawError(f"parameter {self.name!r}: shape must be 'scalar' or 'domain', not {self.shape!r}")
        for what, pair in (("init", self.init), ("bounds", self.bounds)):
            if pair is None and what == "bounds":
                continue
            try:
                low, high = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise MixlawError(f"parameter {self.name!r}: {what} must be a pair (low, high), not {pair!r}") from None
            if not low < high or (what == "init" and not np.isfinite([low, high]).all()):
                raise MixlawError(
                    f"parameter {self.name!r}: {what} ({low}, {high}) must have low < high"
                    + (", both finite" if what == "init" else "")
                )
        if self.init_centre is not None and (len(self.init_centre) != 2 or self.init_centre[1] not in ("n", "d")):
            raise MixlawError(
                f"parameter {self.name!r}: init_centre must be (exponent name, 'n' or 'd'), not {self.init_centre!r}"
            )

    def size(self, k: int) -> int:
        return k if self.shape == "domain" else 1


TermsFn = Callable[[dict, Inputs], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class MixtureFeatures:
    """A law's split into per-mixture features and a per-row combination (see module docstring).

    Attributes:
      features: ``(params, x) -> phi`` of shape (F,) + row shape, reading only ``x.h`` and ``x.log_h``.
      combine: ``(row_params, phi, x) -> (offset, log_terms)``, reading only ``x.log_n`` and ``x.log_d``;
        ``row_params`` holds only the parameters named in ``row_params``.
      row_params: the parameters ``combine`` uses directly.
    """

    features: Callable[[dict, Inputs], jax.Array]
    combine: Callable[[dict, jax.Array, Inputs], tuple[jax.Array, jax.Array]]
    row_params: tuple[str, ...]

    def terms(self, params: dict, x: Inputs) -> tuple[jax.Array, jax.Array]:
        return self.combine({n: params[n] for n in self.row_params}, self.features(params, x), x)


def raw_prediction(offset: jax.Array, log_terms: jax.Array) -> jax.Array:
    """offset + sum_m exp(log_terms_m)."""
    return offset + jnp.sum(jnp.exp(log_terms), axis=0)


def log_prediction(offset: jax.Array, log_terms: jax.Array) -> jax.Array:
    """log(offset + sum_m exp(log_terms_m)) as logsumexp(log offset, log_terms); -inf/NaN-free when offset > 0."""
    positive = offset > 0
    log_offset = jnp.where(positive, jnp.log(jnp.where(positive, offset, 1.0)), -jnp.inf)
    stacked = jnp.concatenate([log_offset[None], log_terms], axis=0)
    return jax.nn.logsumexp(stacked, axis=0)


@dataclasses.dataclass(frozen=True)
class Law:
    """A law form: ``terms(params, inputs) -> (offset, log_terms)`` plus its parameter spec.

    ``params`` passed to ``terms`` are the law coordinates u, by name: the log of positive parameters (so
    ``params["A"]`` is log A), the value itself otherwise. Domain parameters have shape (k,), scalars shape ().

    Attributes:
      name: registry name.
      params: the parameter spec, in the order of the flat parameter vector.
      terms: the pure law function (see module docstring).
      uses_n, uses_d: whether N and D enter the law (a table may omit them otherwise).
      uses_u: whether the law reads the unique tokens per domain (``Inputs.log_u``); a fit on a table loaded
        without ``unique_tokens`` is then a MixlawError. Such a law never takes the per-mixture feature path.
      offset: name of the additive offset parameter (E), or None; in log-space fits it is kept
        positive so that log L is defined.
      formula: the formula, for docs and reports.
      report: maps the law's parameter values (exp of positive law coordinates, the others as they are) to the
        parameters as its paper names them (e.g. the joint law's power-mean coordinates to C_A, gamma_A of
        Shukor et al. 2025), or None when they are already those.
      term_scales: for each log term m, ``(parameter name, sign)`` such that adding ``sign * log s`` to every
        coordinate of that parameter multiplies exp(log_term_m) by s and leaves every other term as it is
        (the term's level), or None for a term without one. The law is linear in E and in these levels, and
        screening fits them by least squares for each random start (``engine.multistart``); None (the default)
        profiles the offset only.
      mixture_features: the law's split into per-mixture features and a per-row combination, or None
        (``from_features``).
    """

    name: str
    params: tuple[Param, ...]
    terms: TermsFn
    uses_n: bool = True
    uses_d: bool = True
    offset: str | None = "E"
    formula: str = ""
    report: Callable[[dict], dict] | None = None
    term_scales: tuple[tuple[str, float] | None, ...] | None = None
    mixture_features: MixtureFeatures | None = None
    uses_u: bool = False

    def __post_init__(self):
        """Names the law's declarations refer to must be its parameters (a MixlawError otherwise, rather than a
        KeyError deep in a fit)."""
        names = [p.name for p in self.params]
        if self.uses_u and self.mixture_features is not None:
            raise MixlawError(
                f"law {self.name!r}: a law that uses the unique tokens U cannot declare mixture_features (its "
                f"per-mixture features would have to depend on D and U too)"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise MixlawError(f"law {self.name!r}: parameter {repeated[0]!r} is declared more than once")
        scalars = {p.name for p in self.params if p.shape == "scalar"}
        references = [("offset", self.offset, scalars)] if self.offset is not None else []
        references += [("term_scales", scale[0], names) for scale in self.term_scales or () if scale is not None]
        references += [(f"{p.name}'s init_centre", p.init_centre[0], scalars) for p in self.params if p.init_centre]
        if self.mixture_features is not None:
            references += [("row_params", n, names) for n in self.mixture_features.row_params]
        for what, name, allowed in references:
            if name not in allowed:
                kind = "scalar parameter" if allowed is scalars else "parameter"
                raise MixlawError(
                    f"law {self.name!r}: {what} names {name!r}, which is not a {kind} of the law "
                    f"(parameters: {', '.join(names)})"
                )

    @classmethod
    def from_features(cls, name: str, params, features, combine, row_params: tuple[str, ...], **fields) -> Law:
        """Build a law as ``combine(row params, features(params, x), x)`` (``MixtureFeatures``)."""
        split = MixtureFeatures(features, combine, tuple(row_params))
        return cls(name, tuple(params), split.terms, mixture_features=split, **fields)

    @classmethod
    def from_predict(
        cls,
        name: str,
        params,
        predict: Callable[[dict, Inputs], jax.Array],
        *,
        uses_n: bool = True,
        uses_d: bool = True,
        formula: str = "",
    ) -> Law:
        """Build a law from a function returning the predicted loss directly.

        In log-space fits its prediction must be positive; non-positive predictions count as a
        failed start, never as NaN.
        """

        def terms(p, x):
            pred = predict(p, x)
            return pred, jnp.zeros((0,) + jnp.shape(pred), dtype=pred.dtype)

        return cls(name, tuple(params), terms, uses_n, uses_d, None, formula)

    @property
    def uses_h(self) -> bool:
        """Whether the mixture enters the law: it has per-domain parameters (a law without any, such as
        Chinchilla, predicts the same loss for every mixture)."""
        return any(p.shape == "domain" for p in self.params)

    def n_params(self, k: int) -> int:
        return sum(p.size(k) for p in self.params)

    def names(self, k: int) -> list[str]:
        """Flat names: ``C[0]``, ``C[1]``, ... for domain parameters."""
        out = []
        for p in self.params:
            out += [f"{p.name}[{i}]" for i in range(k)] if p.shape == "domain" else [p.name]
        return out

    def unflatten(self, theta: jax.Array, k: int) -> dict:
        """Flat law coordinates (..., P) -> dict of named arrays of law coordinates."""
        out, i = {}, 0
        for p in self.params:
            size = p.size(k)
            out[p.name] = theta[..., i : i + size] if p.shape == "domain" else theta[..., i]
            i += size
        return out

    def parameter_values(self, params: dict) -> dict:
        """Law coordinates (named numpy arrays, ``unflatten``) -> parameter values: exp of positive parameters,
        then the law's ``report`` transform; named as in the law's paper, as floats / lists."""
        with np.errstate(over="ignore", under="ignore"):  # e^800 is reported as inf, e^-800 as 0
            values = {
                p.name: (np.exp(params[p.name]) if p.positive else np.asarray(params[p.name])) for p in self.params
            }
        if self.report is not None:
            values = self.report(values)
        return {name: np.asarray(v, dtype=float).tolist() for name, v in values.items()}

    def predict(self, params: dict, x: Inputs) -> jax.Array:
        """Predicted loss in raw space: offset + sum exp(log_terms)."""
        return raw_prediction(*self.terms(params, x))

    def log_predict(self, params: dict, x: Inputs) -> jax.Array:
        """log of the predicted loss (``log_prediction``)."""
        return log_prediction(*self.terms(params, x))
