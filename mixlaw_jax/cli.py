"""The ``mixlaw`` command: fit, predict, optimize, bootstrap, report, compare, nested, design and demo.

    mixlaw demo                                  the whole report on the bundled example table
    mixlaw fit RUNS --law joint --out fit.json   fit a law to a CSV / Parquet table
    mixlaw predict fit.json RUNS                 predicted losses (with intervals from a bootstrap file)
    mixlaw optimize fit.json --N 7e9 --D 1.5e11  optimal mixture h*
    mixlaw bootstrap RUNS --law joint --out b.json
    mixlaw report RUNS --law additive --law joint --holdout 'model_size > 1.3e9' --out report/
    mixlaw nested RUNS --budget 2.7e9,1e11      Ye et al.'s pipeline: losses and h* at (N*, D*)
    mixlaw compare RUNS --law additive --law joint --split largest   choose a law on held-out rows
    mixlaw design 7 40 --scales 1e8:2e9,3e8:6e9 --out swarm.csv      a first swarm of runs to train

Errors in the input are one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import re
import signal
import sys
import warnings

from .compile_cache import ensure_compilation_cache
from .errors import MixlawError, MixlawWarning
from .options import BOOTSTRAP_SEARCH, RESAMPLE, Objective, Search, Stage


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", help="CSV or Parquet table, one row per run and checkpoint")
    p.add_argument(
        "--weights",
        default="weight_*",
        help="mixture-weight columns: a glob or comma-separated names, or 'none' for a table without mixtures "
        "(default: %(default)s)",
    )
    p.add_argument("--N", default="model_size", help="model-size column, or 'none' (default: %(default)s)")
    p.add_argument("--D", default="n_tokens", help="token column, or 'none' (default: %(default)s)")
    p.add_argument(
        "--targets", default="*_loss", help="loss columns: a glob or comma-separated names (default: %(default)s)"
    )
    p.add_argument(
        "--where",
        help="rows to fit: comparisons of columns with numbers or strings joined by and / or / "
        "not, e.g. 'model_size <= 1.3e9 and n_tokens > 1e9'",
    )
    p.add_argument(
        "--drop-first-checkpoints",
        type=int,
        default=0,
        metavar="K",
        help="drop each run's K smallest-D checkpoints before fitting (Shukor et al.'s protocol: 2)",
    )
    p.add_argument("--run-id", help="column identifying runs (default: a run is a distinct mixture and N)")
    p.add_argument(
        "--renormalize",
        action="store_true",
        help="rescale weight rows that do not sum to 1 onto the simplex (with a warning saying by how much)",
    )
    p.add_argument(
        "--duplicates",
        choices=["keep", "merge", "error"],
        default="keep",
        help="rows repeating a checkpoint of a run: keep them (with a warning), merge each group into one "
        "row, or stop with an error (default: %(default)s)",
    )
    p.add_argument("--k", type=int, help="number of mixture domains expected; an error if the weight columns differ")


def _columns(spec: str):
    return spec if any(c in spec for c in "*?[") else [s.strip() for s in spec.split(",") if s.strip()]


def _load(args):
    """The run table named by the table arguments, with the rows ``--where`` selects."""
    from .data import load_runs

    def none(v):
        return None if v is None or v.lower() == "none" else v

    runs = load_runs(
        args.runs,
        weights=None if args.weights.lower() == "none" else _columns(args.weights),
        N=none(args.N),
        D=none(args.D),
        targets=_columns(args.targets),
        run_id=args.run_id,
        renormalize=args.renormalize,
        duplicates=args.duplicates,
        k=args.k,
    )
    if args.where:
        runs = runs.query(args.where)
    if args.drop_first_checkpoints:
        runs = runs.drop_first_checkpoints(args.drop_first_checkpoints)
    return runs


def _fit_schedule(text: str):
    """'1024x30x0.25,256x60' -> ((1024, 30, 0.25), (256, 60)): successive-halving stages (``options.Stage``)."""
    usage = "expected stages KEEPxITERS[xROWFRACTION] separated by commas, e.g. 64x100,16x300"
    try:
        stages = tuple(
            tuple(int(v) if i < 2 else float(v) for i, v in enumerate(stage.split("x"))) for stage in text.split(",")
        )
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid schedule {text!r}: {usage}") from None
    try:
        for stage in stages:
            Stage.of(stage)
    except MixlawError as err:
        raise argparse.ArgumentTypeError(f"invalid schedule {text!r}: {err}; {usage}") from None
    return stages


def _schedule_text(schedule) -> str:
    """Stages as ``--schedule`` takes them: KEEPxITERS, with xROWFRACTION where it is not 1."""
    stages = (Stage.of(s).as_tuple() for s in schedule)
    return ",".join("x".join(f"{v:g}" for v in (s if s[2] != 1 else s[:2])) for s in stages)


def _positive_numbers(text: str) -> list[float]:
    """'7e9' or '1e9,7e9' -> [7e9] / [1e9, 7e9]; every value finite and > 0."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid number list {text!r}: expected numbers separated by commas"
        ) from None
    if not all(v > 0 and v != float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: every number must be finite and > 0")
    return values


def _pairs(text: str) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'}."""
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise argparse.ArgumentTypeError(
                f"invalid item {item!r} in {text!r}: expected NAME=VALUE pairs separated by commas"
            )
        out[name.strip()] = value.strip()
    return out


def _number_pairs(text: str) -> dict[str, float]:
    out = {}
    for name, value in _pairs(text).items():
        try:
            out[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {value!r} for {name!r}: not a number") from None
    return out


def _bounds(text: str):
    """'data', 'simplex', or 'weight_a=0:0.3,weight_b=0.1:0.5' -> {domain: (lo, hi)}."""
    if text in ("data", "simplex"):
        return text
    out = {}
    for name, value in _pairs(text).items():
        lo, sep, hi = value.partition(":")
        try:
            out[name] = (float(lo), float(hi))
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(f"invalid bounds {value!r} for {name!r}: expected LO:HI, e.g. 0.05:0.4")
    return out


def _file_kind(path: str) -> str | None:
    """The ``kind`` recorded in a result file, or None when it cannot be read (the loader then says why)."""
    import json

    try:
        with open(path) as f:
            payload = json.load(f)
    except (OSError, ValueError):
        return None
    return payload.get("kind") if isinstance(payload, dict) else None


def _load_result(path: str):
    """(FitResult, BootstrapResult or None) from a fit file or a bootstrap file."""
    from .bootstrap import load_bootstrap
    from .results import load_fit

    if _file_kind(path) == "bootstrap":
        boot = load_bootstrap(path)
        return boot.fit, boot
    return load_fit(path), None


def _write_frame(frame, path: str) -> None:
    """A table as CSV, or as JSON records (``.json``), written atomically."""
    from ._io import atomic_write_bytes, atomic_write_json

    if path.endswith(".json"):
        atomic_write_json(
            path,
            {
                "kind": "predictions",
                "schema_version": 1,
                "columns": list(map(str, frame.columns)),
                "rows": frame.to_dict(orient="records"),
            },
        )
    else:
        atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))


