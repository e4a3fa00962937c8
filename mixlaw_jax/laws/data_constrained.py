"""Single-domain data-constrained laws: L(N, D, U) with U the unique tokens of the pool (``Inputs.log_u``).

``muennighoff`` is the law of Muennighoff et al. 2023, "Scaling Data-Constrained Language Models" (arXiv
2305.16264), as the authors' code fits it (huggingface/datablations @ 13701315b163f1c54642b94ad237b2699187c3ee,
README "Parametric Fit" and ``utils/parametric_fit.ipynb``, function ``scaling_law``)::

    L = E + A / N'^alpha + B / D'^beta
    D' = U_D + U_D R*_D (1 - exp(-R_D / R*_D)),   R_D = D / U_D - 1,     U_D = min(U, D)
    N' = U_N + U_N R*_N (1 - exp(-R_N / R*_N)),   R_N = N / U_N - 1,     U_N = min(N_opt(U), N)
    N_opt(U) = G^(1 + beta/alpha) U^(beta/alpha),  G = (alpha A / (beta B))^(1 / (alpha + beta))

N_opt(U) is the compute-optimal model size of the Chinchilla law E + A/N^alpha + B/D^beta for the budget whose
compute-optimal token count is U (the repository's ``D_to_N``). Here G is computed from the fitted law's own A, B,
alpha, beta; the authors froze E, A, B, alpha = beta from a Chinchilla-style fit to C4 (a = 6.255414,
b = 7.3049974, e = 0.6254804, alpha = beta = 0.3526596) and fitted only R*_D = 15.387756 and R*_N = 5.309743
(the paper's 15.4 and 5.3).

The paper writes R_D = D/U_D - 1 with U_D the unique tokens used; in every run of the paper U <= D. Taking
U_D = min(U, D) makes R_D = max(D/U - 1, 0) when U <= D and keeps D' = D when the pool is larger than the run (one
epoch, no repetition), so with U >= D the data term is exactly Chinchilla's B/D^beta. With U = +inf (unlimited)
N_opt(U) = inf, U_N = N, R_N = 0 and the whole law is exactly Chinchilla's. With a finite U >= D the parameter term
still discounts N above N_opt(U), as published.

Smoothness: the min(., .) switches are where R = 0, and dD'/dD = exp(-R_D/R*_D) -> 1 there from above, as it is
below: D' and N' are C^1 in (N, D, U) with a jump in the second derivative only, so Levenberg-Marquardt sees
continuous gradients. The switch is written with ``where`` on finite values so that U = +inf gives zero, not NaN,
gradients. N_opt needs alpha, beta > 0 (the default bounds keep them there); outside, U_N = N (no discount).

``chinchilla_overfit`` is a repetition-aware single-domain law found on Muennighoff et al.'s runs (the SLDBench
split; form "G7" of the issue-23 research notes, chosen by 5-fold cross-validation and BIC on the training rows
only)::

    L = E + A / N^alpha + B / D^beta + C N^nu (e - 1)_+^2 e^(kappa - 2) / U,     e = D / U (epochs)

Repeated tokens count fully in B/D^beta, and an overfitting penalty that grows with the model size (nu ~ 1.5),
with the epochs past the first (like e^kappa for many epochs) and with 1/U makes the loss rise past a repetition
frontier. The penalty is 0 for e <= 1 (U >= D, or U = +inf), where the law is exactly Chinchilla's, and C^1 at
e = 1 (quadratic just above one epoch: a few epochs cost almost nothing, as Muennighoff et al. found).
"""

from __future__ import annotations

import jax.numpy as jnp

from ._base import Inputs, Law, Param
from .scaling import EXPONENT_BOUNDS, SCALE_PARAMS


def _pool(x: Inputs):
    """(log U with +inf replaced by log D, whether U is finite), for the single domain."""
    log_u = x.log_u[..., 0]
    finite = jnp.isfinite(log_u)
    return jnp.where(finite, log_u, x.log_d), finite


