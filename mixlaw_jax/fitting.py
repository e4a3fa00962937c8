"""``fit``: every target of a run table fitted at once by the batched engine (``engine.solve``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .data import RunTable
from .engine import ParamSpace, Solution, make_problems, make_space, solve
from .engine.solvers import Status
from .errors import MixlawError, warn_user
from .laws import Inputs, Law, get_law
from .laws.data_mixing import fewer_latent_domains
from .options import Objective, ParameterBounds, Resources, Search, expect
from .results import Diagnostics, FitResult, FitSettings, provenance


def law_inputs(law: Law, runs: RunTable) -> Inputs:
    """The law's row inputs; N and D may be absent only for laws that do not use them."""
    for uses, values, what in ((law.uses_n, runs.n, "N (model size)"), (law.uses_d, runs.d, "D (training tokens)")):
        if uses and values is None:
            raise MixlawError(f"law {law.name!r} needs {what}, and the run table has no such column")
    if law.uses_u and runs.u is None:
        raise MixlawError(
            f"law {law.name!r} needs U (unique tokens per domain), and the run table was loaded without them; "
            f"load it with load_runs(..., unique_tokens=...)"
        )
    if law.uses_u and not law.uses_h and runs.k > 1:
        raise MixlawError(
            f"law {law.name!r} is a single-domain law (one pool size U); the run table has {runs.k} weight columns "
            f"({', '.join(runs.weight_columns)}); load it with weights=None and one unique_tokens column"
        )
    if law.uses_u and runs.u.shape[1] != max(runs.k, 1):
        raise MixlawError(
            f"law {law.name!r} needs one pool size per domain: the table has {runs.u.shape[1]} for {runs.k} domains"
        )
    return runs.inputs()