def _write_table(frame, path: str) -> None:
    """A table of runs as CSV, or Parquet for a .parquet / .pq name, written atomically."""
    from ._io import atomic_write_bytes

    if path.endswith((".parquet", ".pq")):
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))


def _percent(value: float) -> str:
    """An MRE for printing: 0.234%, or 1.2e+05% when it is huge (never dozens of digits)."""
    return f"{value:.3f}%" if abs(value) < 1e4 else f"{value:.3g}%"


def _print_fit(result, train) -> None:
    train_mre = result.mre(train)
    print(f"law {result.law}: {len(result.targets)} targets")
    for j, t in enumerate(result.targets):
        d = result.diagnostics[t]
        print(
            f"  {t:24s} objective {result.objective[j]:.6g}  train MRE {_percent(train_mre[t])}"
            f"  best basin {d.n_in_basin}/{d.n_final} {'confirmed' if d.confirmed else 'UNCONFIRMED'}"
            f"  {d.status.label}"
        )
        for flag in d.flags:
            print(f"      note: {flag}")


def cmd_fit(args) -> None:
    from ._io import output_file
    from .fitting import fit

    output_file(args.out, [args.runs])
    runs = _load(args)
    result = fit(
        runs,
        args.law,
        parameter_bounds=_parameter_bounds(args),
        objective=_objective(args),
        search=_search(args),
        progress=not args.quiet,
    )
    result.save(args.out)
    _print_fit(result, runs)
    print(f"wrote {args.out}")


def cmd_predict(args) -> None:
    import pandas as pd

    from ._io import output_file
    from .data import read_table

    if args.out:
        output_file(args.out, [args.fit, args.runs])
    result, boot = _load_result(args.fit)
    frame = read_table(args.runs)
    if boot is None:
        predicted = result.predict(frame)
    else:  # intervals, and the bagged prediction (the replicates' median)
        predicted = pd.concat([boot.predict_interval(frame), boot.predict(frame).add_suffix("_bagged")], axis=1)
    mre = result.mre(frame) if any(t in frame.columns for t in result.targets) else {}
    out = frame.copy()
    for column in predicted.columns:
        out[f"predicted_{column}"] = predicted[column].to_numpy()
    for t, value in mre.items():
        print(f"  {t:24s} MRE {_percent(value)}")
    if args.out:
        _write_frame(out, args.out)
        print(f"wrote predictions of {len(out)} rows to {args.out}")
    else:
        print(out[[c for c in out.columns if c.startswith("predicted_")]].to_string())


def cmd_optimize(args) -> None:
    from ._io import output_file
    from .mixture import WEIGHTED, DataLimits, optimal_mixture

    if args.out:
        output_file(args.out, [args.fit])
    result, boot = _load_result(args.fit)
    targets = _columns(args.targets) if args.targets else None
    if isinstance(targets, str):
        import fnmatch

        targets = [t for t in result.targets if fnmatch.fnmatchcase(t, targets)] or [targets]
    token_budget = args.token_budget
    if args.max_epochs is not None:
        if not token_budget:
            raise MixlawError("--max-epochs caps the epochs of the pools of --unique-tokens: give both")
        token_budget = DataLimits(token_budget, max_epochs=args.max_epochs)
    options = dict(
        targets=targets,
        target_weights=args.target_weights,
        weight_bounds=args.weight_bounds,
        token_budget=token_budget,
        fixed=args.fixed,
    )
    mixture = optimal_mixture(result, N=args.N, D=args.D, n_starts=args.starts, seed=args.seed, **options)
    if args.out:
        mixture.save(args.out)
    o = mixture.objectives.index(WEIGHTED)
    print(f"law {mixture.law}: optimal mixture of the weighted objective over {', '.join(mixture.targets)}")
    for b in range(mixture.h.shape[0]):
        budget = ", ".join(
            f"{name} = {v[b, o]:.4g}" for name, v in (("N", mixture.n), ("D", mixture.d)) if v is not None
        )
        print(
            f"  {budget or 'budget'}: predicted loss {mixture.objective[b, o]:.5g} "
            f"(uniform mixture {mixture.reference_objective[b, o]:.5g}, gain {mixture.gain[b, o]:.4g})"
        )
        interval = None
        if boot is not None and mixture.h.shape[0] == 1:
            interval = boot.mixture_interval(args.N and args.N[0], args.D and args.D[0], seed=args.seed, **options)
        if mixture.limit_cost is not None:
            print(
                f"    the data limits cost {mixture.limit_cost[b, o]:.4g} in loss (the same law without limits: "
                + ", ".join(f"{d} {w:.4f}" for d, w in zip(mixture.domains, mixture.unlimited_h[b, o]))
                + ")"
            )
        epochs = mixture.epochs
        for i, domain in enumerate(mixture.domains):
            line = f"    {domain:28s} {mixture.h[b, o, i]:.4f}"
            if epochs is not None and epochs[b, o, i] > 0:
                line += f"  ({epochs[b, o, i]:.3g} epochs)"
            if interval is not None:
                line += f"  [{interval['lo'].iloc[i]:.4f}, {interval['hi'].iloc[i]:.4f}]"
            if mixture.active[b, o, i]:
                line += f"  (at {mixture.active[b, o, i]} bound)" if mixture.active[b, o, i] != "fixed" else "  (fixed)"
            print(line)
        if interval is not None:
            print(f"    intervals: {100 * boot.level:g}% bootstrap percentile, {boot.n_replicates} replicates")
    if args.out:
        print(f"wrote {args.out}")


