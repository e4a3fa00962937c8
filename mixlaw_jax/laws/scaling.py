"""Scale-only laws: L(N, D) with no mixture dependence.

``chinchilla`` is the parametric loss of Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models"
(sec. 3.3, eq. 2), L = E + A/N^alpha + B/D^beta, refitted to their data by Besiroglu et al. 2024, "Chinchilla
Scaling: A replication attempt" (tests/test_chinchilla.py reproduces that refit).
"""

from __future__ import annotations

import jax.numpy as jnp

from ._base import Inputs, Law, Param

# Default bounds keep exponents and the irreducible loss physically plausible (see fit(parameter_bounds=...)).
EXPONENT_BOUNDS = (0.0, 2.5)
OFFSET_BOUNDS = (0.0, 20.0)


def power_terms(p: dict, x: Inputs, log_a, log_b) -> list:
    """log(A/N^alpha) and log(B/D^beta) for log-coefficients log_a, log_b."""
    return [log_a - p["alpha"] * x.log_n, log_b - p["beta"] * x.log_d]


def _chinchilla_terms(p: dict, x: Inputs):
    return p["E"] * jnp.ones_like(x.log_n), jnp.stack(power_terms(p, x, p["A"], p["B"]))


# log A and log B start where A/N^alpha and B/D^beta are between 0.05 and 4.5 at the table's mean N, D.
TERM_INIT = (-3.0, 1.5)
SCALE_PARAMS = (
    Param("E", init=(0.0, 3.0), bounds=OFFSET_BOUNDS),
    Param("A", positive=True, init=TERM_INIT, init_centre=("alpha", "n")),
    Param("alpha", init=(0.05, 1.2), bounds=EXPONENT_BOUNDS),
    Param("B", positive=True, init=TERM_INIT, init_centre=("beta", "d")),
    Param("beta", init=(0.05, 1.2), bounds=EXPONENT_BOUNDS),
)

chinchilla = Law(
    "chinchilla",
    SCALE_PARAMS,
    _chinchilla_terms,
    formula="L = E + A/N^alpha + B/D^beta",
    term_scales=(("A", 1.0), ("B", 1.0)),
)
