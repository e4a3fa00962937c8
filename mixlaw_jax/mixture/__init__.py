"""Optimal data mixtures from a fitted law: h*(N, D) per target and for a weighted mean of targets.

For a fitted law L_t of Shukor et al. 2025 ("Scaling Laws for Optimal Data Mixtures"; eq. 2.4 or 2.5) and
objective weights w_t, h*(N, D) = argmin_{h ∈ F(D)} Σ_t w_t L_t(N, D, h) over a bounded simplex F(D).

- :mod:`.constraints` — F(D): weight bounds, fixed domains, token limits (``DataLimits``: pools and the most
  epochs); the exact projection onto F; the validation of a request;
- :mod:`.solver` — softmax / projected Adam, then spectral projected gradient with Newton candidates, batched over
  problems and starts;
- :mod:`.result` — ``MixtureResult`` and its JSON file format;
- :mod:`.api` — ``optimal_mixture``, ``compute_optimal`` (the split of a FLOPs budget C ≈ 6 N D) and
  ``replicate_mixtures`` (h* of bootstrap replicates);
- :mod:`.continual` — ``critical_proportion``: the largest share of a new domain that keeps a target's loss at or
  below a threshold in continual pretraining (Ye et al. 2024, sec. 5).
"""

from .api import compute_optimal, optimal_mixture, replicate_mixtures
from .constraints import DataLimits, project
from .continual import CriticalProportion, critical_proportion
from .result import WEIGHTED, MixtureResult, load_mixture
from .solver import target_losses

__all__ = [
    "WEIGHTED",
    "CriticalProportion",
    "DataLimits",
    "MixtureResult",
    "compute_optimal",
    "critical_proportion",
    "load_mixture",
    "optimal_mixture",
    "project",
    "replicate_mixtures",
    "target_losses",
]