def cmd_bootstrap(args) -> None:
    from ._io import output_file
    from .bootstrap import bootstrap

    output_file(args.out, [args.runs])
    runs = _load(args)
    boot = bootstrap(
        runs,
        args.law,
        n_replicates=args.replicates,
        level=args.level,
        resample=args.resample,
        parameter_bounds=_parameter_bounds(args),
        objective=_objective(args),
        search=_replicate_search(args),
        full_fit_search=_search(args),
        progress=not args.quiet,
    )
    boot.save(args.out)
    intervals, errors = boot.intervals(), boot.standard_errors
    print(
        f"law {boot.fit.law}: {boot.n_replicates} replicates ({RESAMPLE[boot.resample]}), "
        f"{100 * boot.level:g}% percentile intervals"
    )
    for t in boot.targets:
        print(
            f"  {t}  (replicates not converged: {100 * boot.fraction_unconverged[t]:.0f}%, best point unconfirmed: "
            f"{100 * boot.fraction_unconfirmed[t]:.0f}%)"
        )
        for name, value in boot.fit.params[t].items():
            labels = [f"{name}[{d}]" for d in boot.fit.weight_columns] if isinstance(value, list) else [name]
            values = value if isinstance(value, list) else [value]
            errs = errors[t][name] if isinstance(value, list) else [errors[t][name]]
            pairs = intervals[t][name] if isinstance(value, list) else [intervals[t][name]]
            for label, v, se, (lo, hi) in zip(labels, values, errs, pairs):
                print(f"    {label:32s} {v:12.5g}  se {se:10.3g}  [{lo:.5g}, {hi:.5g}]")
    print(f"wrote {args.out}")


def _search(args):
    """The fit's search from ``--starts``, ``--schedule`` and ``--seed``."""
    return Search(args.starts, args.schedule, args.seed)


def _replicate_search(args):
    """A bootstrap replicate's search from ``--replicate-starts``, ``--replicate-schedule`` and ``--seed``."""
    return Search(args.replicate_starts, args.replicate_schedule, args.seed, warm_starts=1)


def _objective(args):
    return Objective(loss_space=args.loss_space)


def _parameter_bounds(args) -> str | None:
    return None if args.unbounded else "default"


def _report_settings(args) -> dict:
    return dict(
        search=_search(args),
        replicates=args.replicates,
        replicate_search=_replicate_search(args),
        level=args.level,
        jobs=args.jobs,
        progress=not args.quiet,
    )


def cmd_report(args) -> None:
    from .report import build_report

    if args.budget is not None and len(args.budget) != 2:
        raise MixlawError(f"--budget takes two numbers N,D, not {len(args.budget)}")
    runs = _load(args)
    N, D = args.budget or (None, None)
    build_report(
        runs, args.law, args.out, holdout=args.holdout, N=N, D=D, source=f"table {args.runs}", **_report_settings(args)
    )


EPILOG_NESTED = """examples:
  mixlaw nested runs.csv --budget 2.7e9,1e11 --where 'model_size <= 1.3e9'
  mixlaw nested runs.csv --budget 7e9,1.5e11 --mixing-law additive_mixture --replicates 200 --out nested.json
  mixlaw nested runs.csv --budget 7e9,1.5e11 --predict candidates.csv      predictions for other mixtures
Stage (a) fits L(D) = E + B/D^beta to each run's checkpoints and predicts it at D*; stage (b) fits
L(N) = E + A/N^alpha to each mixture's sizes at D* and predicts N*; stage (c) fits the mixing law over the
mixtures at (N*, D*), which predicts any mixture there and gives h*. A mixture needs 3 model sizes, a run 3
checkpoints; what lacks them is named in a warning and left out. --starts, --schedule and --seed set the mixing
stage's search; the step and size stages (three parameters each) screen 256 starts."""


def cmd_nested(args) -> None:
    from ._io import atomic_write_json, output_file
    from .data import read_table
    from .mixture import WEIGHTED
    from .nested import POWER_LAW_SEARCH, SIZE_LAW, NestedSearch, nested_pipeline

    if len(args.budget) != 2:
        raise MixlawError(f"--budget takes two numbers N,D, not {len(args.budget)}")
    if args.out:
        output_file(args.out, [args.runs] + ([args.predict] if args.predict else []))
    runs = _load(args)
    power = Search(POWER_LAW_SEARCH.n_starts, POWER_LAW_SEARCH.schedule, args.seed)
    search = NestedSearch(power, power, Search(args.starts, args.schedule, args.seed))
    n_star, d_star = args.budget
    result = nested_pipeline(
        runs,
        N=n_star,
        D=d_star,
        mixing_law=args.mixing_law,
        n_replicates=args.replicates,
        level=args.level,
        objective=_objective(args),
        search=search,
        progress=not args.quiet,
    )
    print(f"nested pipeline (Ye et al. 2024) at N* = {n_star:.4g}, D* = {d_star:.4g}:")
    print(result.summary().to_string(float_format=lambda v: f"{v:.4g}"))
    if len(result.excluded):
        print(f"left out: {len(result.excluded)} (run or mixture, target) pairs (listed with --out)")
    best = result.optimal_mixture()
    o = best.objectives.index(WEIGHTED)
    interval = result.mixture_interval() if args.replicates else None
    print(
        f"\nh* at N = {n_star:.4g}, D = {d_star:.4g} (mean of {', '.join(best.targets)}): predicted loss "
        f"{best.objective[0, o]:.5g} (uniform mixture {best.reference_objective[0, o]:.5g})"
    )
    for i, domain in enumerate(best.domains):
        line = f"    {domain:28s} {best.h[0, o, i]:.4f}"
        if interval is not None:
            line += f"  [{interval['lo'].iloc[i]:.4f}, {interval['hi'].iloc[i]:.4f}]"
        print(line)
    table = read_table(args.predict) if args.predict else result.mixtures
    predicted = result.predict_interval(table) if args.replicates else result.predict(table)
    if args.predict:
        groups = [(f"the mixtures of {args.predict}", predicted)]
    else:
        fitted = result.mixtures["fitted"].to_numpy()
        groups = [
            ("the fitted mixtures", predicted[fitted]),
            (
                f"the table's other mixtures (seen at fewer than {SIZE_LAW.n_params(0)} sizes: extrapolations)",
                predicted[~fitted],
            ),
        ]
    for where, rows in groups:
        if len(rows):
            print(f"\npredicted losses at N* = {n_star:.4g}, D* = {d_star:.4g} for {where}:")
            print(rows.to_string(float_format=lambda v: f"{v:.5g}"))
    if args.out:
        atomic_write_json(args.out, result.to_dict())
        print(f"wrote {args.out}")


EPILOG_PROPOSE = """examples:
  mixlaw propose runs.csv --law joint --budget 7e9,1.4e11 --out next.csv     4 runs from 1000 candidates
  mixlaw bootstrap runs.csv --law additive --replicates 200 --out boot.json
  mixlaw propose runs.csv --bootstrap boot.json --budget 7e9,1.4e11 --n 8 --candidates grid.csv --cost runs
  mixlaw propose runs.csv --law joint --budget 7e9,1.4e11 --criterion loss --weight-bounds simplex
With --law the uncertainty is the Laplace approximation around the fit (sigma points along the principal axes of
its covariance); with --bootstrap it is the replicates. Each run's variance_reduction is the share of the
criterion's variance it removes given the runs above it (an ensemble Kalman update of the members); score is
that share per unit of cost; pins_down names the domain of h* and the law parameter whose spread it narrows most.
A budget within the table's scales is warned about: proposals pay off where h* is extrapolated."""

