"""Baseline fitters in numpy and scipy (no JAX), to set the engine beside the recipes others use.

Importing this module imports neither JAX nor mixlaw_jax: a process that runs a recipe from a ``LawMetadata`` it is
given (``benchmarks.cold_start``) pays only for what the recipe needs. ``law_metadata`` and ``Problem.from_runs``
read the law's layout and start box from mixlaw_jax when they are called.

* ``paper_recipe`` — Shukor et al. 2025, sec. 2.3 (SPEC.md §2): random search over the engine's init box, then
  ``scipy.optimize.basinhopping`` with L-BFGS-B as the local minimiser, on the same Huber objective.
* ``hoffmann_recipe`` — Hoffmann et al. 2022 as refitted by Epoch (Besiroglu et al. 2024): L-BFGS-B from every
  point of the grid α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}; the best end point.

Both minimise, per target, F(θ) = c Σ_j Huber_δ(r_j), r_j = y_j − f_j(θ), with y = L, f = L̂ (raw space) or
y = log L, f = log L̂ (log space), c = 1/n (mean) or 1 (sum), and the analytic gradient
∇F = −c Jᵀ ψ(r), ψ = clip(·, −δ, δ), J = ∂f/∂θ.

Coordinates θ are the laws' natural ones, as the paper writes them, with positive coefficients as logs:

    chinchilla  E, a, α, b, β                       L̂ = E + e^a/N^α + e^b/D^β
    additive    E, a, α, b, β, c (k), γ (k)         + 1/Σ_i e^{c_i} h_i^{γ_i}
    joint       E, c (k), γ (k), c_A (k), γ_A, α, c_B (k), γ_B, β
                L̂ = E + 1/Σ_i e^{c_i} h_i^{γ_i} + (Σ_i e^{c_Ai} h_i)^{γ_A}/N^α + (Σ_i e^{c_Bi} h_i)^{γ_B}/D^β

In log space E is replaced by e = log E, so log L̂ = LSE(e, log-terms) is defined everywhere (Epoch's form).
The layout is that of the engine's law coordinates; only the joint law's power means differ: the engine fits
log P_i and τ with C_i = P_i^τ, γ = 1/τ (``to_engine`` / ``to_natural`` convert).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time

import numpy as np
import scipy.optimize

LAWS = ("chinchilla", "additive", "joint")
#: L-BFGS-B options: scipy's defaults, as a user would run it, and tightened so that the run reaches the optimum
#: (scipy stops when the decrease is below ftol * max(|F|, 1), and F ~ 1e-5 here).
TOLERANCES = {"default": {}, "tight": {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 100_000, "maxfun": 1_000_000}}
#: Epoch's grid of starts for the Chinchilla law, in (e, a, α, b, β).
HOFFMANN_GRID = {
    "e": np.arange(-1.0, 1.01, 0.5),
    "a": np.arange(0.0, 25.1, 5.0),
    "alpha": np.arange(0.0, 2.01, 0.5),
    "b": np.arange(0.0, 25.1, 5.0),
    "beta": np.arange(0.0, 2.01, 0.5),
}
#: A returned trace keeps at most about this many points: the last improvement at or before each of as many
#: log-spaced times (so it tells the best at any time t as it was at a time within a few % of t) and the last one.
TRACE_POINTS = 500


def _lse(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise log Σ_i exp(a_i) of (n, m) and the softmax weights exp(a_i − LSE) (−inf entries weigh 0)."""
    top = np.max(a, axis=1, keepdims=True)
    e = np.exp(a - top)
    s = e.sum(axis=1)
    return top[:, 0] + np.log(s), e / s[:, None]


@dataclasses.dataclass(frozen=True)
class LawMetadata:
    """What a recipe takes from the engine's law: each parameter's (name, size, is a per-domain vector) in the
    engine's order, and the box its random points are drawn from (``Problem.random_points``). Plain data, so that
    a process can be handed it as JSON (``to_json`` / ``from_json``) without importing mixlaw_jax."""

    params: tuple[tuple[str, int, bool], ...]
    init_lo: tuple[float, ...]
    init_hi: tuple[float, ...]
    centre_exponent: tuple[int, ...]
    centre_of: tuple[int, ...]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LawMetadata:
        fields = {f.name: tuple(data[f.name]) for f in dataclasses.fields(cls)}
        return cls(**fields | {"params": tuple(tuple(p) for p in data["params"])})


def law_metadata(law: str, k: int, loss_space: str) -> LawMetadata:
    """The engine's layout and unbounded init box of ``law`` with ``k`` domains (imports mixlaw_jax)."""
    import mixlaw_jax as mj
    from mixlaw_jax.engine.space import make_space

    spec = mj.get_law(law)
    space = make_space(spec, k, loss_space, bounds=None)
    boxes = (space.init_lo, space.init_hi, space.centre_exponent, space.centre_of)
    return LawMetadata(
        tuple((p.name, p.size(k), p.shape == "domain") for p in spec.params),
        *(tuple(np.asarray(a).tolist()) for a in boxes),
    )


