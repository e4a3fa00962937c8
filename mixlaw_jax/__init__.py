"""mixlaw_jax: fit data-mixture scaling laws and find optimal training-data mixtures, batched in JAX.

Float64 is switched on at import: residuals of ~1e-3 on losses of ~3 need it (benchmarks/NOTES.md).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from .bootstrap import BootstrapResult, bootstrap, load_bootstrap  # noqa: E402
from .data import RunTable, load_runs  # noqa: E402
from .engine.solvers import Status  # noqa: E402
from .errors import MixlawError, MixlawWarning  # noqa: E402
from .fitting import fit  # noqa: E402
from .laws import Inputs, Law, Param, available_laws, get_law, register_law  # noqa: E402
from .mixture import MixtureResult, compute_optimal, load_mixture, optimal_mixture  # noqa: E402
from .options import Objective, Resources, Search, Stage  # noqa: E402
from .results import Diagnostics, FitResult, FitSettings, load_fit  # noqa: E402

__all__ = [
    "BootstrapResult",
    "Diagnostics",
    "FitSettings",
    "Objective",
    "Resources",
    "Search",
    "Stage",
    "Status",
    "FitResult",
    "Inputs",
    "Law",
    "MixlawError",
    "MixlawWarning",
    "MixtureResult",
    "Param",
    "RunTable",
    "available_laws",
    "bootstrap",
    "compute_optimal",
    "fit",
    "get_law",
    "load_bootstrap",
    "load_fit",
    "load_mixture",
    "load_runs",
    "optimal_mixture",
    "register_law",
]
