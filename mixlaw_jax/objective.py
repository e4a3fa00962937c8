"""Residuals and the Huber objective.

    H(theta) = (1 / sum_j w_j) sum_j w_j Huber_delta(r_j)      (reduction="mean", Shukor et al.)
    H(theta) = sum_j w_j Huber_delta(r_j)                       (reduction="sum", Hoffmann / Epoch)

    Huber_delta(x) = x^2 / 2            if |x| <= delta
                   = delta (|x| - delta/2)  otherwise

with r_j = L_j - L_hat_j (loss_space="raw") or r_j = log L_j - log L_hat_j (loss_space="log").
Row weights w_j are 0/1 masks for missing cells and multinomial counts for bootstrap replicates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .laws import Inputs, Law
from .options import LossSpace


def huber(r: jax.Array, delta: float) -> jax.Array:
    """Huber_delta(r), elementwise."""
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_psi(r: jax.Array, delta: float) -> jax.Array:
    """d Huber_delta / dr = clip(r, -delta, delta)."""
    return jnp.clip(r, -delta, delta)


def prediction(law: Law, params: dict, x: Inputs, loss_space: LossSpace) -> jax.Array:
    """L_hat (raw) or log L_hat (log)."""
    return law.log_predict(params, x) if loss_space == "log" else law.predict(params, x)


def observed(y: jax.Array | np.ndarray, loss_space: LossSpace) -> jax.Array | np.ndarray:
    """The quantity residuals are taken against: L or log L (missing cells stay NaN and carry weight 0)."""
    log = np.log if isinstance(y, np.ndarray) else jnp.log  # a host array stays on the host (nothing to compile)
    return log(y) if loss_space == "log" else y


def huber_objective(r: jax.Array, w: jax.Array, c: jax.Array, delta: float) -> jax.Array:
    """c sum_j w_j Huber_delta(r_j) over the last axis; rows of weight 0 are left out (even a NaN residual), and a
    non-finite sum is +inf (a failed start, never NaN). The one Huber sum of the engine and its solvers."""
    r = jnp.where(w > 0, r, 0.0)
    f = c * jnp.sum(w * huber(r, delta), axis=-1)
    return jnp.where(jnp.isfinite(f), f, jnp.inf)