EPILOG_DESIGN = """examples:
  mixlaw design 7 40 --scales 1e8:2e9,3e8:6e9 --out swarm.csv           40 mixtures of weight_0..weight_6
  mixlaw design weight_web,weight_code,weight_books 24 --scales 1e8:2e9 --method space-filling \\
      --weight-bounds 'weight_code=0.05:0.4' --fixed 'weight_books=0.1' --out swarm.csv
  mixlaw design 4 32 --scales 1e8:2e9,3e8:6e9 --method space-filling --unique-tokens weight_0=2e10,weight_1=5e10 \\
      --target-tokens 1e11 --max-epochs 4 --out swarm.csv           proxies that repeat data as the 1e11 run will
  mixlaw design 5 64 --scales 2e7:4e8 --prior 'weight_0=0.4,weight_1=0.3,weight_2=0.1,weight_3=0.1,weight_4=0.1' \\
      --concentration 20 --seed 3 --out swarm.parquet
Each mixture is trained at every scale N:D: one row per (mixture, scale), with columns run_id, mixture, the
weights, model_size and n_tokens. Add the loss columns once the runs are trained and fit them, e.g.
`mixlaw fit swarm.csv --law joint --run-id run_id ...`. --method dirichlet draws around --prior (uniform by
default) with alpha = concentration * prior, rejecting draws outside the bounds; --method space-filling picks each
next mixture farthest from those chosen among many candidates spread over the bounded simplex. Both print the
smallest distance between two mixtures and each domain's weight range."""


def _scale_pairs(text: str) -> list[tuple[float, float]]:
    """'1e8:2e9,3e8:6e9' -> [(1e8, 2e9), (3e8, 6e9)]; every value finite and > 0."""
    out = []
    for item in text.split(","):
        size, sep, tokens = item.partition(":")
        try:
            pair = (float(size), float(tokens))
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(
                f"invalid scale {item!r} in {text!r}: expected N:D pairs separated by commas, e.g. 1e8:2e9,3e8:6e9"
            )
        if not all(0 < v < float("inf") for v in pair):
            raise argparse.ArgumentTypeError(f"invalid scale {item!r}: N and D must be finite and > 0")
        out.append(pair)
    return out


def _domains(text: str):
    """'7' -> 7 (weight_0..weight_6); 'weight_a,weight_b' -> the names."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    return [name.strip() for name in text.split(",")]


def cmd_design(args) -> None:
    from ._io import output_file
    from .design import DataLimits, design_swarm

    if args.out:
        output_file(args.out)
    limits = None
    if args.unique_tokens or args.target_tokens or args.max_epochs:
        if not (args.unique_tokens and args.target_tokens):
            raise MixlawError("data limits need both --unique-tokens and --target-tokens (the target run's D)")
        limits = DataLimits(args.unique_tokens, args.target_tokens, args.max_epochs)
    table = design_swarm(
        _domains(args.domains),
        args.n,
        scales=args.scales,
        prior=args.prior,
        concentration=args.concentration,
        weight_bounds=args.weight_bounds,
        fixed=args.fixed,
        method=args.method,
        data_limits=limits,
        seed=args.seed,
    )
    attrs = table.attrs
    n_mixtures = int(table["mixture"].max()) + 1
    n_runs = int(table["run_id"].max()) + 1
    print(
        f"{args.method} design (seed {args.seed}): {n_mixtures} mixtures x {len(args.scales)} "
        f"scale{'s' * (len(args.scales) != 1)} = {len(table)} rows, {n_runs} runs"
    )
    distance = attrs["min_distance"]
    print(f"  smallest distance between two mixtures: {'-' if distance is None else f'{distance:.4g}'}")
    if "acceptance" in attrs:
        print(f"  Dirichlet draws inside the bounds: {100 * attrs['acceptance']:.3g}%")
    print("  weight range per domain (designed / feasible):")
    for domain, (lo, hi) in attrs["weight_range"].items():
        flo, fhi = attrs["feasible_range"][domain]
        print(f"    {domain:28s} {lo:.4f} .. {hi:.4f}   /  {flo:.4f} .. {fhi:.4f}")
    if limits is not None:
        print("  epochs of each limited domain at the target's D (the proxies' pools repeat it alike):")
        for domain, column in attrs["unique_tokens"].items():
            if column is not None:
                lo, hi = attrs["epochs"][domain]
                print(f"    {domain:28s} {lo:.3g} .. {hi:.3g}   (pool per row: column {column})")
    if args.out:
        _write_table(table, args.out)
        print(f"wrote {args.out}")
    else:
        print(table.to_string(index=False))


def cmd_propose(args) -> None:
    from ._io import output_file
    from .data import read_table
    from .proposals import describe_ensemble, propose_runs

    inputs = [args.runs] + [p for p in (args.candidates, args.bootstrap) if p and not p.isdigit()]
    if args.out:
        output_file(args.out, inputs)
    runs = _load(args)
    if args.bootstrap:
        law = _load_result(args.bootstrap)[1]
        if law is None:
            raise MixlawError(f"--bootstrap {args.bootstrap}: a fit file has no replicates; give a bootstrap file")
    elif args.law:
        law = args.law
    else:
        raise MixlawError("give --law (fitted here) or --bootstrap FILE (from `mixlaw bootstrap`)")
    candidates = args.candidates
    if candidates is not None:
        candidates = int(candidates) if candidates.isdigit() else read_table(candidates)
    proposed = propose_runs(
        runs,
        law,
        budget=args.budget,
        n=args.n,
        candidates=candidates,
        cost=args.cost,
        criterion=args.criterion,
        targets=_columns(args.objective_targets) if args.objective_targets else None,
        target_weights=args.target_weights,
        weight_bounds=args.weight_bounds,
        fixed=args.fixed,
        seed=args.seed,
        progress=not args.quiet,
    )
    attrs = proposed.attrs
    what = "Var h* (summed over domains)" if attrs["criterion"] == "h_star" else "Var of the loss at h*"
    budget = "" if attrs["budget"] is None else f" at N = {attrs['budget'][0]:.4g}, D = {attrs['budget'][1]:.4g}"
    print(
        f"law {attrs['law']}: {len(proposed)} runs to train next{budget}, chosen from {attrs['candidates']} "
        f"candidates by {what} removed per unit of cost (uncertainty: {describe_ensemble(attrs)})"
    )
    print(
        f"  {what}: {attrs['variance_before']:.4g} now, {attrs['variance_after']:.4g} predicted after these runs "
        f"(-{100 * (1 - attrs['variance_after'] / attrs['variance_before']):.0f}%)"
    )
    print("  h* now: " + ", ".join(f"{d} {v:.3f} ± {attrs['h_star_sd'][d]:.3f}" for d, v in attrs["h_star"].items()))
    print(f"  loss at h* now: {attrs['loss_at_h_star']:.4g} ± {attrs['loss_at_h_star_sd']:.2g}")
    shown = proposed.copy()
    shown["variance_reduction"] = (100 * shown["variance_reduction"]).map("{:.1f}%".format)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        _write_table(proposed, args.out)
        print(f"wrote {args.out}")


def cmd_demo(args) -> None:
    from .datasets import load_example
    from .report import build_report

    build_report(
        load_example(),
        args.law or DEMO_LAWS,
        args.out,
        holdout=DEMO_HOLDOUT,
        N=DEMO_N,
        D=DEMO_D,
        title="mixlaw demo",
        source="bundled synthetic table (mixlaw_jax/datasets/synthetic_mixtures.csv)",
        **_report_settings(args),
    )


def _split(args):
    """The comparison's split from ``--holdout``, ``--split``, ``--folds`` and ``--split-seed``."""
    from .comparison import HeldOut, KFold, LeaveOneScaleOut

    if args.holdout is not None:
        if args.split is not None:
            raise MixlawError(f"--holdout and --split {args.split} are two splits; give one")
        return HeldOut(args.holdout)
    if args.split in (None, "kfold"):
        return KFold(args.folds, args.split_seed)
    return LeaveOneScaleOut(largest_only=args.split == "largest")


