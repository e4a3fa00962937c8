"""mixlaw_jax: fit data-mixture scaling laws and find optimal training-data mixtures, batched in JAX.

Float64 is switched on at import: residuals of ~1e-3 on losses of ~3 need it (benchmarks/NOTES.md). XLA's GPU
autotuner is switched off (``--xla_gpu_autotune_level=0`` added to ``XLA_FLAGS``) unless ``XLA_FLAGS`` already sets a
level: it compiles every fusion in several variants, and at k = 32 domains one reduction took minutes where the whole
first fit takes 8.9 s without it (benchmarks/results/gpu/autotune_k32.json). Like every XLA flag it only acts if set
before JAX's first computation in the process.
"""

import os as _os

if "xla_gpu_autotune_level" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = f"{_os.environ.get('XLA_FLAGS', '')} --xla_gpu_autotune_level=0".strip()

import jax as _jax  # noqa: E402

_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from .bootstrap import BootstrapResult, bootstrap, load_bootstrap  # noqa: E402
from .comparison import (  # noqa: E402
    Candidate,
    Comparison,
    HeldOut,
    KFold,
    LawCandidate,
    LeaveOneScaleOut,
    Predictor,
    compare_laws,
    compare_predictions,
    load_comparison,
)
from .data import RunTable, load_runs  # noqa: E402
from .design import DataLimits, design_swarm  # noqa: E402
from .engine.solvers import Status  # noqa: E402
from .errors import MixlawError, MixlawWarning  # noqa: E402
from .fitting import fit  # noqa: E402
from .laws import (  # noqa: E402
    Inputs,
    Law,
    Param,
    available_laws,
    bimix_law,
    get_law,
    implicit_mixing_law,
    register_law,
    repetition_aware,
)
from .mixture import (  # noqa: E402
    CriticalProportion,
    MixtureResult,
    compute_optimal,
    critical_proportion,
    load_mixture,
    optimal_mixture,
)
from .nested import NestedCandidate, NestedResult, NestedSearch, nested_pipeline  # noqa: E402
from .options import Confirmation, Objective, Resources, Search, Stage  # noqa: E402
from .proposals import propose_runs  # noqa: E402
from .results import Diagnostics, FitResult, FitSettings, load_fit  # noqa: E402

__all__ = [
    "BootstrapResult",
    "Confirmation",
    "Candidate",
    "Comparison",
    "DataLimits",
    "HeldOut",
    "KFold",
    "LawCandidate",
    "LeaveOneScaleOut",
    "Predictor",
    "compare_laws",
    "compare_predictions",
    "load_comparison",
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
    "CriticalProportion",
    "MixtureResult",
    "Param",
    "RunTable",
    "available_laws",
    "bimix_law",
    "bootstrap",
    "compute_optimal",
    "critical_proportion",
    "design_swarm",
    "fit",
    "get_law",
    "implicit_mixing_law",
    "load_bootstrap",
    "load_fit",
    "load_mixture",
    "load_runs",
    "optimal_mixture",
    "propose_runs",
    "NestedCandidate",
    "NestedResult",
    "NestedSearch",
    "nested_pipeline",
    "register_law",
    "repetition_aware",
]
