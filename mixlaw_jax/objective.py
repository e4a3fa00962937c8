"""Residuals and the Huber objective.

    H(theta) = (1 / sum_j w_j) sum_j w_j Huber_delta(r_j)      (reduction="mean", Shukor et al.)
    H(theta) = sum_j w_j Huber_delta(r_j)                       (reduction="sum", Hoffmann / Epoch)

    Huber_delta(x) = x^2 / 2            if |x| <= delta
                   = delta (|x| - delta/2)  otherwise

with r_j = L_j - L_hat_j (loss_space="raw") or r_j = log L_j - log L_hat_j (loss_space="log").
Row weights w_j are 0/1 masks for missing cells and multinomial counts for bootstrap replicates.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from .laws import Inputs, Law

LossSpace = Literal["raw", "log"]
Reduction = Literal["mean", "sum"]


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


def observed(y: jax.Array, loss_space: LossSpace) -> jax.Array:
    """The quantity residuals are taken against: L or log L (missing cells stay NaN and carry weight 0)."""
    return jnp.log(y) if loss_space == "log" else y


def normaliser(w: jax.Array, reduction: Reduction) -> jax.Array:
    """1 / sum w for the mean, 1 for the sum."""
    return 1.0 / jnp.sum(w) if reduction == "mean" else jnp.ones((), w.dtype)


def huber_objective(residuals: jax.Array, w: jax.Array, delta: float, reduction: Reduction) -> jax.Array:
    """Weighted Huber objective of a residual vector; rows with weight 0 never contribute (not even NaN)."""
    terms = jnp.where(w > 0, w * huber(jnp.where(w > 0, residuals, 0.0), delta), 0.0)
    return jnp.sum(terms) * normaliser(w, reduction)
