"""What confirmation (issue 27, ``Search.confirm``) costs and buys on the tables the engine was tuned on: the speed
benchmark's four problems and the SlimPajama fits with default bounds, each fitted with the library default search
without extra rounds (``before``: ``Confirmation(rounds=0)``, the engine before issue 27 — the check only
reports) and with them (``after``: the default), side by side in one invocation.

Problems: ``chinchilla``, ``additive``, ``joint``, ``synthetic`` as in ``speed.py`` (unbounded), and
``slimpajama_additive`` / ``slimpajama_joint``: every SlimPajama target on the rows with model_size <= 1.3e9 with
the default bounds and objective, as ``slimpajama_fit.py`` fits them. Each call is timed cold (compiled programs
cleared first) and warm (median of 3 repeats), as ``speed.run_engine`` does; before and after alternate per
problem so a change in machine load hits both.

With ``--before-commit C`` (e.g. the last commit before issue 27) each problem is also fitted by the package
as it was at C (from a temporary git worktree), with the same timing code: that is the engine before the change
as a user had it, restructuring included. Every variant runs in its own fresh Python process, so that none
inherits another's compiled programs, caches or heap; where no variant took an extra round all of them run again
(``--passes``), each pass in the reverse order of the last.

Reported per problem: objectives per target (after must be no higher), which targets were confirmed and the extra
rounds they took, and after / before time. The bar: where every target was confirmed without extra rounds, after
costs at most 10% more warm.

    python -m benchmarks.confirmation_cost [--problems joint,slimpajama_joint] [--before-commit dec14e8]
        [--passes 2] [--out confirmation_cost]

Writes benchmarks/results/<out>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import mixlaw_jax as mj
from benchmarks import speed
from benchmarks.common import RESULTS, provenance
from mixlaw_jax._io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
#: Most extra warm time allowed where nothing needed another round.
FREE_WITHIN = 0.10
DEFAULT_OBJECTIVE = {"loss_space": "raw", "reduction": "mean", "delta": 1e-3}
PROBLEMS = (*speed.PROBLEMS, "slimpajama_additive", "slimpajama_joint")


def specs(names: list[str]) -> list[dict]:
    """The speed problems named, and the default-bounded SlimPajama fits."""
    speed_names = tuple(n for n in names if n in speed.PROBLEMS)
    out = speed.problem_specs(quick=False, names=speed_names) if speed_names else []
    runs = speed.slimpajama_runs()
    for law in ("additive", "joint"):
        if f"slimpajama_{law}" in names:
            out.append(
                {
                    "name": f"slimpajama_{law}",
                    "law": law,
                    "runs": runs,
                    "targets": list(runs.targets),
                    "objective": DEFAULT_OBJECTIVE,
                    "parameter_bounds": "default",
                }
            )
    return out


#: The variants: (package commit, None for this tree; confirmation rounds, None for the default).
VARIANTS = {"before": (None, 0), "after": (None, None)}


def in_subprocess(name: str, commit: str | None, rounds: int | None) -> dict:
    """``speed.run_engine`` of problem ``name`` in a fresh Python process (so every variant starts alike), with the
    default search (``rounds``: its confirmation rounds instead), by this tree's package or, given ``commit``, the
    package as it was there: its ``mixlaw_jax`` from a temporary git worktree first on the path, this tree's
    benchmark code after it."""
    with tempfile.TemporaryDirectory() as tmp:
        tree, package, out = Path(tmp) / "tree", Path(tmp) / "package", Path(tmp) / "out.json"
        package.mkdir()
        if commit is not None:
            subprocess.run(["git", "worktree", "add", "--quiet", "--detach", str(tree), commit], cwd=ROOT, check=True)
        try:
            (package / "mixlaw_jax").symlink_to((tree if commit else ROOT) / "mixlaw_jax")
            code = (
                f"import sys; sys.path[:0] = [{str(package)!r}, {str(ROOT)!r}]\n"
                "from benchmarks import confirmation_cost as c\n"
                f"c.worker({name!r}, {str(out)!r}, {rounds!r}, {str(package / 'mixlaw_jax')!r})"
            )
            subprocess.run([sys.executable, "-c", code], cwd=tmp, check=True, env=os.environ)
            return json.loads(out.read_text())
        finally:
            if commit is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)


def worker(name: str, out: str, rounds: int | None, package: str) -> None:
    """In ``in_subprocess``'s process: time problem ``name`` and write the record."""
    assert Path(mj.__file__).parent == Path(package), f"imported {mj.__file__}, not the package under {package}"
    (spec,) = specs([name])
    search = mj.Search() if rounds is None else mj.Search(confirm=mj.Confirmation(rounds=rounds))
    Path(out).write_text(json.dumps(speed.run_engine(spec, search)))


