"""``repetition_aware(law)``: a mixture law L(N, D, h) made aware of each domain's unique tokens U_i.

Per row, domain i supplies T_i = h_i D tokens from a pool of U_i unique ones: e_i = h_i D / U_i epochs. Repeated
tokens are worth less (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", arXiv 2305.16264:
effective data U + U R* (1 - exp(-(e - 1) / R*)) for e > 1), here per domain with ρ = 1 / R* >= 0 shared by the
domains (ρ = 0: repeats count fully)::

    g(e) = [(e - 1) - (1 - exp(-ρ (e - 1))) / ρ]₊         tokens lost per unique token (0 for e <= 1)
    λ_i  = h_i g(e_i) / e_i                               the share of D lost on domain i
    D̂    = D (1 - Σ_j λ_j),    ĥ_i = (h_i - λ_i) / (1 - Σ_j λ_j)

so that D̂ ĥ_i = T_i - U_i g(e_i) are the effective tokens of domain i (ĥ stays on the simplex). The law is the base
law at the effective tokens, plus an overfitting penalty that makes the loss rise past a repetition frontier (the
single-domain ``chinchilla_overfit`` form per domain; Sedova et al. 2026, arXiv 2605.12715, report such a frontier
in mixtures, at 15-20 repetitions of a scarce domain; their exact form could not be read here)::

    L_rep(N, D, h; U) = L_base(N, D̂, ĥ) + Σ_i C_o N^ν (e_i - 1)₊² e_i^(κ - 2) / U_i

Exactness: where every U_i >= h_i D (or U_i = +inf) every g and penalty is 0, so D̂ = D and ĥ = h bit for bit and
L_rep = L_base exactly. Smoothness: g(1) = g'(1) = 0 and the penalty is quadratic just above one epoch, so the law
is C¹ in (h, D) at e_i = 1 (Levenberg-Marquardt and the h* solver see continuous gradients).

Added parameters: ``rho`` (ρ = 1/R*, in [0, 10]), ``C_o`` (log coordinate), ``nu`` and ``kappa``.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..errors import MixlawError
from ._base import Inputs, Law, Param

#: below ρ(e - 1) = SERIES_BELOW, g is its Taylor series ρx²/2 - ρ²x³/6 + ρ³x⁴/24 (the closed form cancels).
SERIES_BELOW = 1e-4
SUFFIX = "_repetition"
REPETITION_PARAMS = (
    Param("rho", init=(0.0, 0.3), bounds=(0.0, 10.0)),
    Param("C_o", positive=True, init=(-25.0, -5.0)),
    Param("nu", init=(0.5, 2.5), bounds=(0.0, 4.0)),
    Param("kappa", init=(0.0, 2.0), bounds=(-1.0, 4.0)),
)


def lost_tokens(excess: jnp.ndarray, rho: jnp.ndarray) -> jnp.ndarray:
    """g = [x - (1 - exp(-ρ x)) / ρ]₊ for x = e - 1 epochs past the first (0 for x <= 0; ρ x²/2 + ... for small ρ x)."""
    x = jnp.maximum(excess, 0.0)
    rx = rho * x
    small = rx < SERIES_BELOW
    safe_rho = jnp.where(small, 1.0, rho)
    closed = x + jnp.expm1(-jnp.where(small, 0.0, rx)) / safe_rho
    series = rx * x * (0.5 - rx / 6.0 + rx * rx / 24.0)
    return jnp.maximum(jnp.where(small, series, closed), 0.0)


def effective_inputs(x: Inputs, rho) -> tuple[Inputs, jnp.ndarray, jnp.ndarray]:
    """(the inputs at (N, D̂, ĥ), log e (rows, k), whether e > 1) from the pools ``x.log_u`` (module docstring)."""
    log_e = x.log_h + x.log_d[..., None] - x.log_u  # -inf where h_i = 0 or U_i = +inf
    repeated = log_e > 0.0
    e = jnp.exp(jnp.where(repeated, log_e, 0.0))
    lost_share = jnp.where(repeated, lost_tokens(e - 1.0, rho) / e, 0.0)  # λ_i / h_i = g / e
    total = jnp.sum(x.h * lost_share, axis=-1)  # Σ λ
    keep = jnp.log1p(-total)
    log_h = jnp.where(jnp.isfinite(x.log_h), x.log_h + jnp.log1p(-lost_share) - keep[..., None], -jnp.inf)
    h = x.h * (1.0 - lost_share) / (1.0 - total)[..., None]
    return Inputs(x.log_n, x.log_d + keep, h, log_h, x.log_u), log_e, repeated


def repetition_form(law: Law) -> Law:
    """The repetition-aware form of a mixture law that uses D and h (module docstring), named ``<law>_repetition``.

    Raises:
      MixlawError: a law without h or D, one that already reads U, or one with a parameter named like the added ones.
    """
    if not (law.uses_h and law.uses_d) or law.uses_u:
        raise MixlawError(
            f"repetition_aware needs a mixture law that uses D and h (and not U already); {law.name!r} does not"
        )
    clash = {p.name for p in law.params} & {p.name for p in REPETITION_PARAMS}
    if clash:
        raise MixlawError(f"law {law.name!r} already has a parameter named {sorted(clash)[0]!r}")

    def terms(p: dict, x: Inputs):
        if x.log_u is None:
            raise MixlawError(f"law {law.name}{SUFFIX} needs the unique tokens U: load the table with unique_tokens=")
        effective, log_e, repeated = effective_inputs(x, p["rho"])
        offset, log_terms = law.terms(p, effective)
        safe = jnp.where(repeated, log_e, 1.0)
        penalty = (
            p["C_o"]
            + p["nu"] * x.log_n[..., None]
            - jnp.where(repeated, x.log_u, 0.0)
            + 2.0 * jnp.log(jnp.expm1(safe))
            + (p["kappa"] - 2.0) * safe
        )
        log_penalty = jnp.where(repeated, penalty, -jnp.inf)
        peak = jnp.max(log_penalty, axis=-1)
        finite_peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
        total = finite_peak + jnp.log(jnp.sum(jnp.exp(log_penalty - finite_peak[..., None]), axis=-1))
        return offset, jnp.concatenate([log_terms, jnp.where(jnp.isfinite(peak), total, -jnp.inf)[None]])

    scales = None if law.term_scales is None else (*law.term_scales, ("C_o", 1.0))
    base_names = [p.name for p in law.params]

    def report(values: dict) -> dict:
        base = {n: values[n] for n in base_names}
        added = {p.name: values[p.name] for p in REPETITION_PARAMS}
        return {**(law.report(base) if law.report is not None else base), **added}

    return Law(
        law.name + SUFFIX,
        (*law.params, *REPETITION_PARAMS),
        terms,
        law.uses_n,
        law.uses_d,
        law.offset,
        formula=f"{law.formula} at D̂ = D(1 - Σλ), ĥ = (h - λ)/(1 - Σλ), λ_i = h_i g(e_i)/e_i, e_i = h_i D/U_i; "
        "+ Σ_i C_o N^nu (e_i - 1)_+^2 e_i^(kappa - 2) / U_i",
        report=report,
        term_scales=scales,
        uses_u=True,
    )


__all__ = ["effective_inputs", "lost_tokens", "repetition_form"]
