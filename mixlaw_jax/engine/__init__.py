"""The batched fitting engine: many starts of many problems, screened and refined in one compiled program.

- :mod:`.space` — a law's search coordinates z, their map to law coordinates, bounds and random starts;
- :mod:`.solvers` — Levenberg–Marquardt IRLS on the Huber objective, one start at a time (vmapped);
- :mod:`.grouped` — rows laid out in mixture groups, so a mixture law's features are computed once per mixture;
- :mod:`.devices` — where the batch runs: devices, a mesh over them, and a per-device memory budget;
- :mod:`.multistart` — ``solve``: screen random starts, refine by successive halving, keep the best.
"""

from .multistart import Problems, Solution, make_problems, solve
from .space import ParamSpace, make_space

__all__ = ["ParamSpace", "Problems", "Solution", "make_problems", "make_space", "solve"]
