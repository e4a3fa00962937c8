"""Mixture-only laws at fixed N and D: ``mixing_exp`` is the law of Ye et al. 2024, "Data Mixing Laws: Optimizing
Data Mixtures by Predicting Language Modeling Performance", for the loss on one domain,
L(h) = c + k exp(sum_j t_j h_j)."""

from __future__ import annotations

import jax.numpy as jnp

from ._base import Inputs, Law, Param


def _mixing_exp_terms(p: dict, x: Inputs):
    log_term = p["k"] + x.h @ p["t"]
    return p["c"] * jnp.ones_like(log_term), log_term[None]


mixing_exp = Law(
    "mixing_exp",
    (
        Param("c", init=(0.0, 3.0), bounds=(0.0, 20.0)),
        Param("k", positive=True, init=(-3.0, 1.5)),
        Param("t", shape="domain", init=(-3.0, 3.0)),
    ),
    _mixing_exp_terms,
    uses_n=False,
    uses_d=False,
    offset="c",
    formula="L(h) = c + k exp(sum_j t_j h_j)",
    term_scales=(("k", 1.0),),
)
