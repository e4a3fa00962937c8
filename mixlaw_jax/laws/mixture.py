"""The data-mixture laws of Shukor et al. 2025, "Scaling Laws for Optimal Data Mixtures": the additive law (their
eq. 2.4), the joint law (eq. 2.5), and the simple and full variants they compare with them (their Table 4); and
``additive_mixture``, the additive law's mixture part at fixed N and D, L(h) = E + 1 / sum_i C_i h_i^gamma_i.

Every sum of positive terms is evaluated in log space: with c_i = log C_i,
log sum_i C_i h_i^gamma_i = logsumexp_i(c_i + gamma_i log h_i).

Power-mean coordinates. A factor (sum_i C_i h_i)^gamma (A_h and B_h of the joint law, the mixture
term of the simple law, alpha_h and beta_h of the full law) is fitted as

    (sum_i C_i h_i)^gamma = M_tau(P; h) = (sum_i h_i P_i^tau)^(1/tau),   tau = 1/gamma,  C_i = P_i^tau,

where P_i > 0 is the factor's value on the pure domain i (h = e_i). This is the same family, but the
exponential-linear limit gamma -> +-infinity (log A_h = sum_i h_i log P_i) sits at tau = 0 instead of at
infinity, so the optimiser reaches it in a few steps instead of creeping along a ridge (on the
SlimPajama wikipedia target this lowered the best joint objective found by 10%; benchmarks/NOTES.md).
The reported parameters are converted back to (C_i, gamma).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._base import Inputs, Law, Param, scaled_log_h
from .scaling import SCALE_PARAMS, power_terms

MIX_EXPONENT_BOUNDS = (0.0, 10.0)


def log_mix(log_c: jax.Array, x: Inputs, gamma=None) -> jax.Array:
    """log sum_i C_i h_i^gamma_i per row (gamma = 1 when None); rows with h_i = 0 drop term i."""
    g = jnp.ones_like(log_c) if gamma is None else gamma
    return jax.nn.logsumexp(log_c + scaled_log_h(x.log_h, g), axis=-1)


def log_power_mean(log_p: jax.Array, tau: jax.Array, x: Inputs) -> jax.Array:
    """log M_tau = (1/tau) log sum_i h_i exp(tau v_i) with v = log P, per row.

    exp(tau v_i) does not depend on the row, so with m = max_i tau v_i this is
    (m + log sum_i h_i exp(tau v_i - m)) / tau: k exponentials per law evaluation and one log per row.
    For |tau| < 1e-5 the division by tau amplifies rounding, and the third-order expansion
    vbar + tau m2 / 2 + tau^2 m3 / 6 (vbar = sum_i h_i v_i, m_j = sum_i h_i (v_i - vbar)^j) is used
    instead; both are accurate to ~1e-11 there, and the limit tau -> 0 is vbar.
    """
    small = jnp.abs(tau) < 1e-5
    tau_safe = jnp.where(small, 1.0, tau)
    tv = tau_safe * log_p
    top = jnp.max(tv, axis=-1, keepdims=True)
    exact = (top[..., 0] + jnp.log(x.h @ jnp.exp(tv - top))) / tau_safe
    vbar = x.h @ log_p
    d = log_p - vbar[..., None]
    series = vbar + tau * jnp.sum(x.h * d * d, axis=-1) / 2 + tau * tau * jnp.sum(x.h * d * d * d, axis=-1) / 6
    return jnp.where(small, series, exact)


def _power_mean_report(values: dict, pure: str, tau: str, c_name: str, gamma_name: str) -> dict:
    """(P_i, tau) -> (C_i = P_i^tau, gamma = 1/tau): the paper's parameters in place of the law's own."""
    t = float(values.pop(tau))
    p = values.pop(pure)
    with np.errstate(divide="ignore", over="ignore"):
        values[c_name] = np.exp(t * np.log(p))
        values[gamma_name] = np.float64(1.0) / t if t != 0 else np.inf
    return values


def _mixture_term(p: dict, x: Inputs) -> jax.Array:
    """log of 1 / sum_i C_i h_i^gamma_i."""
    return -log_mix(p["C"], x, p["gamma"])


MIXTURE_PARAMS = (
    Param("C", shape="domain", positive=True, init=(-3.0, 3.0)),
    Param("gamma", shape="domain", init=(0.0, 2.0), bounds=MIX_EXPONENT_BOUNDS),
)


def _mixture_feature(p: dict, x: Inputs) -> jax.Array:
    """phi = (log of 1 / sum_i C_i h_i^gamma_i,): the additive law's one mixture feature."""
    return _mixture_term(p, x)[None]


