"""Synthetic run tables drawn from a law: for tests with a known truth, calibration checks and the bundled demo data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import MixlawError
from .laws import Inputs, get_law


def simulate(
    law, coordinates: np.ndarray, n, d, h, *, noise: float = 0.0, seed: int = 0, unique_tokens=None
) -> np.ndarray:
    """Losses L(N, D, h; U) from ``law`` at law coordinates ``coordinates`` (P,), times (1 + noise * eps),
    eps ~ N(0, 1).

    Args:
      law: law name or Law.
      coordinates: flat law coordinates (log of positive parameters), as in ``FitResult.coordinates[j]``.
      n, d: (rows,) model sizes and token counts.
      h: (rows, k) mixtures.
      noise: relative Gaussian noise level.
      seed: noise seed.
      unique_tokens: the pools U a law with ``uses_u`` reads, (rows, k_u) or (k_u,) with k_u = k (1 for a table
        without mixtures; np.inf: unlimited), else None.
    """
    law = get_law(law)
    h = np.asarray(h, float)
    coordinates = np.asarray(coordinates, float)
    if h.ndim != 2:
        raise MixlawError(f"h must have shape (rows, k), not {h.shape}")
    if coordinates.shape != (law.n_params(h.shape[1]),):
        raise MixlawError(
            f"coordinates must have shape ({law.n_params(h.shape[1])},) for law {law.name!r} with k = "
            f"{h.shape[1]} domains, not {coordinates.shape}"
        )
    if law.uses_u and unique_tokens is None:
        raise MixlawError(f"law {law.name!r} reads the unique tokens per domain: pass unique_tokens=")
    u = None if unique_tokens is None else np.broadcast_to(np.asarray(unique_tokens, float), (len(h), h.shape[1] or 1))
    x = Inputs.from_arrays(np.asarray(n, float), np.asarray(d, float), h, u)
    clean = np.asarray(law.predict(law.unflatten(coordinates, h.shape[1]), x))
    rng = np.random.default_rng(seed)
    return clean * (1.0 + noise * rng.standard_normal(clean.shape))


def random_mixtures(n_mixtures: int, k: int, *, min_weight: float = 0.02, seed: int = 0) -> np.ndarray:
    """Mixtures drawn uniformly from the simplex, then mixed with the uniform mixture so every h_i >= min_weight."""
    if not 0 <= min_weight * k <= 1:
        raise MixlawError(f"min_weight must lie in [0, 1/k] for k = {k} domains, not {min_weight!r}")
    rng = np.random.default_rng(seed)
    h = rng.dirichlet(np.ones(k), size=n_mixtures)
    return min_weight + (1.0 - k * min_weight) * h


def design(mixtures: np.ndarray, sizes, tokens) -> pd.DataFrame:
    """Every mixture at every model size, with a checkpoint at every token count: columns weight_i, N, D."""
    rows = []
    for h in mixtures:
        for n in sizes:
            for d in tokens:
                rows.append({**{f"weight_{i}": w for i, w in enumerate(h)}, "N": float(n), "D": float(d)})
    return pd.DataFrame(rows)
