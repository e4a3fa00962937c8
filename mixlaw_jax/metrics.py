"""Goodness-of-fit measures."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mre(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Mean relative error in percent: 100 * mean_j |L_hat_j - L_j| / L_j over finite observations."""
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    ok = np.isfinite(observed)
    return float(100.0 * np.mean(np.abs(predicted[ok] - observed[ok]) / observed[ok]))


def r2(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot over finite observations."""
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    ok = np.isfinite(observed)
    res = np.sum((observed[ok] - predicted[ok]) ** 2)
    tot = np.sum((observed[ok] - observed[ok].mean()) ** 2)
    return float(1.0 - res / tot)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation: Pearson correlation of the average ranks."""
    ra = pd.Series(np.asarray(a, float)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, float)).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])