def cmd_compare(args) -> None:
    from ._io import output_file
    from .comparison import compare_laws

    for path in (args.out, args.figure):
        if path is not None:
            output_file(path, [args.runs])
    split = _split(args)
    runs = _load(args)
    comparison = compare_laws(
        runs,
        args.law,
        split=split,
        parameter_bounds=_parameter_bounds(args),
        objective=_objective(args),
        search=_search(args),
        n_replicates=args.replicates,
        level=args.level,
        progress=not args.quiet,
    )
    print(
        f"{split.describe()}: {len(comparison.folds)} fold(s), "
        f"{int(comparison.folds['test_rows'].sum())} held-out rows; scores over every held-out row with "
        f"{100 * comparison.level:.0f}% bootstrap intervals over held-out {comparison.resampled}"
    )
    for metric, title in (("mre", "held-out MRE %"), ("r2", "held-out R²"), ("spearman", "held-out Spearman rho")):
        print(f"\n{title}")
        print(comparison.table(metric).to_string())
    if len(comparison.folds) > 1:
        print("\nheld-out MRE % per fold")
        print(comparison.per_fold("mre").to_string(float_format=lambda v: f"{v:.3f}"))
    winners = comparison.winners(args.criterion)
    print(f"\nwinner per target by {args.criterion} (overlap: the winner's interval meets the runner-up's)")
    print(winners.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.out:
        comparison.save(args.out)
        print(f"wrote {args.out}")
    if args.figure:
        import io

        from ._io import atomic_write_bytes
        from .figures import law_comparison

        buffer = io.BytesIO()
        law_comparison(comparison).savefig(buffer, format="png", dpi=110)
        atomic_write_bytes(args.figure, buffer.getvalue())
        print(f"wrote {args.figure}")


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 100)


DEMO_LAWS = ["additive", "joint"]
DEMO_HOLDOUT = "model_size > 1.3e9"
DEMO_N, DEMO_D = 7e9, 1.5e11
DEMO_SEARCH = Search(1024, ((64, 40), (16, 150), (4, 300)))
DEMO_REPLICATES = 50
DEMO_REPLICATE_SEARCH = Search(16, ((2, 30), (1, 120)), warm_starts=1)

EPILOG_FIT = """example:
  mixlaw fit runs.csv --law joint --weights 'weight_*' --N model_size --D n_tokens \\
      --targets '*_loss' --where 'model_size <= 1.3e9' --out fit.json"""
EPILOG_PREDICT = """examples:
  mixlaw predict fit.json new_runs.csv                       print predictions (and MRE where losses are given)
  mixlaw predict fit.json held_out.parquet --out pred.csv    write the table with predicted_<target> columns
  mixlaw predict bootstrap.json new_runs.csv --out pred.json with bootstrap intervals (_lo, _hi columns) and the
                                                             replicates' median (_bagged columns)"""
EPILOG_OPTIMIZE = """examples:
  mixlaw optimize fit.json --N 7e9 --D 1.5e11
  mixlaw optimize fit.json --N 1e9,7e9 --D 2e10,1.5e11 --weight-bounds simplex --out mixture.json
  mixlaw optimize fit.json --N 7e9 --D 1.5e11 --weight-bounds 'weight_github=0:0.1' \\
      --target-weights 'arxiv_loss=2,c4_loss=1' --fixed 'weight_book=0.05' --token-budget 'weight_wikipedia=2e10'
  mixlaw optimize bootstrap.json --N 7e9 --D 1.5e11          h* with bootstrap intervals"""
EPILOG_BOOTSTRAP = """example:
  mixlaw bootstrap runs.csv --law joint --where 'model_size <= 1.3e9' --replicates 1000 --out bootstrap.json"""
EPILOG_REPORT = """example:
  mixlaw report runs.csv --law additive --law joint --holdout 'model_size > 1.3e9' --budget 7e9,1.5e11 \\
      --out report/
writes report/index.html (self-contained: figures embedded), report/figures/*.png, fit_<law>.json,
mixture_<law>.json, bootstrap_<law>.json and summary.json."""
EPILOG_COMPARE = """examples:
  mixlaw compare runs.csv --law additive --law joint --split largest       hold out the largest model size
  mixlaw compare runs.csv --law additive --law joint --folds 5 --out comparison.json --figure comparison.png
  mixlaw compare runs.csv --law additive --law joint --split scale         each model size held out in turn
  mixlaw compare swarm.csv --law mixing_exp --law additive_mixture --N none --D none --holdout "split == 'test'"
Each law is refitted on every fold's training rows (all targets in one fit per fold), so a comparison costs
folds x laws fits; --starts and --schedule make each fit lighter."""
EPILOG_DEMO = (
    _wrap(
        f"The demo runs `mixlaw report` on the bundled synthetic table (7 domains, 3 targets): laws "
        f"{' and '.join(DEMO_LAWS)}, held-out rows {DEMO_HOLDOUT!r}, h* at N = {DEMO_N:g}, D = {DEMO_D:g}, with "
        f"lighter settings than `mixlaw report` so that it finishes in a few minutes on 2 CPU cores: "
        f"{DEMO_SEARCH.n_starts} random starts per target, schedule {_schedule_text(DEMO_SEARCH.stages)}, "
        f"{DEMO_REPLICATES} bootstrap replicates of {DEMO_REPLICATE_SEARCH.n_starts} starts each "
        f"(schedule {_schedule_text(DEMO_REPLICATE_SEARCH.stages)}), "
        f"the two laws in parallel. On this table they give the held-out MRE of the library defaults (additive "
        f"identical, joint 0.241% vs 0.234% mean), and bootstrap intervals of h* within 0.002 of those of the default "
        f"replicate settings."
    )
    + """

example:
  mixlaw demo --out mixlaw-demo        then open mixlaw-demo/index.html"""
)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr with exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_weight_args(p: argparse.ArgumentParser, default: str, bounds_help: str) -> None:
    """--weight-bounds (alias --bounds; default ``default``: "data" or "simplex") and --fixed."""
    p.add_argument(
        "--weight-bounds",
        "--bounds",
        dest="weight_bounds",
        type=_bounds,
        default=default,
        metavar=("data|" if default == "data" else "") + "simplex|DOMAIN=LO:HI,...",
        help=bounds_help,
    )
    p.add_argument("--fixed", type=_number_pairs, metavar="DOMAIN=W,...", help="domains held at given weights")


