"""The ``mixlaw`` command.

    mixlaw demo                      fit the bundled example table, score held-out runs, write results
    mixlaw fit RUNS --law joint ...  fit a law to a CSV / Parquet table and write the fit as JSON

Errors in the input are one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MixlawError

EPILOG_FIT = """example:
  mixlaw fit runs.csv --law joint --weights 'weight_*' --N model_size --D n_tokens \\
      --targets '*_loss' --where 'model_size <= 1.3e9' --out fit.json"""


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", help="CSV or Parquet table, one row per run and checkpoint")
    p.add_argument("--weights", default="weight_*", help="mixture-weight columns: a glob or comma-separated names "
                                                         "(default: %(default)s)")
    p.add_argument("--N", default="model_size", help="model-size column, or 'none' (default: %(default)s)")
    p.add_argument("--D", default="n_tokens", help="token column, or 'none' (default: %(default)s)")
    p.add_argument("--targets", default="*_loss", help="loss columns: a glob or comma-separated names "
                                                       "(default: %(default)s)")
    p.add_argument("--where", help="pandas query selecting the rows to fit, e.g. 'model_size <= 1.3e9'")
    p.add_argument("--drop-first-checkpoints", type=int, default=0, metavar="K",
                   help="drop each run's K smallest-D checkpoints before fitting (Shukor et al.'s protocol: 2)")
    p.add_argument("--run-id", help="column identifying runs (default: a run is a distinct mixture and N)")
    p.add_argument("--renormalize", action="store_true",
                   help="rescale weight rows that do not sum to 1 onto the simplex (with a warning saying by how much)")
    p.add_argument("--duplicates", choices=["keep", "merge", "error"], default="keep",
                   help="rows repeating a checkpoint of a run: keep them (with a warning), merge each group into one "
                        "row, or stop with an error (default: %(default)s)")
    p.add_argument("--k", type=int, help="number of mixture domains expected; an error if the weight columns differ")


def _columns(spec: str):
    return spec if any(c in spec for c in "*?[") else [s.strip() for s in spec.split(",") if s.strip()]


def _load(args):
    """The run table named by the table arguments; its warnings are printed as one 'mixlaw: warning:' line each."""
    import warnings

    from .data import load_runs
    from .errors import MixlawWarning
    none = lambda v: None if v is None or v.lower() == "none" else v
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MixlawWarning)
        runs = load_runs(args.runs, weights=_columns(args.weights), N=none(args.N), D=none(args.D),
                         targets=_columns(args.targets), run_id=args.run_id, renormalize=args.renormalize,
                         duplicates=args.duplicates, k=args.k)
    for w in caught:
        if issubclass(w.category, MixlawWarning):
            print(f"mixlaw: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.where:
        runs = runs.query(args.where)
    if args.drop_first_checkpoints:
        runs = runs.drop_first_checkpoints(args.drop_first_checkpoints)
    return runs


def _print_fit(result, train, held_out=None) -> None:
    train_mre = result.mre(train)
    held_mre = result.mre(held_out) if held_out is not None else {}
    print(f"law {result.law}: {len(result.targets)} targets")
    for j, t in enumerate(result.targets):
        d = result.diagnostics[t]
        line = (f"  {t:24s} objective {result.objective[j]:.6g}  train MRE {train_mre[t]:.3f}%"
                + (f"  held-out MRE {held_mre[t]:.3f}%" if t in held_mre else "")
                + f"  best basin {d['n_in_basin']}/{d['n_final']}")
        print(line)
        for flag in d["flags"]:
            print(f"      note: {flag}")


def cmd_fit(args) -> None:
    from .fit import fit
    runs = _load(args)
    result = fit(runs, args.law, n_starts=args.starts, seed=args.seed, loss_space=args.loss_space,
                 bounds=None if args.unbounded else "default", progress=not args.quiet)
    result.save(args.out)
    _print_fit(result, runs)
    print(f"wrote {args.out}")


def cmd_demo(args) -> None:
    from .datasets import load_example
    from .fit import fit
    out = Path(args.out)
    table = load_example()
    train, held_out = table.query("model_size <= 1.3e9"), table.query("model_size > 1.3e9")
    print(f"bundled synthetic table: {train.n_rows} training rows ({train.n_runs} runs), "
          f"{held_out.n_rows} held-out rows at model_size > 1.3e9, {table.k} domains, targets {', '.join(table.targets)}")
    for law in args.law:
        result = fit(train, law, n_starts=args.starts, progress=not args.quiet)
        result.save(out / f"fit_{law}.json")
        _print_fit(result, train, held_out)
    print(f"wrote {out}/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixlaw", description="Fit data-mixture scaling laws and find optimal "
                                     "training-data mixtures.", formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="fit the bundled example table and score held-out runs",
                       description="Fit the additive and joint laws to the bundled synthetic table (7 domains, "
                       "3 targets), score the held-out larger model, and write the fits as JSON.")
    p.add_argument("--out", default="mixlaw-demo", help="output folder (default: %(default)s)")
    p.add_argument("--law", action="append", default=None, help="law to fit (repeatable; default: additive, joint)")
    p.add_argument("--starts", type=int, default=16384, help="random starts per target (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", help="fit a law to a run table", epilog=EPILOG_FIT,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Fit one law to every target column at once and write the fit as JSON.")
    _add_table_args(p)
    p.add_argument("--law", required=True, help="law name: chinchilla, additive, joint, full, simple, mixing_exp")
    p.add_argument("--out", required=True, help="where to write the fit (JSON)")
    p.add_argument("--starts", type=int, default=16384, help="random starts per target (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts (default: %(default)s)")
    p.add_argument("--loss-space", choices=["raw", "log"], default="raw", help="residuals of L or of log L")
    p.add_argument("--unbounded", action="store_true", help="fit without the default parameter bounds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_fit)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "law", None) is None and args.command == "demo":
        args.law = ["additive", "joint"]
    try:
        args.func(args)
    except MixlawError as err:
        print(f"mixlaw: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
