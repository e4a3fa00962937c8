"""The data mixing laws of Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language
Modeling Performance" (arXiv 2403.16952), at fixed N and D; a table's N and D columns, if any, are ignored.

``mixing_exp`` — their exponential law for the loss on one domain,

    L(h) = c + k exp(sum_j t_j h_j).

``mixing_exp_implicit`` — their implicit domain aggregation: the validation data is taken to be a mixture, with
unknown proportions s = softmax(w), of M latent domains, each following the exponential law,

    L(h) = sum_m s_m [c_m + k_m exp(sum_j t_mj h_j)].

Only sum_m s_m c_m and each s_m k_m reach the loss, so the law is fitted in its identifiable form

    L(h) = c + sum_m K_m exp(t_m . h),   c = sum_m s_m c_m,   K_m = s_m k_m > 0,

which is the same family: any (w, c_m, k_m) gives such (c, K_m), and any (c, K_m) is reached by every s = softmax(w)
with c_m = c and k_m = K_m / s_m. (Ye et al. fit the original form as a one-hidden-layer network, h -> exp(T h + b)
-> softmax-weighted sum + bias, with AdamW, weight decay and early stopping; yegcjs/mixinglaws, mix_5_domains.ipynb.)
The offset c and the M levels K_m are linear parameters: the engine's screen fits them by least squares for every
random start (``Law.term_scales``), so random starts sample only the exponent vectors t_m.

The M terms can be permuted without changing L: every basin appears M! times in the search space, and a start
ranked by the screen, refined and counted in the best basin is counted whatever order its terms came in (the basin
count compares objectives, not coordinates), so the symmetry neither hides a basin nor splits the count.

On the simplex, K_m exp(t_m . h) = K_m e^a exp((t_m - a) . h) for every a: one flat direction per term (as in
``mixing_exp``); the Levenberg-Marquardt damping keeps the steps finite along it, and the loss is unaffected.
"""

from __future__ import annotations

from functools import cache

import jax.numpy as jnp

from ..options import whole_number
from ._base import Inputs, Law, Param

#: The exponent vectors' init range: |t_j| <= 3 spans a 400x range of exp(t . h) over the simplex.
EXPONENT_INIT = (-3.0, 3.0)
#: The offset c: a cross-entropy's plausible range (init and default bounds), as for the additive law's E.
OFFSET = Param("c", init=(0.0, 3.0), bounds=(0.0, 20.0))
#: A term's level (log K): exp(-3) to exp(1.5) before the screen fits it.
LEVEL_INIT = (-3.0, 1.5)
#: Latent domains of the registered ``mixing_exp_implicit``. In Ye et al.'s 5-domain experiment the held-out mean
#: absolute error of the implicit law is 0.0104 / 0.0027 / 0.0024 / 0.0020 at K = 3 / 5 / 10 / 30 latent domains
#: (yegcjs/mixinglaws, mix_5_domains.ipynb): most of the gain is in by K = 5. M = 4 sits at the start of that
#: plateau while keeping the 1 + M (k + 1) parameters few enough for small swarms (25 at k = 5, 73 at k = 17; a fit
#: needs at least as many mixtures), and is the setting the known-truth benchmark checks
#: (benchmarks/mixture_only_truth.py). ``implicit_mixing_law(M)`` gives any other M.
DEFAULT_LATENT_DOMAINS = 4


def _mixing_exp_terms(p: dict, x: Inputs):
    log_term = p["k"] + x.h @ p["t"]
    return p["c"] * jnp.ones_like(log_term), log_term[None]


mixing_exp = Law(
    "mixing_exp",
    (OFFSET, Param("k", positive=True, init=LEVEL_INIT), Param("t", shape="domain", init=EXPONENT_INIT)),
    _mixing_exp_terms,
    uses_n=False,
    uses_d=False,
    offset="c",
    formula="L(h) = c + k exp(sum_j t_j h_j)",
    term_scales=(("k", 1.0),),
)


#: The number M of latent domains of every implicit law built (``implicit_law``), by law name.
_LATENT_DOMAINS: dict[str, int] = {}


def fewer_latent_domains(law_name: str, available: int, k: int) -> str:
    """For an implicit law with more parameters (1 + M (k + 1)) than ``available`` rows or mixtures: a hint naming the
    largest M that ``available`` can fit (to end an error message); "" for any other law."""
    if law_name not in _LATENT_DOMAINS:
        return ""
    m = (available - 1) // (k + 1)
    if m < 1:
        return f"; even M = 1 latent domain needs {k + 2} (1 + M (k + 1) parameters)"
    return (
        f"; the implicit law has 1 + M (k + 1) parameters for M latent domains: "
        f"mixlaw_jax.implicit_mixing_law({m}) (law 'mixing_exp_implicit_M{m}', {1 + m * (k + 1)} parameters) fits"
    )


def implicit_names(latent_domains: int) -> tuple[list[str], list[str]]:
    """The level and exponent parameter names of the implicit law: (K_1..K_M, t_1..t_M)."""
    return [f"K_{m}" for m in range(1, latent_domains + 1)], [f"t_{m}" for m in range(1, latent_domains + 1)]


def latent_domain_count(value) -> int:
    """``value`` as the number M of latent domains: a whole number >= 1, else a MixlawError naming it."""
    return whole_number(value, "M, the number of latent domains of the implicit mixing law,", minimum=1)


@cache
def implicit_law(latent_domains: int, name: str) -> Law:
    """The implicit law with M = ``latent_domains`` latent domains, under ``name`` (one Law object per (M, name), so
    that the registry sees the same law each time it is asked for)."""
    levels, exponents = implicit_names(latent_domains)
    _LATENT_DOMAINS[name] = latent_domains

    def features(p: dict, x: Inputs):
        """phi_m = log K_m + t_m . h: the log of each latent domain's term, worked out once per mixture."""
        return jnp.stack([p[level] + x.h @ p[t] for level, t in zip(levels, exponents)])

    def combine(q: dict, phi, x: Inputs):
        return q["c"] * jnp.ones_like(phi[0]), phi

    params = (OFFSET,) + tuple(Param(level, positive=True, init=LEVEL_INIT) for level in levels)
    params += tuple(Param(t, shape="domain", init=EXPONENT_INIT) for t in exponents)
    return Law.from_features(
        name,
        params,
        features,
        combine,
        row_params=("c",),
        uses_n=False,
        uses_d=False,
        offset="c",
        formula=f"L(h) = c + sum_(m=1..{latent_domains}) K_m exp(sum_j t_mj h_j)",
        term_scales=tuple((level, 1.0) for level in levels),
    )


mixing_exp_implicit = implicit_law(DEFAULT_LATENT_DOMAINS, "mixing_exp_implicit")
