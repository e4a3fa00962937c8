"""Goodness-of-fit measures."""

from __future__ import annotations

import numpy as np


def mre(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Mean relative error in percent: 100 * mean_j |L_hat_j - L_j| / L_j over finite observations."""
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    ok = np.isfinite(observed)
    return float(100.0 * np.mean(np.abs(predicted[ok] - observed[ok]) / observed[ok]))
