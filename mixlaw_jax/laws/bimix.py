"""BiMix, the bivariate data mixing law of Ge et al. 2024, "BiMix: Bivariate Data Mixing Law for Language Model
Pretraining" (arXiv 2405.14908): the validation loss on domain i as a function of that domain's own proportion r_i in
the training mixture and of the training amount s (steps),

    L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i),

five coefficients (A_i, alpha_i, B_i, beta_i, C_i) per domain.

Mapping onto this package's inputs. r_i = h_i, the domain's weight in the row's mixture (``x.h``). The training
amount is D, the tokens seen (``x.log_d`` = log D), not steps: with a fixed number b of tokens per step, s = D / b
and B_i / s^beta_i = (B_i b^beta_i) / D^beta_i, the same family with another B_i, and tokens stay comparable across
runs with different batch sizes. N is not an input (BiMix is fitted at one model size); a table's N column is
ignored.

Identifiable form. Only A_i B_i and A_i C_i reach the loss, so the law is fitted with A_i = 1:

    L(h, D) = h_i^(-alpha) (B / D^beta + C),

parameters C, alpha, B, beta (the paper's (A, B, C) are (1, A B, A C) here). It has no additive offset, so the
engine's screen does not profile its levels (it does so only for laws with an offset); the four parameters are few
enough for the random starts and the Levenberg-Marquardt stages. The law is not defined where h_i = 0: such a row
predicts an infinite loss, and a fit with one fails (every start non-finite: a MixlawError naming the target).

One domain per law. A BiMix law reads one domain's proportion: the loss of a target on domain i uses h_i, so the
domain is part of the law — ``bimix_law(i)`` in ``mixlaw_jax.laws`` (registered as ``bimix_d<i>``); the registered
``bimix`` reads the first weight column. A table whose targets are the losses on several domains is fitted one
target at a time, each with its domain's law (``fit(runs, bimix_law(i), targets=[target_i])``).
"""

from __future__ import annotations

from functools import cache

import jax.numpy as jnp

from ..errors import MixlawError
from ..options import whole_number
from ._base import Inputs, Law, Param
from .mixture import MIX_EXPONENT_BOUNDS
from .scaling import SCALE_PARAMS

_, _, _, B_COEF, BETA = SCALE_PARAMS
#: The proportion term h_i^(-alpha) (log C: C from 0.6 to 4.5, a cross-entropy's asymptote before the screen).
BIMIX_PARAMS = (
    Param("C", positive=True, init=(-0.5, 1.5)),
    Param("alpha", init=(0.0, 0.5), bounds=MIX_EXPONENT_BOUNDS),
    B_COEF,
    BETA,
)


def domain_index(value) -> int:
    """``value`` as the index of BiMix's own domain: a whole number >= 0, else a MixlawError naming it."""
    return whole_number(value, "the BiMix domain index", minimum=0)


@cache
def bimix(domain: int, name: str) -> Law:
    """BiMix for the loss on weight column ``domain`` (0-based), under ``name`` (one Law object per (domain, name))."""

    def features(p: dict, x: Inputs):
        """phi = (-alpha log h_i,): the proportion factor's log, worked out once per mixture."""
        k = x.h.shape[-1]
        if domain >= k:
            raise MixlawError(
                f"law {name!r} reads the proportion of domain {domain} (0-based), but the table has k = {k} weight "
                f"columns; use bimix_law(i) with i < {k}"
            )
        return (-p["alpha"] * x.log_h[..., domain])[None]

    def combine(q: dict, phi, x: Inputs):
        log_terms = jnp.stack([q["C"] + phi[0], q["B"] - q["beta"] * x.log_d + phi[0]])
        return jnp.zeros_like(phi[0]), log_terms

    return Law.from_features(
        name,
        BIMIX_PARAMS,
        features,
        combine,
        row_params=("C", "B", "beta"),
        uses_n=False,
        uses_d=True,
        offset=None,
        formula=f"L(h, D) = h_{domain}^(-alpha) (B/D^beta + C)",
        term_scales=(("C", 1.0), ("B", 1.0)),
    )
