"""Typed options of a fit, validated once where they are made; each error names the field and the value.

- :class:`Objective` — what is minimised: the loss space of the residuals, the Huber threshold δ and the
  reduction (mean or sum over rows).
- :class:`Stage` — one successive-halving stage of the search: starts kept, Levenberg–Marquardt iterations, and
  the fraction of rows it uses.
- :class:`Search` — how the minimum is searched for: random starts screened, the stages, the seed, how many
  starts are scored at once, and when the best point counts as confirmed (:class:`Confirmation`).
- :class:`Resources` — where the engine runs: the devices and the memory budget of one batched call.

``fit``, ``bootstrap``, ``build_report``, the engine (``engine.solve``) and the command line take these objects, so
a bad value is refused where the object is made, before any work.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from .errors import MixlawError

LossSpace = Literal["raw", "log"]
Reduction = Literal["mean", "sum"]
#: Bounds on a fit's parameter values: ``"default"`` (the law's plausible ranges), None (unbounded), or
#: ``name -> (low, high)``.
ParameterBounds = str | None | Mapping[str, tuple[float, float]]

#: Seeds are integers in [0, MAX_SEED] (a JAX PRNG key holds 64 bits).
MAX_SEED = 2**63 - 1
#: Random starts screened per target by a fit.
DEFAULT_STARTS = 16384
#: A fit's successive-halving stages (starts kept, Levenberg-Marquardt iterations, fraction of rows used).
DEFAULT_SCHEDULE = ((512, 30, 0.25), (256, 60, 1.0), (32, 100, 1.0), (16, 300, 1.0))
#: From this many domains a search draws half its random starts domain-tied (``Search.tied_starts``).
TIED_STARTS_FROM_K = 16
#: Final starts that must agree on a best point before it counts as found (``Confirmation``).
DEFAULT_CONFIRMING = 3
#: Objectives this close (absolutely) agree whatever their ratio: starts that fit the table exactly (objective
#: ~1e-32, residuals at rounding level) agree although one objective may be many times another.
EXACT_FIT = 1e-20


def whole_number(value, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int when it is a whole number (not a bool, not a float or a string) in
    [minimum, maximum]; otherwise a MixlawError naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MixlawError(f"{name} must be a whole number, not {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise MixlawError(f"{name} must be {bound}, not {value!r}")
    return value


def real_number(value, name: str) -> float:
    """``value`` as a finite float (not a bool or a string); otherwise a MixlawError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MixlawError(f"{name} must be a number, not {value!r} ({type(value).__name__})")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise MixlawError(f"{name} must be finite, not {value!r}")
    return value


def expect(value, kind: type, name: str):
    """``value`` when it is a ``kind`` (an option object); otherwise a MixlawError saying how to make one."""
    if not isinstance(value, kind):
        raise MixlawError(
            f"{name} must be a mixlaw_jax.{kind.__name__}, not {type(value).__name__} ({value!r}); "
            f"e.g. {name}=mj.{kind.__name__}(...)"
        )
    return value