def _additive_combine(q: dict, phi: jax.Array, x: Inputs):
    return q["E"] * jnp.ones_like(x.log_n), jnp.stack([phi[0]] + power_terms(q, x, q["A"], q["B"]))


additive = Law.from_features(
    "additive",
    SCALE_PARAMS + MIXTURE_PARAMS,
    _mixture_feature,
    _additive_combine,
    row_params=("E", "A", "alpha", "B", "beta"),
    formula="L = E + 1/(sum_i C_i h_i^gamma_i) + A/N^alpha + B/D^beta",
    term_scales=(("C", -1.0), ("A", 1.0), ("B", 1.0)),
)


def _mixture_only_combine(q: dict, phi: jax.Array, x: Inputs):
    return q["E"] * jnp.ones_like(phi[0]), phi


# The additive law at fixed N and D: A/N^alpha + B/D^beta is then a constant, absorbed in E (the additive law itself
# would leave E, A and B unidentifiable). N and D columns of a table are ignored.
additive_mixture = Law.from_features(
    "additive_mixture",
    SCALE_PARAMS[:1] + MIXTURE_PARAMS,
    _mixture_feature,
    _mixture_only_combine,
    row_params=("E",),
    uses_n=False,
    uses_d=False,
    formula="L(h) = E + 1/(sum_i C_i h_i^gamma_i)",
    term_scales=(("C", -1.0),),
)

OFFSET, A_COEF, ALPHA, B_COEF, BETA = SCALE_PARAMS
# tau in (-1, 1) covers |gamma| > 1 and the exponential-linear limit; P_A, P_B are A_h, B_h on pure domains.
JOINT_PARAMS = (
    (OFFSET,)
    + MIXTURE_PARAMS
    + (
        Param("A_pure", shape="domain", positive=True, init=A_COEF.init, init_centre=("alpha", "n")),
        Param("tau_A", init=(-1.0, 1.0)),
        ALPHA,
        Param("B_pure", shape="domain", positive=True, init=B_COEF.init, init_centre=("beta", "d")),
        Param("tau_B", init=(-1.0, 1.0)),
        BETA,
    )
)


# The levels of the three terms: 1/sum C_i h_i^gamma_i scales as 1/C; a power mean is homogeneous in P.
MIXTURE_AND_POWER_SCALES = (("C", -1.0), ("A_pure", 1.0), ("B_pure", 1.0))


def _joint_report(values: dict) -> dict:
    values = _power_mean_report(values, "A_pure", "tau_A", "C_A", "gamma_A")
    return _power_mean_report(values, "B_pure", "tau_B", "C_B", "gamma_B")


def _log_coefficients(p: dict, x: Inputs):
    """log A_h and log B_h of the joint and full laws."""
    return log_power_mean(p["A_pure"], p["tau_A"], x), log_power_mean(p["B_pure"], p["tau_B"], x)


def _joint_features(p: dict, x: Inputs) -> jax.Array:
    """phi = (log 1/sum_i C_i h_i^gamma_i, log A_h, log B_h)."""
    return jnp.stack([_mixture_term(p, x), *_log_coefficients(p, x)])