def _add_fit_args(p, *, search, law: bool = True) -> None:
    """--law (when ``law``), --starts, --schedule, --seed, with defaults from ``search``."""
    if law:
        p.add_argument("--law", required=True, help="law name: chinchilla, additive, joint, full, simple, mixing_exp")
    p.add_argument(
        "--starts", type=int, default=search.n_starts, help="random starts per target (default: %(default)s)"
    )
    p.add_argument(
        "--schedule",
        type=_fit_schedule,
        default=search.stages,
        metavar="STAGES",
        help=f"successive-halving stages KEEPxITERS[xROWFRACTION],... (default: {_schedule_text(search.stages)})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts (default: %(default)s)")


def _add_bootstrap_args(p, *, replicates: int, search) -> None:
    """--replicates, --replicate-starts, --replicate-schedule (defaults from the replicate ``search``), --level."""
    p.add_argument(
        "--replicates",
        type=int,
        default=replicates,
        help="bootstrap replicates, whole runs resampled (default: %(default)s)",
    )
    p.add_argument(
        "--replicate-starts",
        type=int,
        default=search.n_starts,
        help="random starts per replicate, besides the warm start at the full fit (default: %(default)s)",
    )
    p.add_argument(
        "--replicate-schedule",
        type=_fit_schedule,
        default=search.stages,
        metavar="STAGES",
        help=f"stages of each replicate's refit (default: {_schedule_text(search.stages)})",
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: %(default)s)")


def _add_jobs_arg(p) -> None:
    p.add_argument(
        "--jobs",
        type=int,
        help="laws fitted at once, each in its own process (default: as many as laws and CPU cores allow)",
    )