def choice(value, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise MixlawError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, not {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Objective:
    """H(θ) = c Σ_j w_j Huber_δ(r_j(θ)), r = L̂ − L (``raw``) or log L̂ − log L (``log``), c = 1 / Σ_j w_j for
    ``mean`` (Shukor et al.) or 1 for ``sum`` (Hoffmann et al. / Epoch)."""

    loss_space: LossSpace = "raw"
    huber_delta: float = 1e-3
    reduction: Reduction = "mean"

    def __post_init__(self):
        choice(self.loss_space, "loss_space", ("raw", "log"))
        choice(self.reduction, "reduction", ("mean", "sum"))
        delta = real_number(self.huber_delta, "huber_delta")
        if delta <= 0:
            raise MixlawError(f"huber_delta must be > 0, not {self.huber_delta!r}")
        object.__setattr__(self, "huber_delta", delta)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One successive-halving stage: the best ``keep`` starts run ``iterations`` LM iterations on a random
    ``row_fraction`` of the rows (1: all rows)."""

    keep: int
    iterations: int
    row_fraction: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "keep", whole_number(self.keep, "a stage's starts kept", minimum=1))
        object.__setattr__(self, "iterations", whole_number(self.iterations, "a stage's iterations", minimum=1))
        fraction = real_number(self.row_fraction, "a stage's row fraction")
        if not 0 < fraction <= 1:
            raise MixlawError(f"a stage's row fraction must lie in (0, 1], not {self.row_fraction!r}")
        object.__setattr__(self, "row_fraction", fraction)

    @classmethod
    def of(cls, stage) -> Stage:
        """A Stage from a Stage or a tuple ``(keep, iterations)`` / ``(keep, iterations, row_fraction)``."""
        if isinstance(stage, Stage):
            return stage
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or len(stage) not in (2, 3):
            raise MixlawError(
                f"a schedule stage must be (keep, iterations) or (keep, iterations, row_fraction), not {stage!r}"
            )
        return cls(*stage)

    def as_tuple(self) -> tuple[int, int, float]:
        return self.keep, self.iterations, self.row_fraction


@dataclasses.dataclass(frozen=True)
class Confirmation:
    """When a problem's best point counts as found, and how much more search an unconfirmed one gets.

    A best objective f* is *confirmed* when at least ``starts`` final starts (None: ``DEFAULT_CONFIRMING``, or every
    final start when the schedule's final stage keeps fewer) end within relative ``rtol`` of it (f <= f* (1 + rtol)
    + ``EXACT_FIT``): several independent starts reaching the same floor is the evidence that no better basin was
    missed. An unconfirmed problem gets up to ``rounds`` extra rounds (0: only report): the first runs its
    final starts for another final stage of iterations (starts still descending a valley reach its floor); each
    later one first adds a fresh search (new random starts through the whole schedule, the unconfirmed problems
    only, batched), whose final starts join its best ones; 4 rounds search as many starts as a 4x larger
    ``n_starts``, the search that found the better basins of issue 27's tables. Confirmed problems cost nothing
    more. ``rtol`` = 1e-4 sits above a converged start's slack (a last fifth of iterations moved f by at most 1e-6)
    and below the gaps between distinct basins seen on real tables (1e-3 and more; benchmarks/NOTES.md).
    """

    starts: int | None = None
    rtol: float = 1e-4
    rounds: int = 4

    def __post_init__(self):
        if self.starts is not None:
            object.__setattr__(self, "starts", whole_number(self.starts, "confirmation starts", minimum=1))
        object.__setattr__(self, "rounds", whole_number(self.rounds, "confirmation rounds"))
        rtol = real_number(self.rtol, "confirmation rtol")
        if not 0 <= rtol < 1:
            raise MixlawError(f"confirmation rtol must lie in [0, 1), not {self.rtol!r}")
        object.__setattr__(self, "rtol", rtol)

    def needed(self, n_final: int) -> int:
        """Agreeing starts that confirm a best point when the final stage keeps ``n_final``."""
        return min(DEFAULT_CONFIRMING, n_final) if self.starts is None else self.starts

    def agreeing(self, f: np.ndarray) -> np.ndarray:
        """Starts within ``rtol`` of each problem's best, for objectives f (B, S) (0 where the best is not finite)."""
        best = np.min(f, axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            close = np.isfinite(best) & (f <= best + self.rtol * np.abs(best) + EXACT_FIT)
        return np.sum(close, axis=1)

    def confirmed(self, f: np.ndarray) -> np.ndarray:
        """Whether each problem's best objective is confirmed, for its final starts' objectives f (B, S)."""
        return self.agreeing(f) >= self.needed(f.shape[1])


@dataclasses.dataclass(frozen=True)
class Search:
    """``n_starts`` random starts screened per problem, refined through ``schedule`` (successive halving: each
    stage keeps at most as many starts as the one before); ``chunk_size`` starts scored at once per device.

    ``warm_starts`` counts starts the caller adds to the screened ones (the bootstrap's full-data optimum), which
    the first stage may keep besides the random ones. ``confirm`` says when a best point counts as found and how
    many extra rounds of search an unconfirmed one gets (:class:`Confirmation`; ``rounds=0`` only reports).

    ``tied_starts``: draw every other random start *domain-tied*, each per-domain parameter (C_i, gamma_i,
    A_pure_i, ...) one value shared by the k domains, jittered by ``engine.space.TIED_JITTER`` of its init range;
    None (the default) ties from ``TIED_STARTS_FROM_K`` domains on. Independent draws leave some of many domains
    in a poor basin of their own: on synthetic joint-law tables (6k mixtures, 2 sizes x 4 checkpoints, 2048
    starts) the best objective found was 0.951x / 1.093x the truth's at k = 16 / 32 with independent starts and
    0.932x / 0.917x tied; at k = 64 the library default reached 1.078x, with tied starts 0.923x, the basin that a
    fit started at the truth reaches (benchmarks/NOTES.md, session 18).
    """

    n_starts: int = DEFAULT_STARTS
    schedule: tuple[Stage, ...] = DEFAULT_SCHEDULE
    seed: int = 0
    chunk_size: int = 2048
    warm_starts: int = 0
    tied_starts: bool | None = None
    confirm: Confirmation = Confirmation()

    def __post_init__(self):
        object.__setattr__(
            self, "n_starts", whole_number(self.n_starts, "n_starts", minimum=0 if self.warm_starts else 1)
        )
        object.__setattr__(self, "seed", whole_number(self.seed, "seed", maximum=MAX_SEED))
        object.__setattr__(self, "chunk_size", whole_number(self.chunk_size, "chunk_size", minimum=1))
        if self.tied_starts is not None and not isinstance(self.tied_starts, (bool, np.bool_)):
            raise MixlawError(f"tied_starts must be True, False or None (automatic), not {self.tied_starts!r}")
        if isinstance(self.schedule, (str, bytes)) or not isinstance(self.schedule, Sequence) or not self.schedule:
            raise MixlawError(
                f"schedule must be a non-empty sequence of stages (keep, iterations[, row_fraction]), "
                f"not {self.schedule!r}"
            )
        stages = tuple(Stage.of(s) for s in self.schedule)
        available = self.n_starts + self.warm_starts
        if stages[0].keep > available:
            raise MixlawError(
                f"the schedule's first stage keeps {stages[0].keep} starts, but only {available} are "
                f"screened (n_starts = {self.n_starts}); raise n_starts or keep fewer"
            )
        for before, after in zip(stages, stages[1:]):
            if after.keep > before.keep:
                raise MixlawError(
                    f"a schedule stage keeps {after.keep} starts after one that kept {before.keep}; "
                    f"each stage keeps at most as many as the one before"
                )
        object.__setattr__(self, "schedule", stages)
        expect(self.confirm, Confirmation, "confirm")
        if self.confirm.starts is not None and self.confirm.starts > stages[-1].keep:
            raise MixlawError(
                f"confirmation needs {self.confirm.starts} agreeing final starts, but the schedule's final stage "
                f"keeps {stages[-1].keep}; keep more or confirm with fewer"
            )

    def ties(self, k: int) -> bool:
        """Whether half the random starts are drawn domain-tied for a law of k domains (``tied_starts``)."""
        return k >= TIED_STARTS_FROM_K if self.tied_starts is None else bool(self.tied_starts)

    @property
    def stages(self) -> tuple[tuple[int, int, float], ...]:
        """The schedule as ``(keep, iterations, row_fraction)`` tuples (the engine's form)."""
        return tuple(s.as_tuple() for s in self.schedule)


#: A bootstrap replicate's search: fresh random starts besides the warm start at the full-data optimum, and the
#: stages of its refit (the warm start and the best fresh ones, then the best two).
BOOTSTRAP_SEARCH = Search(1024, ((8, 40), (2, 200)), warm_starts=1)
#: How a bootstrap draws its replicates' row weights (``bootstrap.resample_weights``), and how that reads.
RESAMPLE = {
    "runs": "runs resampled",
    "rows": "rows resampled",
    "bayesian": "Bayesian bootstrap: Dirichlet weights on runs",
}


@dataclasses.dataclass(frozen=True)
class Resources:
    """Where the engine runs: ``devices`` — ``None`` (every device, of every process after
    ``jax.distributed.initialize``), a count n (the first n), or a sequence of jax devices; ``memory_bytes`` — the
    per-device budget of one batched call (``None``: from the device's free memory, 2e9 bytes on a CPU).

    Whether the devices exist is checked when the engine places its work (``engine.devices.resolve``)."""

    devices: int | tuple | None = None
    memory_bytes: float | None = None

    def __post_init__(self):
        devices = self.devices
        if devices is not None and not isinstance(devices, numbers.Integral):
            if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
                raise MixlawError(f"devices must be None, a count or a list of jax devices, not {devices!r}")
            object.__setattr__(self, "devices", tuple(devices))
        elif devices is not None:
            object.__setattr__(self, "devices", whole_number(devices, "devices", minimum=1))
        if self.memory_bytes is not None:
            memory = real_number(self.memory_bytes, "memory_bytes")
            if memory <= 0:
                raise MixlawError(f"memory_bytes must be > 0, not {self.memory_bytes!r}")
            object.__setattr__(self, "memory_bytes", memory)