def _joint_combine(q: dict, phi: jax.Array, x: Inputs):
    return q["E"] * jnp.ones_like(x.log_n), jnp.stack([phi[0]] + power_terms(q, x, phi[1], phi[2]))


joint = Law.from_features(
    "joint",
    JOINT_PARAMS,
    _joint_features,
    _joint_combine,
    row_params=("E", "alpha", "beta"),
    formula=(
        "L = E + 1/(sum_i C_i h_i^gamma_i) + A_h/N^alpha + B_h/D^beta, "
        "A_h = (sum_i C_A_i h_i)^gamma_A, B_h = (sum_i C_B_i h_i)^gamma_B"
    ),
    report=_joint_report,
    term_scales=MIXTURE_AND_POWER_SCALES,
)

# alpha_h, beta_h vary with h, so A_pure and B_pure are not centred for the full law (raw log ranges).
FULL_PARAMS = (
    JOINT_PARAMS[:3]
    + (Param("A_pure", shape="domain", positive=True, init=(-2.0, 25.0)), JOINT_PARAMS[4])
    + (
        Param("alpha_pure", shape="domain", positive=True, init=(-2.5, 0.0)),
        Param("tau_alpha", init=(-1.0, 1.0)),
        Param("B_pure", shape="domain", positive=True, init=(-2.0, 25.0)),
        JOINT_PARAMS[7],
    )
    + (Param("beta_pure", shape="domain", positive=True, init=(-2.5, 0.0)), Param("tau_beta", init=(-1.0, 1.0)))
)


def _full_report(values: dict) -> dict:
    values = _joint_report(values)
    values = _power_mean_report(values, "alpha_pure", "tau_alpha", "C_alpha", "gamma_alpha")
    return _power_mean_report(values, "beta_pure", "tau_beta", "C_beta", "gamma_beta")


def _full_features(p: dict, x: Inputs) -> jax.Array:
    """phi = (log 1/sum_i C_i h_i^gamma_i, log A_h, log B_h, alpha_h, beta_h)."""
    alpha = jnp.exp(log_power_mean(p["alpha_pure"], p["tau_alpha"], x))
    beta = jnp.exp(log_power_mean(p["beta_pure"], p["tau_beta"], x))
    return jnp.stack([_mixture_term(p, x), *_log_coefficients(p, x), alpha, beta])


def _full_combine(q: dict, phi: jax.Array, x: Inputs):
    terms = [phi[0], phi[1] - phi[3] * x.log_n, phi[2] - phi[4] * x.log_d]
    return q["E"] * jnp.ones_like(x.log_n), jnp.stack(terms)


full = Law.from_features(
    "full",
    FULL_PARAMS,
    _full_features,
    _full_combine,
    row_params=("E",),
    formula=("joint law with alpha_h = (sum_i C_alpha_i h_i)^gamma_alpha and beta_h = (sum_i C_beta_i h_i)^gamma_beta"),
    report=_full_report,
    term_scales=MIXTURE_AND_POWER_SCALES,
)

SIMPLE_PARAMS = SCALE_PARAMS + (
    Param("M_pure", shape="domain", positive=True, init=(-3.0, 1.0)),
    Param("tau", init=(-1.0, 1.0)),
)


def _simple_feature(p: dict, x: Inputs) -> jax.Array:
    """phi = (log (sum_i C_i h_i)^gamma,)."""
    return log_power_mean(p["M_pure"], p["tau"], x)[None]


simple = Law.from_features(
    "simple",
    SIMPLE_PARAMS,
    _simple_feature,
    _additive_combine,
    row_params=("E", "A", "alpha", "B", "beta"),
    formula="L = E + (sum_i C_i h_i)^gamma + A/N^alpha + B/D^beta",
    report=lambda v: _power_mean_report(v, "M_pure", "tau", "C", "gamma"),
    term_scales=(("M_pure", 1.0), ("A", 1.0), ("B", 1.0)),
)