def timed(name: str, variants: dict, n_passes: int) -> dict:
    """Every variant of problem ``name`` in order, then (where nothing took an extra round, so the times should
    match) ``n_passes - 1`` more times, each pass in the order opposite to the last: a drift in the machine's speed
    then hits every variant alike. Warm seconds: the median over every pass's repeats."""
    passes = {v: [in_subprocess(name, *variants[v])] for v in variants}
    if not any(r for v in passes for r in (passes[v][0]["extra_rounds"] or []) if r):
        for i in range(1, n_passes):
            for v in list(variants)[:: -1 if i % 2 else 1]:
                passes[v].append(in_subprocess(name, *variants[v]))
    out = {}
    for v, records in passes.items():
        warm = [t for r in records for t in r["warm_repeats_seconds"]]
        out[v] = records[0] | {
            "warm_seconds": float(np.median(warm)),
            "warm_repeats_seconds": warm,
            "cold_seconds_per_pass": [r["seconds"] for r in records],
            "package": variants[v][0] or "this tree",
        }
    return out


def one_problem(spec: dict, before_commit: str | None, n_passes: int) -> dict:
    variants = VARIANTS | ({"at_commit": (before_commit, None)} if before_commit else {})
    runs = timed(spec["name"], variants, n_passes)
    before, after = runs["before"], runs["after"]
    searched = any(r > 0 for r in after["extra_rounds"])
    ratio = after["warm_seconds"] / before["warm_seconds"]
    return {
        "name": spec["name"],
        "law": spec["law"],
        "targets": list(spec["targets"]),
        "rows": int(spec["runs"].n_rows),
        "parameter_bounds": spec.get("parameter_bounds"),
        **runs,
        "warm_ratio": ratio,
        "cold_ratio": after["seconds"] / before["seconds"],
        "extra_rounds_taken": searched,
        "free_bar_met": None if searched else bool(ratio <= 1.0 + FREE_WITHIN),
        "objective_lower": int(sum(a < b for a, b in zip(after["objective"], before["objective"]))),
        "objective_higher": int(sum(a > b for a, b in zip(after["objective"], before["objective"]))),
        "objective_max_relative_change": float(
            np.max(np.abs(np.array(after["objective"]) / np.array(before["objective"]) - 1.0))
        ),
    } | (
        {
            "warm_ratio_to_commit": after["warm_seconds"] / runs["at_commit"]["warm_seconds"],
            "free_bar_met_against_commit": None
            if searched
            else bool(after["warm_seconds"] <= (1.0 + FREE_WITHIN) * runs["at_commit"]["warm_seconds"]),
        }
        if before_commit
        else {}
    )


def report(problem: dict) -> str:
    b, a = problem["before"], problem["after"]
    lines = [
        f"{problem['name']}: warm {b['warm_seconds']:.2f} s -> {a['warm_seconds']:.2f} s "
        f"(x{problem['warm_ratio']:.2f}), cold {b['seconds']:.1f} s -> {a['seconds']:.1f} s; objectives lower "
        f"{problem['objective_lower']}, higher {problem['objective_higher']}; free bar {problem['free_bar_met']}"
    ]
    if "at_commit" in problem:
        c = problem["at_commit"]
        lines.append(
            f"  at {c['package']}: warm {c['warm_seconds']:.2f} s, cold {c['seconds']:.1f} s (after / commit warm "
            f"x{problem['warm_ratio_to_commit']:.2f}); objectives {', '.join(f'{v:.8g}' for v in c['objective'])}"
        )
    for j, t in enumerate(problem["targets"]):
        lines.append(
            f"  {t:24s} {b['objective'][j]:.8g} -> {a['objective'][j]:.8g}  "
            f"{'confirmed' if a['confirmed'][j] else 'UNCONFIRMED'} after {a['extra_rounds'][j]} round(s)"
            f" (before: {'confirmed' if b['confirmed'][j] else 'unconfirmed'})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--before-commit", default=None, help="also time the package as it was at this commit")
    parser.add_argument(
        "--passes", type=int, default=2, help="passes over the variants where no extra round was taken (default 2)"
    )
    parser.add_argument("--out", default="confirmation_cost", help="results/<OUT>.json (default confirmation_cost)")
    args = parser.parse_args()
    names = args.problems.split(",")
    unknown = sorted(set(names) - set(PROBLEMS))
    if unknown:
        parser.error(f"unknown problems {unknown}; choose from {PROBLEMS}")
    problems = []
    for spec in specs(names):
        problems.append(one_problem(spec, args.before_commit, args.passes))
        print(report(problems[-1]), flush=True)
    out = {
        "variants": {n: {"package": c or "this tree", "confirmation_rounds": r} for n, (c, r) in VARIANTS.items()},
        "before_commit": args.before_commit,
        "free_within": FREE_WITHIN,
        "passes": args.passes,
        "problems": problems,
        "provenance": provenance(),
    }
    atomic_write_json(RESULTS / f"{args.out}.json", out)


if __name__ == "__main__":
    main()