def _effective(log_unique, log_total, r_star_log):
    """log of U' + U' R* (1 - exp(-R / R*)), R = T / U' - 1 >= 0, from log U' <= log T and log R*."""
    r = jnp.expm1(log_total - log_unique)
    r_star = jnp.exp(r_star_log)
    return log_unique + jnp.log1p(r_star * -jnp.expm1(-r / r_star))


def _muennighoff_terms(p: dict, x: Inputs):
    log_u, finite = _pool(x)
    log_ud = jnp.minimum(log_u, x.log_d)
    log_d_eff = _effective(log_ud, x.log_d, p["R_D"])
    alpha, beta = p["alpha"], p["beta"]
    # N_opt needs alpha, beta > 0 (the default bounds keep them so); otherwise no parameter discount, and the
    # switch is made on safe values so that gradients stay finite.
    defined = finite & (alpha > 0) & (beta > 0)
    a, b = jnp.where(alpha > 0, alpha, 1.0), jnp.where(beta > 0, beta, 1.0)
    # log G = (log(alpha A) - log(beta B)) / (alpha + beta); A and B are log coordinates.
    log_g = (jnp.log(a) + p["A"] - jnp.log(b) - p["B"]) / (a + b)
    log_n_opt = (1.0 + b / a) * log_g + (b / a) * log_u
    log_un = jnp.where(defined, jnp.minimum(log_n_opt, x.log_n), x.log_n)
    log_n_eff = _effective(log_un, x.log_n, p["R_N"])
    terms = jnp.stack([p["A"] - alpha * log_n_eff, p["B"] - beta * log_d_eff])
    return p["E"] * jnp.ones_like(x.log_n), terms


# alpha, beta > 0 here: N_opt divides by alpha and takes log alpha, log beta.
_POSITIVE_EXPONENT = (1e-3, EXPONENT_BOUNDS[1])
muennighoff = Law(
    "muennighoff",
    (
        SCALE_PARAMS[0],
        SCALE_PARAMS[1],
        Param("alpha", init=(0.05, 1.2), bounds=_POSITIVE_EXPONENT),
        SCALE_PARAMS[3],
        Param("beta", init=(0.05, 1.2), bounds=_POSITIVE_EXPONENT),
        Param("R_D", positive=True, init=(0.0, 5.0), bounds=(1e-2, 1e6)),
        Param("R_N", positive=True, init=(0.0, 5.0), bounds=(1e-2, 1e6)),
    ),
    _muennighoff_terms,
    formula=(
        "L = E + A/N'^alpha + B/D'^beta, D' = U_D(1 + R_D (1 - exp(-(D/U_D - 1)/R_D))), U_D = min(U, D); "
        "N' likewise with U_N = min(N_opt(U), N)  [Muennighoff et al. 2023; R_D, R_N are R*_D, R*_N]"
    ),
    uses_u=True,
)


def _overfit_terms(p: dict, x: Inputs):
    log_u, _ = _pool(x)
    log_e = x.log_d - log_u  # 0 where U is unlimited (log U read as log D): no penalty
    repeated = log_e > 0
    safe = jnp.where(repeated, log_e, 1.0)
    penalty = p["C"] + p["nu"] * x.log_n - log_u + 2.0 * jnp.log(jnp.expm1(safe)) + (p["kappa"] - 2.0) * safe
    terms = jnp.stack(
        [p["A"] - p["alpha"] * x.log_n, p["B"] - p["beta"] * x.log_d, jnp.where(repeated, penalty, -jnp.inf)]
    )
    return p["E"] * jnp.ones_like(x.log_n), terms


chinchilla_overfit = Law(
    "chinchilla_overfit",
    (
        *SCALE_PARAMS,
        Param("C", positive=True, init=(-25.0, -5.0)),
        Param("nu", init=(0.5, 2.5), bounds=(0.0, 4.0)),
        Param("kappa", init=(0.0, 2.0), bounds=(-1.0, 4.0)),
    ),
    _overfit_terms,
    formula="L = E + A/N^alpha + B/D^beta + C N^nu (e - 1)_+^2 e^(kappa - 2) / U, e = D/U",
    term_scales=(("A", 1.0), ("B", 1.0), ("C", 1.0)),
    uses_u=True,
)

__all__ = ["chinchilla_overfit", "muennighoff"]