def epoch_chinchilla(path):
    """Epoch's Chinchilla table as Epoch prepares it: the 5 highest-loss points dropped (240 left), D = C / (6N)."""
    import pandas as pd

    frame = pd.read_csv(path).sort_values("loss").iloc[:-5]
    frame["D"] = frame["Training FLOP"] / (6 * frame["Model Size"])
    frame["h"] = 1.0
    return frame


class Problem:
    """One law fitted to one target: rows with an observed loss, and the objective's settings; ``metadata`` (the
    law's layout and start box) is read from mixlaw_jax when not given."""

    def __init__(
        self,
        law: str,
        n,
        d,
        h,
        y,
        *,
        delta: float = 1e-3,
        loss_space: str = "raw",
        reduction: str = "mean",
        metadata: LawMetadata | None = None,
    ):
        if law not in LAWS:
            raise ValueError(f"no numpy model for law {law!r}; have {LAWS}")
        y = np.asarray(y, dtype=np.float64)
        keep = np.isfinite(y)
        self.law, self.delta, self.loss_space, self.reduction = law, delta, loss_space, reduction
        self.h = np.asarray(h, dtype=np.float64).reshape(len(y), -1)[keep]
        self.k = self.h.shape[1]
        self.log_n = np.log(np.asarray(n, dtype=np.float64)[keep])
        self.log_d = np.log(np.asarray(d, dtype=np.float64)[keep])
        with np.errstate(divide="ignore"):
            self.log_h = np.log(self.h)  # −inf where h_i = 0: the term drops out
        self.log_h_finite = np.where(self.h > 0, self.log_h, 0.0)
        self.y = np.log(y[keep]) if loss_space == "log" else y[keep]
        self.scale = 1.0 / len(self.y) if reduction == "mean" else 1.0
        self.metadata = metadata or law_metadata(law, self.k, loss_space)
        self.n_params = sum(size for _, size, _ in self.metadata.params)

    @classmethod
    def from_runs(cls, runs, target: str, law: str, **settings) -> Problem:
        """The problem of one target of a ``mixlaw_jax.RunTable``."""
        j = runs.targets.index(target)
        return cls(law, runs.n, runs.d, runs.h, runs.losses[:, j], **settings)

    @functools.cached_property
    def slices(self) -> dict[str, int | slice]:
        """Position of each parameter in θ (the engine's order): an index for a scalar, a slice of k otherwise."""
        out, i = {}, 0
        for name, size, per_domain in self.metadata.params:
            out[name] = slice(i, i + size) if per_domain else i
            i += size
        return out

    def _log_terms(self, theta: np.ndarray) -> list[tuple[np.ndarray, callable]]:
        """Each power term's log ℓ_m (n,) with its pullback g ↦ Σ_j g_j ∂ℓ_mj/∂θ, added into a gradient (P,).

        L̂ = E + Σ_m exp(ℓ_m) with
          ℓ_mix = −log Σ_i e^{c_i} h_i^{γ_i}:   ∂/∂c_i = −p_i, ∂/∂γ_i = −p_i log h_i, p = softmax_i(c_i + γ_i log h_i)
          ℓ_N = a − α log N                      (ℓ_D alike with b, β, D)
          ℓ_N = γ_A log Σ_i e^{c_Ai} h_i − α log N (joint): ∂/∂c_Ai = γ_A e^{c_Ai} h_i / Σ, ∂/∂γ_A = log Σ
        """
        s = self.slices
        out = []
        if self.law in ("additive", "joint"):
            value, p = _lse(theta[s["C"]] + theta[s["gamma"]] * self.log_h)

            def mixture(g, grad, p=p):
                grad[s["C"]] -= g @ p
                grad[s["gamma"]] -= g @ (p * self.log_h_finite)

            out.append((-value, mixture))
        for coef, exponent, log_x, pure, power in (
            ("A", "alpha", self.log_n, "A_pure", "tau_A"),
            ("B", "beta", self.log_d, "B_pure", "tau_B"),
        ):
            if self.law == "joint":
                gamma, c = theta[s[power]], theta[s[pure]]
                top = c.max()
                weights = np.exp(c - top)
                total = self.h @ weights  # Σ_i e^{c_i} h_i = e^top · total
                log_mean = top + np.log(total)

                def power_term(
                    g,
                    grad,
                    gamma=gamma,
                    weights=weights,
                    total=total,
                    log_mean=log_mean,
                    pure=pure,
                    power=power,
                    exponent=exponent,
                    log_x=log_x,
                ):
                    grad[s[pure]] += gamma * weights * ((g / total) @ self.h)
                    grad[s[power]] += g @ log_mean
                    grad[s[exponent]] -= g @ log_x

                log_coef = gamma * log_mean
            else:

                def power_term(g, grad, coef=coef, exponent=exponent, log_x=log_x):
                    grad[s[coef]] += g.sum()
                    grad[s[exponent]] -= g @ log_x

                log_coef = theta[s[coef]]
            out.append((log_coef - theta[s[exponent]] * log_x, power_term))
        return out

    def _predict(self, theta: np.ndarray):
        """f (n,), its weights ∂f/∂(E-coordinate) and ∂f/∂ℓ_m (n, 1 + m), and the terms' pullbacks."""
        theta = np.asarray(theta, dtype=np.float64)
        i_e = self.slices["E"]
        terms = self._log_terms(theta)
        logs = np.stack([t[0] for t in terms], axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.loss_space == "log":  # f = log L̂ = LSE(e, ℓ_1, …): weights are the softmax
                f, weights = _lse(np.concatenate([np.full((len(self.y), 1), theta[i_e]), logs], axis=1))
            else:  # f = L̂ = E + Σ e^ℓ: weights 1 and e^ℓ
                size = np.exp(logs)
                f = theta[i_e] + size.sum(axis=1)
                weights = np.concatenate([np.ones((len(self.y), 1)), size], axis=1)
        return f, weights, [t[1] for t in terms]

    def predict(self, theta: np.ndarray) -> np.ndarray:
        """L̂ (raw space) or log L̂ (log space) per row."""
        return self._predict(theta)[0]

    def objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """F(θ) and ∇F(θ) = Σ_j (∂F/∂f_j) ∂f_j/∂θ, ∂F/∂f_j = −c ψ(r_j) (module docstring).

        Where the model overflows, (inf, 0): L-BFGS-B stops there and basin hopping rejects the hop.
        """
        f, weights, pullbacks = self._predict(theta)
        r = self.y - f
        a = np.abs(r)
        value = self.scale * float(np.sum(np.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))))
        df = -self.scale * np.clip(r, -self.delta, self.delta)
        grad = np.zeros(self.n_params)
        grad[self.slices["E"]] = df @ weights[:, 0]
        for m, pullback in enumerate(pullbacks):
            pullback(df * weights[:, m + 1], grad)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(grad)
        return value, grad

    def to_natural(self, u) -> np.ndarray:
        """Engine law coordinates (..., P) -> θ (log E in log space; joint: c_A = τ_A log P_A, γ_A = 1/τ_A)."""
        theta = self._swap_power_means(u)
        if self.loss_space == "log":
            theta[..., self.slices["E"]] = np.log(theta[..., self.slices["E"]])
        return theta

    def to_engine(self, theta) -> np.ndarray:
        """θ (..., P) -> engine law coordinates (the inverse of ``to_natural``)."""
        u = self._swap_power_means(theta)
        if self.loss_space == "log":
            u[..., self.slices["E"]] = np.exp(u[..., self.slices["E"]])
        return u

    def _swap_power_means(self, x) -> np.ndarray:
        """A copy of x with each joint power mean's (log P, τ) and (c = τ log P, γ = 1/τ) exchanged: the map
        (a, t) -> (a t, 1/t) is its own inverse, so it converts both ways."""
        x = np.array(x, dtype=np.float64)
        if self.law == "joint":
            for pure, tau in (("A_pure", "tau_A"), ("B_pure", "tau_B")):
                t = x[..., self.slices[tau]]
                x[..., self.slices[pure]] *= t[..., None]
                x[..., self.slices[tau]] = 1.0 / t
        return x

    def random_points(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` points θ drawn as the engine draws its starts: uniform in each parameter's init box (law
        coordinates, unbounded), power-term coefficients centred at the table's mean log N and log D."""
        box = self.metadata
        centre_of, centre_exponent = np.asarray(box.centre_of), np.asarray(box.centre_exponent)
        u = rng.uniform(box.init_lo, box.init_hi, size=(count, self.n_params))
        centre = np.select([centre_of == 1, centre_of == 2], [self.log_n.mean(), self.log_d.mean()], 0.0)
        u += np.where(centre_exponent >= 0, u[:, np.maximum(centre_exponent, 0)] * centre, 0.0)
        return self.to_natural(u)


class TimeUp(Exception):
    """Raised inside the objective once a run's time cap has passed."""


class Tracker:
    """The objective with its gradient, counting evaluations, remembering the best point, recording the anytime
    trace [(seconds since start, best objective so far), ...], and stopping the run after ``max_seconds`` (once it
    has a finite point to return)."""

    def __init__(self, problem: Problem, max_seconds: float = np.inf):
        self.problem, self.max_seconds = problem, max_seconds
        self.start = time.perf_counter()
        self.best, self.best_theta, self.trace, self.evaluations = np.inf, None, [], 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        if self.best_theta is not None and self.elapsed() > self.max_seconds:
            raise TimeUp
        value, grad = self.problem.objective(theta)
        self.evaluations += 1
        if value < self.best:
            self.best, self.best_theta = value, np.array(theta, dtype=np.float64)
            self.trace.append((self.elapsed(), value))
        return value, grad

    def result(self, method: str, **extra) -> dict:
        """JSON-ready summary: best objective, θ, engine coordinates, seconds, evaluations and the trace."""
        return {
            "method": method,
            "objective": float(self.best),
            "seconds": float(self.elapsed()),
            "evaluations": self.evaluations,
            "theta": self.best_theta.tolist(),
            "coordinates": self.problem.to_engine(self.best_theta).tolist(),
            "trace": [[float(t), float(f)] for t, f in thin(self.trace)],
        } | extra


def paper_recipe(
    problem: Problem,
    *,
    tolerance: str = "default",
    n_random: int = 4096,
    niter: int = 100,
    seed: int = 0,
    max_seconds: float = np.inf,
    temperature: float = 1.0,
    stepsize: float = 0.5,
) -> dict:
    """Random search, then basin hopping with L-BFGS-B (Shukor et al. 2025, sec. 2.3).

    The best of ``n_random`` points from the engine's init box starts ``scipy.optimize.basinhopping`` (``niter``
    hops, Metropolis ``temperature``, uniform steps of ``stepsize`` on every coordinate; scipy's defaults, as the
    paper publishes none), whose local minimiser is L-BFGS-B with the analytic gradient and
    ``TOLERANCES[tolerance]``. Stops after ``max_seconds`` (the best point so far is the result).
    """
    rng = np.random.default_rng(seed)
    track = Tracker(problem, max_seconds)
    local_searches, stopped, random_best = 0, "niter", None
    try:
        for theta in problem.random_points(n_random, rng):
            track(theta)
        random_best = track.best

        def count_local_search(x, f, accept):
            nonlocal local_searches
            local_searches += 1

        scipy.optimize.basinhopping(
            track,
            track.best_theta,
            niter=niter,
            T=temperature,
            stepsize=stepsize,
            seed=seed,
            callback=count_local_search,
            minimizer_kwargs={"method": "L-BFGS-B", "jac": True, "options": TOLERANCES[tolerance]},
        )
    except TimeUp:
        stopped = "time cap"
    random_best = track.best if random_best is None else random_best
    return track.result(
        f"paper ({tolerance})",
        random_search_objective=float(random_best),
        local_searches=local_searches,
        stopped=stopped,
        n_random=n_random,
        niter=niter,
        max_seconds=_finite(max_seconds),
    )


def hoffmann_recipe(problem: Problem, *, every: int = 1, max_seconds: float = np.inf) -> dict:
    """L-BFGS-B (scipy defaults, analytic gradient) from each point of Epoch's grid (every ``every``-th point in
    grid order, 4500 with ``every=1``); the best end point. Chinchilla law in log space (θ = e, a, α, b, β)."""
    if problem.law != "chinchilla" or problem.loss_space != "log":
        raise ValueError("the Hoffmann/Epoch recipe fits the chinchilla law in log space")
    track = Tracker(problem, max_seconds)
    grid = list(itertools.product(*(HOFFMANN_GRID[n] for n in ("e", "a", "alpha", "b", "beta"))))[::every]
    done, stopped = 0, "grid"
    try:
        for start in grid:
            scipy.optimize.minimize(track, np.array(start), jac=True, method="L-BFGS-B")
            done += 1
    except TimeUp:
        stopped = "time cap"
    return track.result(
        "Hoffmann/Epoch grid", starts=done, grid_size=len(grid), stopped=stopped, max_seconds=_finite(max_seconds)
    )


def thin(trace: list, points: int = TRACE_POINTS) -> list:
    """The last entry of ``trace`` at or before each of ``points`` log-spaced times, and its last entry."""
    if len(trace) <= points:
        return trace
    times = np.array([t for t, _ in trace])
    grid = np.geomspace(times[0], times[-1], points)
    keep = np.unique(np.searchsorted(times, grid, side="right") - 1)
    return [trace[i] for i in keep]


def best_at(trace: list, seconds: float) -> float | None:
    """The best objective a run had reached ``seconds`` after its start (None if none yet)."""
    reached = [f for t, f in trace if t <= seconds]
    return reached[-1] if reached else None


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