def build_parser() -> argparse.ArgumentParser:

    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="mixlaw",
        formatter_class=raw,
        description=_wrap("Fit data-mixture scaling laws and find optimal training-data mixtures."),
        epilog="Run `mixlaw COMMAND --help` for the options and examples of each command.\n\n"
        "Compiled programs are kept in ~/.cache/mixlaw_jax/xla, so a command repeated on tables of "
        "the same shapes starts\nfaster; MIXLAW_COMPILE_CACHE=DIR (absolute) moves that folder, "
        "MIXLAW_COMPILE_CACHE=off turns the cache off.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="the whole report on the bundled example table",
        epilog=EPILOG_DEMO,
        formatter_class=raw,
        description=_wrap(
            "Fit the additive and joint laws to the bundled "
            "synthetic table, score the held-out larger model, find optimal mixtures with bootstrap intervals, and "
            "write figures and a self-contained HTML report."
        ),
    )
    p.add_argument("--out", default="mixlaw-demo", help="output folder (default: %(default)s)")
    p.add_argument("--law", action="append", help=f"law to fit (repeatable; default: {', '.join(DEMO_LAWS)})")
    _add_fit_args(p, search=DEMO_SEARCH, law=False)
    _add_bootstrap_args(p, replicates=DEMO_REPLICATES, search=DEMO_REPLICATE_SEARCH)
    _add_jobs_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "fit",
        help="fit a law to a run table",
        epilog=EPILOG_FIT,
        formatter_class=raw,
        description=_wrap("Fit one law to every target column at once and write the fit as JSON."),
    )
    _add_table_args(p)
    _add_fit_args(p, search=Search())
    p.add_argument("--out", required=True, help="where to write the fit (JSON)")
    p.add_argument("--loss-space", choices=["raw", "log"], default="raw", help="residuals of L or of log L")
    p.add_argument("--unbounded", action="store_true", help="fit without the default parameter bounds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "predict",
        help="predict losses of runs from a fit",
        epilog=EPILOG_PREDICT,
        formatter_class=raw,
        description=_wrap(
            "Predict every target's loss for the runs of a CSV / "
            "Parquet table with the fit's weight, N and D columns; score the targets present."
        ),
    )
    p.add_argument("fit", help="fit (JSON from `mixlaw fit`) or bootstrap (JSON from `mixlaw bootstrap`)")
    p.add_argument("runs", help="CSV or Parquet table of runs")
    p.add_argument("--out", help="write the table with predicted_<target> columns: CSV, or JSON for a .json name")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "optimize",
        help="optimal mixture h* of a fit at given budgets",
        epilog=EPILOG_OPTIMIZE,
        formatter_class=raw,
        description=_wrap(
            "Minimise the weighted mean of the targets' predicted "
            "losses over the mixture simplex at each budget (N, D), by default within the range of "
            "weights each domain has in the fitted runs."
        ),
    )
    p.add_argument(
        "fit",
        help="fit (JSON from `mixlaw fit`) or bootstrap (JSON from `mixlaw bootstrap`; with one "
        "budget, h* then comes with bootstrap intervals)",
    )
    p.add_argument("--N", type=_positive_numbers, help="model size(s), comma-separated for several budgets")
    p.add_argument("--D", type=_positive_numbers, help="training tokens, one per budget (or one for all)")
    p.add_argument("--targets", help="targets of the objective: a glob or comma-separated names (default: all)")
    p.add_argument(
        "--target-weights",
        type=_number_pairs,
        metavar="T=W,...",
        help="weights of the targets in the objective, e.g. 'arxiv_loss=2,c4_loss=1' (default: equal)",
    )
    _add_weight_args(
        p,
        "data",
        "per-domain bounds on the weights h: the fitted runs' range ('data', default), the whole simplex, or "
        "explicit ranges (other domains 0:1)",
    )
    p.add_argument(
        "--token-budget",
        "--unique-tokens",
        dest="token_budget",
        type=_number_pairs,
        metavar="DOMAIN=TOKENS,...",
        help="unique tokens per domain: caps h_i <= tokens / D, or, for a repetition-aware law (<law>_repetition), "
        "the pools whose repeats the law prices",
    )
    p.add_argument(
        "--max-epochs",
        type=float,
        metavar="E",
        help="with --unique-tokens: allow each limited domain at most E epochs, h_i <= E * TOKENS / D (for any law; "
        "a budget these caps cannot fill is an error)",
    )
    p.add_argument("--starts", type=int, default=64, help="starts per budget and objective (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts (default: %(default)s)")
    p.add_argument("--out", help="write the result as JSON (load with mixlaw_jax.load_mixture)")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser(
        "bootstrap",
        help="bootstrap intervals of a law's parameters",
        epilog=EPILOG_BOOTSTRAP,
        formatter_class=raw,
        description=_wrap(
            "Fit a law to the table, refit it to resampled tables "
            "(all replicates in one batched call) and write the replicates as JSON; prints standard "
            "errors and percentile intervals of every parameter."
        ),
    )
    _add_table_args(p)
    _add_fit_args(p, search=Search())
    _add_bootstrap_args(p, replicates=1000, search=BOOTSTRAP_SEARCH)
    p.add_argument(
        "--resample",
        choices=list(RESAMPLE),
        default="runs",
        help="resample whole runs (all their checkpoints together), single rows, or weight every run by a "
        "Dirichlet draw (the Bayesian bootstrap: no run dropped) (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="where to write the bootstrap (JSON)")
    p.add_argument("--loss-space", choices=["raw", "log"], default="raw", help="residuals of L or of log L")
    p.add_argument("--unbounded", action="store_true", help="fit without the default parameter bounds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser(
        "report",
        help="fits, held-out scores, h*, bootstrap and figures as an HTML report",
        epilog=EPILOG_REPORT,
        formatter_class=raw,
        description=_wrap(
            "Fit each law to the training rows, score the held-out rows, find optimal "
            "mixtures with bootstrap intervals, draw the figures and write a self-contained HTML page."
        ),
    )
    _add_table_args(p)
    p.add_argument("--law", action="append", required=True, help="law to fit (repeatable)")
    p.add_argument(
        "--holdout",
        help="held-out rows, a selection like --where's, e.g. 'model_size > 1.3e9' "
        "(default: none; every row is fitted)",
    )
    p.add_argument(
        "--budget",
        type=_positive_numbers,
        metavar="N,D",
        help="model size and tokens at which h* is reported (default: 10x the largest model, 20 tokens per parameter)",
    )
    _add_fit_args(p, search=Search(), law=False)
    _add_bootstrap_args(p, replicates=200, search=BOOTSTRAP_SEARCH)
    _add_jobs_arg(p)
    p.add_argument("--out", default="report", help="output folder (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser(
        "compare",
        help="choose a law: held-out MRE, R² and Spearman per law and target, with bootstrap intervals",
        epilog=EPILOG_COMPARE,
        formatter_class=raw,
        description=_wrap(
            "Refit each law on the training rows of every fold of a split (k folds over mixtures, each model "
            "size held out in turn, the largest size, or a held-out selection), score the held-out rows by MRE, "
            "R² and Spearman's rho with bootstrap intervals over the held-out mixtures, and name the winner per "
            "target."
        ),
    )
    _add_table_args(p)
    p.add_argument("--law", action="append", required=True, help="law to compare (repeatable)")
    p.add_argument(
        "--split",
        choices=["kfold", "scale", "largest"],
        help="kfold: k folds over mixtures (default); scale: each model size held out in turn; largest: the "
        "largest model size held out",
    )
    p.add_argument("--folds", type=int, default=5, help="folds of --split kfold (default: %(default)s)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the folds' shuffle (default: %(default)s)")
    p.add_argument("--holdout", help="one held-out selection instead of --split, e.g. 'model_size > 1.3e9'")
    _add_fit_args(p, search=Search(), law=False)
    p.add_argument(
        "--replicates",
        type=int,
        default=1000,
        help="bootstrap replicates of the held-out mixtures (default: %(default)s)",
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: %(default)s)")
    p.add_argument(
        "--criterion",
        choices=["mre", "r2", "spearman"],
        default="mre",
        help="what picks the winner: lowest MRE, highest R² or Spearman rho (default: %(default)s)",
    )
    p.add_argument("--loss-space", choices=["raw", "log"], default="raw", help="residuals of L or of log L")
    p.add_argument("--unbounded", action="store_true", help="fit without the default parameter bounds")
    p.add_argument("--out", help="write the comparison as JSON (load with mixlaw_jax.load_comparison)")
    p.add_argument("--figure", help="write the comparison figure as PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser(
        "nested",
        help="Ye et al.'s nested pipeline: losses and h* at a large (N*, D*) from small runs",
        epilog=EPILOG_NESTED,
        formatter_class=raw,
        description=_wrap(
            "Fit a step law per run, a size law per mixture and a mixing law over the mixtures (Ye et al. 2024, "
            "sec. 4; one batched engine call per stage) and print the predicted losses and the optimal mixture "
            "at the budget (N*, D*)."
        ),
    )
    _add_table_args(p)
    p.add_argument("--budget", type=_positive_numbers, required=True, metavar="N,D", help="the target N* and D*")
    p.add_argument("--mixing-law", default="mixing_exp", help="mixture-only law of stage (c) (default: %(default)s)")
    p.add_argument("--predict", help="CSV or Parquet table of mixtures to predict at (N*, D*) (default: the fitted)")
    from .nested import MIXING_SEARCH

    _add_fit_args(p, search=MIXING_SEARCH, law=False)
    p.add_argument("--replicates", type=int, default=0, help="run-level bootstrap replicates (default: none)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: %(default)s)")
    p.add_argument("--loss-space", choices=["raw", "log"], default="raw", help="residuals of L or of log L")
    p.add_argument("--out", help="write the stages, the mixing fit, h* and what was left out as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_nested)
    p = sub.add_parser(
        "design",
        help="a first swarm: which mixtures to train, at which sizes and token counts",
        epilog=EPILOG_DESIGN,
        formatter_class=raw,
        description=_wrap(
            "Design n training mixtures on the simplex, within weight bounds and fixed domains: Dirichlet draws "
            "around a prior (RegMix / Olmix style) or a space-filling (maximin) set; each mixture is trained at "
            "every scale N:D. Writes the runs to train as a table that `mixlaw fit` and load_runs read once the "
            "losses are added."
        ),
    )
    p.add_argument(
        "domains",
        help="the number of domains k (weight columns weight_0..weight_{k-1}) or comma-separated weight column names",
    )
    p.add_argument("n", type=int, help="the number of mixtures")
    p.add_argument(
        "--scales",
        type=_scale_pairs,
        required=True,
        metavar="N:D,...",
        help="model size and training tokens of every scale, e.g. 1e8:2e9,3e8:6e9; each mixture is trained at each",
    )
    p.add_argument(
        "--method",
        choices=["dirichlet", "space-filling"],
        default="dirichlet",
        help="Dirichlet draws around the prior, or a maximin space-filling set (default: %(default)s)",
    )
    p.add_argument(
        "--prior",
        type=_number_pairs,
        metavar="DOMAIN=W,...",
        help="dirichlet: the mixture the draws centre on, every domain named, weights summing to 1 (default: uniform)",
    )
    p.add_argument(
        "--concentration",
        type=float,
        help="dirichlet: c in alpha = c * prior; larger keeps the draws closer to the prior (default: the number "
        "of free domains, so that a uniform prior draws uniformly over the simplex)",
    )
    _add_weight_args(
        p,
        "simplex",
        "per-domain bounds on the weights: none ('simplex', default) or ranges (other domains 0:1); draws "
        "outside them are rejected, never clipped",
    )
    p.add_argument(
        "--unique-tokens",
        type=_number_pairs,
        metavar="DOMAIN=TOKENS,...",
        help="unique tokens of the target run per limited domain; each row gets unique_DOMAIN = TOKENS * D / "
        "--target-tokens, so the proxies repeat each domain as the target would",
    )
    p.add_argument("--target-tokens", type=float, help="the target run's training tokens D_T (with --unique-tokens)")
    p.add_argument(
        "--max-epochs", type=float, help="cap the target's epochs of each limited domain: h_i <= E * TOKENS / D_T"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same table (default: 0)")
    p.add_argument("--out", help="write the runs as CSV (Parquet for a .parquet name); default: print them")
    p.set_defaults(func=cmd_design)

    p = sub.add_parser(
        "propose",
        help="which runs to train next: the candidates that most pin down h* per unit of compute",
        epilog=EPILOG_PROPOSE,
        formatter_class=raw,
        description=_wrap(
            "Fit a law on the runs so far (or read a bootstrap), then score candidate runs (mixture x "
            "model size x tokens) by how much of the variance of h* (or of the loss at h*) at the target "
            "budget each would remove per unit of training cost, and pick a batch greedily, each pick conditioning "
            "the next; prints why each run was chosen."
        ),
    )
    _add_table_args(p)
    p.add_argument("--law", help="law to fit here (or give --bootstrap)")
    p.add_argument("--bootstrap", help="a bootstrap of this table (JSON from `mixlaw bootstrap`) instead of --law")
    p.add_argument(
        "--budget", type=_positive_numbers, metavar="N,D", help="the target model size and tokens of the decision"
    )
    p.add_argument("--n", type=int, default=4, help="runs to propose (default: %(default)s)")
    p.add_argument(
        "--candidates",
        help="a CSV / Parquet table of candidate runs (weight, N and D columns), or a number of space-filling "
        "candidates at the table's sizes (for h*, also at a half and a quarter of their tokens) and one size up "
        "(default: 1000)",
    )
    p.add_argument(
        "--criterion",
        choices=["h_star", "loss"],
        default="h_star",
        help="the variance to reduce: of h* (summed over domains; the mixture decision) or of the loss at h* "
        "(its level at the budget; chooses larger runs, the first one size up while the table has fewer than 3 "
        "sizes) (default: %(default)s)",
    )
    p.add_argument(
        "--cost",
        choices=["flops", "runs"],
        default="flops",
        help="the cost of a run: 6 N D FLOPs, or 1 per run (default: %(default)s)",
    )
    p.add_argument(
        "--objective-targets", help="targets of h*'s objective: a glob or comma-separated names (default: all)"
    )
    p.add_argument(
        "--target-weights", type=_number_pairs, metavar="T=W,...", help="weights of the targets (default: equal)"
    )
    _add_weight_args(
        p, "data", "bounds of h* and of the candidates: the runs' range ('data', default), the simplex, or ranges"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fit, the h* starts and candidates (default: 0)")
    p.add_argument("--out", help="write the proposed runs as CSV (Parquet for a .parquet name)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_propose)
    return parser


#: A negative number given as an option's value ('--N -7e9'), which argparse would take for an option.
NEGATIVE_NUMBER = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _join_negative_values(argv: list[str]) -> list[str]:
    """'--N', '-7e9' -> '--N=-7e9', so that the option's own check names the bad value."""
    out: list[str] = []
    for item in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and NEGATIVE_NUMBER.match(item):
            out[-1] = f"{out[-1]}={item}"
        else:
            out.append(item)
    return out


def _print_warning(printed: set[str], message, category, filename, lineno, file=None, line=None) -> None:
    """One line on stderr per distinct warning of a command (``printed`` holds those already shown):
    'mixlaw: warning: ...'."""
    text = str(message)
    if text not in printed:
        printed.add(text)
        kind = "" if issubclass(category, MixlawWarning) else f"{category.__name__}: "
        print(f"mixlaw: warning: {kind}{text}", file=sys.stderr)


def main(argv=None) -> int:
    """Run the command; returns the exit code (0, 2 for bad input, 1 for a file-system error, 130 when
    interrupted). Warnings are printed once each, as one line."""
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed
        return done.code if isinstance(done.code, int) else 0
    with warnings.catch_warnings():
        warnings.simplefilter("always", MixlawWarning)
        warnings.showwarning = functools.partial(_print_warning, set())
        ensure_compilation_cache()  # the fitting path would too; here it also covers commands that fit nothing
        try:
            args.func(args)
        except MixlawError as err:
            print(f"mixlaw: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            print(f"mixlaw: error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("mixlaw: interrupted", file=sys.stderr)
            return 130
    return 0


def _exit_on_interrupt(signum, frame) -> None:
    """Ctrl-C after the command has finished (while JAX shuts down): exit at once, quietly, with code 130."""
    sys.stdout.flush()
    print("mixlaw: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def run() -> None:
    """The ``mixlaw`` program: :func:`main`, then an exit that Ctrl-C cannot turn into a traceback.

    The objects alive at the end are frozen (``gc.freeze``) before the exit: the interpreter's last garbage
    collection would otherwise walk every object JAX made (~0.2 s of a Chinchilla fit's 3 s process,
    benchmarks/NOTES.md), for memory the process is about to give back; every file is already written and closed."""
    code = main()
    signal.signal(signal.SIGINT, _exit_on_interrupt)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