def check_identifiable(law: Law, runs: RunTable, target_index: Sequence[int]) -> None:
    """A law cannot be fitted to fewer observed rows, or fewer runs, than it has parameters (a law of D alone, such as
    a learning curve, to fewer distinct D: one run's checkpoints identify it); a domain whose weight never varies
    in the fitted rows leaves its per-domain parameters unidentifiable (a warning, unless ``load_runs`` already
    gave it for that domain)."""
    if law.uses_h and runs.k == 0:
        raise MixlawError(
            f"law {law.name!r} needs mixture weights, and the run table was loaded with weights=None (no weight "
            f"columns); load it with its mixture-weight columns (e.g. weights='weight_*'), or fit a law that does "
            f"not use h, such as 'chinchilla'"
        )
    if law.uses_h and runs.k < 2:
        raise MixlawError(
            f"law {law.name!r} fits mixtures of two or more domains; the run table has {runs.k} weight "
            f"column ({', '.join(runs.weight_columns)})"
        )
    n_params = law.n_params(runs.k)
    for j in target_index:
        observed = runs.observed[:, j]
        rows, n_runs = int(observed.sum()), len(np.unique(runs.run_id[observed]))
        if rows < n_params:
            raise MixlawError(
                f"target {runs.targets[j]!r} has {rows} observed rows, fewer than the "
                f"{n_params} parameters of law {law.name!r}" + fewer_latent_domains(law.name, rows, runs.k)
            )
        if not (law.uses_h or law.uses_n) and runs.d is not None:
            n_d = len(np.unique(runs.d[observed]))
            if n_d < n_params:
                raise MixlawError(
                    f"target {runs.targets[j]!r} is observed at {n_d} distinct D, fewer than the {n_params} "
                    f"parameters of law {law.name!r}"
                )
        elif n_runs < n_params:
            raise MixlawError(
                f"target {runs.targets[j]!r} is observed in {n_runs} runs, fewer than the "
                f"{n_params} parameters of law {law.name!r}" + fewer_latent_domains(law.name, n_runs, runs.k)
            )
    constant = {c: v for c, v in runs.constant_domains().items() if c not in runs.warned_constant}
    if constant and law.uses_h:
        listed = ", ".join(f"{c!r} = {v:g}" for c, v in constant.items())
        warn_user(
            f"the weight of {listed} is the same in every fitted row: the per-domain parameters of law "
            f"{law.name!r} for that domain are not identifiable"
        )


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (a no-op when disabled); returns (callback(step, total), close)."""
    if not enabled:
        return None, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, leave=False)

    def update(step, _total):
        bar.update(step - bar.n)

    return update, bar.close


def fit(
    runs: RunTable,
    law: str | Law,
    *,
    targets: Sequence[str] | None = None,
    parameter_bounds: ParameterBounds = "default",
    objective: Objective = Objective(),
    search: Search = Search(),
    resources: Resources = Resources(),
    progress: bool = False,
) -> FitResult:
    """Fit ``law`` to every target of ``runs`` at once.

    Minimises, per target t, the Huber objective (Huber 1964; Hoffmann et al. 2022 eq. 3; Shukor et al. 2025 sec. 2.3)

        H_t(theta) = c sum_j w_jt Huber_delta(r_jt(theta)),  r = L - L_hat  (or log L - log L_hat),

    with c = 1 / sum_j w_jt for ``reduction="mean"`` (Shukor et al.) or 1 for ``"sum"`` (Hoffmann / Epoch),
    and w_jt = 0 for missing losses. ``search.n_starts`` random starts are screened and the best refined by
    successive halving of Levenberg-Marquardt IRLS runs (``engine``); all targets x starts run in one
    batched, compiled program.

    Args:
      runs: a :class:`RunTable` (``load_runs``).
      law: a registered law name (``available_laws()``) or a :class:`Law`.
      targets: subset of target columns (default: all).
      parameter_bounds: ``"default"`` (plausible exponents and offset), ``None`` (unbounded), or a dict of
        ``name -> (low, high)`` bounds on parameter values. Parameters ending at a bound are flagged in
        ``diagnostics``.
      objective: loss space, Huber delta and reduction (:class:`Objective`).
      search: random starts, successive-halving stages, seed and screening chunk (:class:`Search`); the same seed
        gives bit-identical results on the same machine.
      resources: devices and per-device memory budget (:class:`Resources`); the batch is split over the devices.
      progress: show a progress bar.

    Returns:
      A :class:`FitResult`.
    """
    expect(search, Search, "search")
    expect(resources, Resources, "resources")
    law, index, x, space, y = prepare(runs, law, targets, objective, parameter_bounds)
    problems = make_problems(y, np.ones_like(y), objective.loss_space, objective.reduction)
    update, close = progress_bar(len(search.schedule), f"fit {law.name}", progress)
    try:
        solution = solve(space, x, problems, search, delta=objective.huber_delta, resources=resources, progress=update)
    finally:
        close()
    settings = FitSettings(objective, json_bounds(parameter_bounds), search, int(runs.n_rows))
    return build_result(
        law, runs, [runs.targets[j] for j in index], space, solution, settings, provenance(search.seed, runs.hash())
    )


def prepare(
    runs: RunTable, law: str | Law, targets, objective: Objective, parameter_bounds: ParameterBounds
) -> tuple[Law, list[int], Inputs, ParamSpace, np.ndarray]:
    """Check the table, the law and its targets; returns (law, target indices, row inputs, coordinate space,
    losses (T, rows))."""
    check_run_table(runs)
    expect(objective, Objective, "objective")
    law = get_law(law)
    index = runs.target_index(targets)
    check_identifiable(law, runs, index)
    x = law_inputs(law, runs)
    space = make_space(law, runs.k, objective.loss_space, parameter_bounds)
    y = runs.losses[:, index].T
    if (np.nan_to_num(y, nan=1.0) <= 0).any():
        raise MixlawError("losses must be > 0 (cross-entropies); this RunTable holds a loss <= 0")
    return law, index, x, space, y


def check_run_table(runs) -> None:
    """A fit takes a RunTable; a frame or a path gets a MixlawError saying how to make one."""
    if not isinstance(runs, RunTable):
        raise MixlawError(
            f"runs must be a RunTable, not {type(runs).__name__}: load the table first, e.g. "
            f"mj.load_runs(table, weights='weight_*', N='model_size', D='n_tokens', targets='*_loss')"
        )


def unconfirmed_flag(n_agreeing: int, search: Search, rounds: int) -> str:
    """The flag of a best point that too few final starts agree on (``options.Confirmation``)."""
    rule = search.confirm
    needed = rule.needed(search.schedule[-1].keep)
    return (
        f"best point not confirmed: {n_agreeing} final start(s) within rtol {rule.rtol:g} of it, {needed} needed, "
        f"after {rounds} extra round(s) of search"
    )


def json_bounds(parameter_bounds: ParameterBounds) -> str | dict | None:
    """Parameter bounds as a fit records them (``FitSettings.parameter_bounds``): JSON values."""
    if parameter_bounds is None or isinstance(parameter_bounds, str):
        return parameter_bounds
    return {k: [float(v) for v in b] for k, b in parameter_bounds.items()}


def build_result(
    law: Law,
    runs: RunTable,
    targets: list[str],
    space: ParamSpace,
    solution: Solution,
    settings: FitSettings,
    prov: dict,
) -> FitResult:
    """Package an engine solution as a FitResult.

    A target whose every start failed (non-finite objective) is left out of the result with a MixlawWarning
    naming it, and listed in ``settings.failed_targets``; if every target failed, that is a MixlawError.
    """
    failed = [t for t, f in zip(targets, solution.objective) if not np.isfinite(f)]
    advice = "check the data, the law and the parameter bounds"
    if len(failed) == len(targets):
        raise MixlawError(f"every start failed (non-finite objective) for targets {failed}; {advice}")
    if failed:
        warn_user(f"every start failed (non-finite objective) for targets {failed}: left out of the result; {advice}")
        keep = [j for j, t in enumerate(targets) if t not in failed]
        solution = dataclasses.replace(
            solution,
            **{f.name: getattr(solution, f.name)[keep] for f in dataclasses.fields(solution) if f.name != "n_final"},
        )
        targets = [targets[j] for j in keep]
        settings = dataclasses.replace(settings, failed_targets=failed)
    u = np.asarray(space.to_law(solution.z))
    diagnostics = {}
    for j, t in enumerate(targets):
        flags = space.flags(u[j])
        gradient_norm = float(solution.gradient_norm[j])
        if not np.isfinite(gradient_norm):
            flags.append("gradient not finite at the optimum (a parameter at an extreme value)")
        confirmed = bool(solution.confirmed[j])
        if not confirmed:
            flags.append(unconfirmed_flag(int(solution.n_in_basin[j]), settings.search, int(solution.rounds[j])))
        diagnostics[t] = Diagnostics(
            objective=float(solution.objective[j]),
            gradient_norm=gradient_norm if np.isfinite(gradient_norm) else None,
            n_in_basin=int(solution.n_in_basin[j]),
            n_final=int(solution.n_final),
            n_failed_starts=int(solution.n_failed[j]),
            iterations=int(solution.iterations[j]),
            status=Status(int(solution.status[j])),
            confirmed=confirmed,
            extra_rounds=int(solution.rounds[j]),
            flags=tuple(flags),
        )
    unconfirmed = [t for t, d in diagnostics.items() if not d.confirmed]
    if unconfirmed:
        warn_user(
            f"the best point of {', '.join(map(repr, unconfirmed))} is not confirmed: too few final starts agree on "
            f"it (see diagnostics), so a better basin may exist; search more (Search(n_starts=...) or "
            f"Search(confirm=Confirmation(rounds=...)))"
        )
    return FitResult(
        law=law.name,
        k=runs.k,
        targets=tuple(targets),
        weight_columns=runs.weight_columns,
        n_column=runs.n_column,
        d_column=runs.d_column,
        weight_range=np.stack([runs.h.min(axis=0), runs.h.max(axis=0)], axis=1),
        coordinates=u,
        objective=np.asarray(solution.objective),
        diagnostics=diagnostics,
        settings=settings,
        provenance=prov,
        scale_range={
            name: [float(v.min()), float(v.max())] for name, v in (("N", runs.n), ("D", runs.d)) if v is not None
        },
        unique_tokens=runs.unique_tokens if law.uses_u else None,
        loss_range={t: _observed_range(runs, t) for t in targets},
    )


def _observed_range(runs: RunTable, target: str) -> list[float]:
    """[smallest, largest] observed loss of ``target``."""
    j = runs.targets.index(target)
    values = runs.losses[runs.observed[:, j], j]
    return [float(values.min()), float(values.max())]


__all__ = ["fit", "prepare"]
