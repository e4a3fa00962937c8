"""The report: fits of several laws, held-out scores, optimal mixtures, bootstrap intervals, figures and a
self-contained HTML page (figures embedded as base64 PNG data URIs; no external resource).

``build_report`` writes into one folder:

    index.html               the page
    figures/*.png            every figure, also embedded in the page
    fit_<law>.json           the fit on the training rows (``load_fit``)
    mixture_<law>.json       h* along the budget path up to (N, D) (``load_mixture``)
    bootstrap_<law>.json     the bootstrap (``load_bootstrap``), when replicates > 0
    summary.json             scores, h* with intervals and settings, as plain JSON
    comparison.json          "Choosing a law": held-out MRE, R² and Spearman per law with intervals
                             (``load_comparison``), with a comparison split, or two laws and held-out rows

The folder is written whole or not at all: every file goes into a hidden temporary folder beside it, which then
takes the folder's place, so the folder holds the whole earlier report or the whole new one, never a mix; a
report that fails or is interrupted leaves it as it was. ``out`` must be a new path, an empty folder or a folder
holding only what an earlier report writes, which the new report replaces.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import fnmatch
import html
import io
import multiprocessing
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from . import _io, figures
from .bootstrap import BootstrapResult, bootstrap, check_level
from .comparison import Comparison, HeldOut, KFold, LeaveOneScaleOut, Split, compare_laws, compare_predictions
from .data import RunTable
from .errors import MixlawError
from .fitting import fit, progress_bar
from .laws import get_law
from .mixture import WEIGHTED, MixtureResult, optimal_mixture
from .options import BOOTSTRAP_SEARCH, Search, expect, whole_number
from .proposals import describe_ensemble, propose_runs
from .results import FitResult
from .selection import select_rows

#: budgets on the h*(N, D) path: from the smallest model size in the table up to (N, D), at a fixed D / N.
PATH_BUDGETS = 8
#: runs proposed per law in "What to train next" (``propose_runs`` at the report's budget).
NEXT_RUNS = 4


@dataclasses.dataclass
class LawReport:
    """One law's part of the report."""

    law: str
    fit: FitResult
    train_mre: dict
    held_out_mre: dict
    path: MixtureResult | None  # h* along the budget path (the last budget is (N, D)); None for a law
    optimum: pd.DataFrame | None  # without h. h* at (N, D) per domain: h_star (and lo, hi with a bootstrap)
    bootstrap: BootstrapResult | None = None
    held_out_interval: pd.DataFrame | None = None  # predictions with intervals, one row per held-out row
    held_out_mre_interval: pd.DataFrame | None = None  # per target: mre, lo, hi
    next_runs: pd.DataFrame | str | None = None  # propose_runs at (N, D), or why none were proposed


@dataclasses.dataclass
class Report:
    """What ``build_report`` computed and where it wrote it."""

    out: Path
    laws: list[LawReport]
    figures: dict[str, Path]
    html: Path
    comparison: Comparison | None = None


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


#: the files an earlier report may have left in its folder (besides figures/*.png); anything else stops the report.
REPORT_FILES = ("index.html", "summary.json", "fit_*.json", "mixture_*.json", "bootstrap_*.json", "comparison.json")


def _foreign_entries(out: Path) -> list[str]:
    """The entries of the folder ``out`` that no report writes (other files, symbolic links, other folders), as
    paths relative to ``out``."""
    foreign = []
    with os.scandir(out) as entries:
        for entry in entries:
            if entry.is_symlink():
                foreign.append(entry.name)
            elif entry.is_dir(follow_symlinks=False) and entry.name == "figures":
                with os.scandir(entry.path) as drawn:
                    foreign += [
                        f"figures/{e.name}"
                        for e in drawn
                        if not (e.is_file(follow_symlinks=False) and e.name.endswith(".png"))
                    ]
            elif not (
                entry.is_file(follow_symlinks=False) and any(fnmatch.fnmatchcase(entry.name, p) for p in REPORT_FILES)
            ):
                foreign.append(entry.name)
    return sorted(foreign)


def _check_out(out: Path, shown) -> os.stat_result | None:
    """Check that the report may take the place of ``out`` (absolute; ``shown`` is how the user wrote it): a new
    path, an empty folder or an earlier report's folder. Returns ``out``'s stat, None for a new path.

    Raises:
      MixlawError: naming what is in the way.
    """
    try:
        info = os.lstat(out)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):  # lstat: a symbolic link to a folder is not a folder here
        raise MixlawError(
            f"the report folder {shown} is {_io.file_type(info.st_mode)}; choose a new or empty folder for the report"
        )
    foreign = _foreign_entries(out)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise MixlawError(
            f"the report folder {shown} holds {os.path.join(str(shown), foreign[0])}{more}, which a "
            f"mixlaw report does not write; the report replaces the folder's contents, so choose a new "
            f"or empty folder"
        )
    return info


def _publish(tmp: Path, out: Path) -> None:
    """Put the finished report folder ``tmp`` in the place of ``out``: a rename when ``out`` is new; otherwise the
    old folder is renamed aside, ``tmp`` renamed to ``out`` (the old folder is put back if that fails), and the old
    folder deleted. ``out`` is never a mix of the two."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
    else:
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.mixlaw-old-"))
        os.rmdir(old)  # a free name for the old folder
        moved = False
        try:
            os.rename(out, old)
            moved = True
            os.rename(tmp, out)
        except BaseException:
            if moved and not os.path.lexists(out):
                os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    _io.fsync_folder(str(out.parent))


def split_holdout(runs: RunTable, holdout: str) -> tuple[RunTable, RunTable]:
    """(training rows, held-out rows): the rows where the selection ``holdout`` (``selection``) is false, and where
    it is true."""
    held = select_rows(runs.frame, holdout, what="held-out selection")
    if held.all() or not held.any():
        raise MixlawError(
            f"the held-out selection {holdout!r} selects {'every' if held.all() else 'no'} row; "
            f"it must leave rows on both sides"
        )
    return runs.subset(~held), runs.subset(held)


def _budget_path(runs: RunTable, N: float, D: float) -> tuple[np.ndarray, np.ndarray]:
    """PATH_BUDGETS budgets (N_j, D_j) = s_j (N, D), s_j geometric from min(N in runs) / N to 1."""
    start = min(float(np.min(runs.n)) / N, 1.0)
    scale = np.geomspace(start, 1.0, PATH_BUDGETS) if start < 1 else np.ones(1)
    return N * scale, D * scale


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the report does for each law: the fit's search (its seed also seeds the mixture starts), the
    bootstrap replicates (0: none) with their search, and the level of the intervals."""

    search: Search
    replicates: int
    replicate_search: Search
    level: float

    def to_dict(self) -> dict:
        return {
            "n_starts": self.search.n_starts,
            "schedule": [list(s) for s in self.search.stages],
            "replicates": self.replicates,
            "replicate_starts": self.replicate_search.n_starts,
            "replicate_schedule": [list(s) for s in self.replicate_search.stages],
            "level": self.level,
            "seed": self.search.seed,
        }


def _law_report(
    law: str, train: RunTable, held_out: RunTable | None, N: float, D: float, analysis: Analysis, progress: bool
) -> LawReport:
    """Fit one law to the training rows, score them and the held-out rows, find h* along the budget path and,
    with replicates, bootstrap: intervals for h* at (N, D) and for the held-out predictions and MRE."""
    seed = analysis.search.seed
    result = fit(train, law, search=analysis.search, progress=progress)
    path = optimum = None
    if get_law(law).uses_h:  # a law without h (Chinchilla) has no optimal mixture
        n_path, d_path = _budget_path(train, N, D)
        path = optimal_mixture(result, N=n_path, D=d_path, seed=seed)
        o = path.objectives.index(WEIGHTED)
        optimum = pd.DataFrame({"h_star": path.h[-1, o]}, index=pd.Index(path.domains, name="domain"))
    report = LawReport(
        law=law,
        fit=result,
        train_mre=result.mre(train),
        held_out_mre=result.mre(held_out) if held_out is not None else {},
        path=path,
        optimum=optimum,
    )
    if path is not None:
        try:
            report.next_runs = propose_runs(train, result, budget=(N, D), n=NEXT_RUNS, seed=seed, progress=progress)
        except MixlawError as error:
            report.next_runs = str(error)
    if analysis.replicates > 0:
        report.bootstrap = bootstrap(
            train,
            law,
            n_replicates=analysis.replicates,
            level=analysis.level,
            full_fit=result,
            search=analysis.replicate_search,
            progress=progress,
        )
        if path is not None:
            report.optimum = report.bootstrap.mixture_interval(N, D, seed=seed)
        if held_out is not None:
            report.held_out_interval = report.bootstrap.predict_interval(held_out)
            report.held_out_mre_interval = report.bootstrap.mre_interval(held_out)
    return report


def _law_reports(laws: Sequence[str], data: tuple, analysis: Analysis, jobs: int, progress: bool) -> list[LawReport]:
    """One LawReport per law, in this process or in ``jobs`` worker processes (spawned: JAX does not survive a
    fork). Compilation and the batched solvers mostly use one core, so two laws on two cores take the time of
    the slower one."""
    if jobs <= 1 or len(laws) == 1:
        return [_law_report(law, *data, analysis, progress) for law in laws]
    update, close = progress_bar(len(laws), "laws done", progress)
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(laws)), mp_context=context) as pool:
            futures = [pool.submit(_law_report, law, *data, analysis, False) for law in laws]
            for done, _ in enumerate(as_completed(futures), 1):
                if update:
                    update(done, len(laws))
            return [f.result() for f in futures]
    finally:
        close()


def build_report(
    runs: RunTable,
    laws: Sequence[str],
    out,
    *,
    holdout: str | None = None,
    N: float | None = None,
    D: float | None = None,
    search: Search = Search(),
    replicates: int = 200,
    replicate_search: Search = BOOTSTRAP_SEARCH,
    level: float = 0.95,
    jobs: int | None = None,
    comparison: Split | None = None,
    title: str = "mixlaw report",
    source: str = "",
    progress: bool = False,
    log=print,
) -> Report:
    """Fit each law to the training rows, score the held-out rows, find h*, bootstrap, draw and write the report.

    Args:
      runs: the run table (needs N and D columns).
      laws: law names, e.g. ``["additive", "joint"]``.
      out: output folder: a new path (created, with its parent), an empty folder or the folder of an earlier
        report, whose files the new report replaces. Its files are written into a hidden temporary folder beside
        it, which takes its place once the report is complete; a report that fails or is interrupted leaves
        ``out`` as it was and no temporary folder.
      holdout: a selection (``selection``) of the held-out rows (e.g. ``"model_size > 1.3e9"``); the rest are fitted.
        None: fit every row, no held-out score.
      N, D: the budget at which h* is reported (default: 10x the largest model size, D = 20 N); the h* path runs
        from the smallest model size in the table to it at the same D / N.
      search: each law's fit search (``fit``); its seed also seeds the mixture starts.
      replicates: bootstrap replicates (runs resampled) for the intervals; 0 skips them. "What to train next"
        (``propose_runs``) uses the Laplace approximation around each fit and needs no replicates.
      replicate_search: each replicate's search (``bootstrap``): fresh random starts besides the warm start at the
        fit, the stages of its refit, and the seed of the resampling.
      level: bootstrap interval level.
      jobs: laws worked on at once, each in its own process (default: as many as laws and CPU cores allow;
        1: all in this process).
      comparison: the "Choosing a law" section. None (default, no extra fit): the report's own fits scored on the
        held-out rows by MRE, R² and Spearman's rho with bootstrap intervals over the held-out mixtures, and the
        winner per target (no section without held-out rows or with one law). A split (``HeldOut``, ``KFold``,
        ``LeaveOneScaleOut``): ``compare_laws`` with that split, which refits every law on every fold's training
        rows with ``search`` (folds x laws more fits).
      title, source: shown at the top of the page.
      progress: progress bars on stderr.
      log: called with one line per step.

    Returns:
      A :class:`Report` (the per-law results, figure paths and the page's path).

    Raises:
      MixlawError: for bad settings, and, before any fit, for an ``out`` that is not a folder (a file, a
        symbolic link, a FIFO or device) or holds anything an earlier report does not write (e.g. the run table).
    """
    if not laws:
        raise MixlawError("the report needs at least one law")
    for law in laws:
        get_law(law)
        if list(laws).count(law) > 1:
            raise MixlawError(f"law {law!r} is named more than once")
    if runs.n is None or runs.d is None:
        raise MixlawError("the report needs N and D columns")
    level = check_level(level)
    replicates = whole_number(replicates, "replicates")
    jobs = min(len(laws), os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise MixlawError(f"jobs must be >= 1, not {jobs!r}")
    train, held_out = split_holdout(runs, holdout) if holdout else (runs, None)
    N = float(N) if N is not None else 10 * float(np.max(runs.n))
    D = float(D) if D is not None else 20 * N
    out = Path(out)
    target = Path(os.path.abspath(out))
    _check_out(target, out)
    log(
        f"{train.n_rows} training rows ({train.n_runs} runs)"
        + (
            f", {held_out.n_rows} held-out rows ({held_out.n_runs} runs) where {holdout}"
            if held_out is not None
            else ""
        )
        + f"; {runs.k} domains; targets {', '.join(runs.targets)}"
    )

    log(
        f"laws {', '.join(laws)}: fit"
        + (f" and {replicates} bootstrap replicates" if replicates else "")
        + (f", {min(jobs, len(laws))} at once" if jobs > 1 and len(laws) > 1 else "")
    )
    analysis = Analysis(
        expect(search, Search, "search"), replicates, expect(replicate_search, Search, "replicate_search"), level
    )
    reports = _law_reports(laws, (train, held_out, N, D), analysis, jobs, progress)
    choosing = _choosing_a_law(runs, reports, holdout, held_out, comparison, analysis, progress, log)
    created = [p for p in target.parents if not os.path.lexists(p)]  # missing parents, deepest first
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.mixlaw-tmp-"))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        figure_names = _write_report(
            tmp, reports, runs, train, held_out, laws, holdout, N, D, analysis, title, source, log, choosing
        )
        old = _check_out(target, out)  # again: nothing may have come into the folder during the fits
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, old.st_mode & 0o7777 if old is not None else 0o777 & ~umask)
        cwd = _cwd()
        _publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    if cwd is not None and (cwd == str(target) or cwd.startswith(os.path.join(str(target), ""))):
        try:  # the process worked inside the replaced folder: go on in the new one
            os.chdir(cwd)
        except OSError:
            pass
    figure_paths = {name: out / "figures" / f"{name}.png" for name in figure_names}
    log(f"wrote {out}/index.html and {len(figure_paths)} figures")
    return Report(
        out=out,
        laws=reports,
        figures=figure_paths,
        html=out / "index.html",
        comparison=choosing if isinstance(choosing, Comparison) else None,
    )


#: Bootstrap replicates of the held-out mixtures behind the "Choosing a law" intervals (scoring only: no refits).
COMPARISON_REPLICATES = 1000


def _choosing_a_law(runs, reports, holdout, held_out, comparison, analysis, progress, log) -> Comparison | str | None:
    """The "Choosing a law" comparison: ``compare_laws`` under the ``comparison`` split, or else the report's fits
    scored on its held-out rows (no refit); a string saying why when those rows cannot be scored (e.g. one held-out
    loss per target); None without a split and either held-out rows or a second law."""
    if comparison is not None:
        if not isinstance(comparison, (HeldOut, KFold, LeaveOneScaleOut)):
            raise MixlawError(f"comparison must be a mixlaw_jax.HeldOut, KFold or LeaveOneScaleOut, not {comparison!r}")
        log(f"choosing a law: {comparison.describe()}, every law refitted per fold")
        return compare_laws(
            runs,
            [r.law for r in reports],
            split=comparison,
            search=analysis.search,
            n_replicates=COMPARISON_REPLICATES,
            level=analysis.level,
            progress=progress,
        )
    if held_out is None or len(reports) < 2:
        return None
    try:
        return compare_predictions(
            runs,
            HeldOut(holdout),
            {r.law: [r.fit.predict(held_out)] for r in reports},
            n_replicates=COMPARISON_REPLICATES,
            level=analysis.level,
            seed=analysis.search.seed,
        )
    except MixlawError as err:
        return str(err)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # a working folder that was deleted
        return None


def _remove_empty(folders) -> None:
    """Remove the folders this report created (deepest first) while they are empty."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def _write_report(
    folder: Path,
    reports: list[LawReport],
    runs,
    train,
    held_out,
    laws,
    holdout,
    N,
    D,
    analysis,
    title,
    source,
    log,
    choosing: Comparison | str | None = None,
) -> list[str]:
    """Write every file of the report into ``folder``; returns the figure names."""
    for r in reports:
        law = r.law
        r.fit.save(folder / f"fit_{law}.json")
        if r.path is not None:
            r.path.save(folder / f"mixture_{law}.json")
        if r.bootstrap is not None:
            r.bootstrap.save(folder / f"bootstrap_{law}.json")
        scores = "  ".join(
            f"{t} {r.train_mre[t]:.3f}%" + (f" / {r.held_out_mre[t]:.3f}%" if t in r.held_out_mre else "")
            for t in r.fit.targets
        )
        log(f"  {law} MRE train{' / held-out' if held_out is not None else ''}: {scores}")

    log("figures")
    drawn = {name: (_png(fig), caption) for name, (fig, caption) in _figures(reports, train, held_out, N, D).items()}
    if isinstance(choosing, Comparison):
        choosing.save(folder / "comparison.json")
        drawn["law_comparison"] = (
            _png(figures.law_comparison(choosing)),
            f"Choosing a law ({choosing.split.describe()}): held-out MRE, R² and Spearman's rho per target with "
            f"{100 * choosing.level:.0f}% bootstrap intervals over the held-out {choosing.resampled}; filled: winner.",
        )
    for name, (data, _) in drawn.items():
        _io.atomic_write_bytes(folder / "figures" / f"{name}.png", data)
    settings = {"laws": list(laws), "holdout": holdout, "N": N, "D": D, **analysis.to_dict()}
    page = _html(title, source, runs, train, held_out, reports, drawn, settings, choosing)
    _io.atomic_write_bytes(folder / "index.html", page.encode("utf-8"))
    _io.atomic_write_json(folder / "summary.json", _summary(reports, settings, runs))
    return list(drawn)


def _figures(reports: list[LawReport], train, held_out, N, D) -> dict:
    """name -> (Figure, caption)."""
    drawn = {}
    for r in reports:
        drawn[f"predicted_vs_observed_{r.law}"] = (
            figures.predicted_vs_observed(r.fit, train, held_out),
            f"{r.law}: predicted against observed loss, training and held-out rows.",
        )
        drawn[f"loss_curves_{r.law}"] = (
            figures.loss_curves(r.fit, train, held_out),
            f"{r.law}: loss against tokens per model size; lines are the fitted law along each run.",
        )
    mixing = [r for r in reports if r.path is not None]
    if not mixing:
        return drawn
    has_interval = any(r.bootstrap is not None for r in mixing)
    drawn["optimal_mixture"] = (
        figures.mixture_intervals(
            {r.law: r.optimum for r in mixing}, title=f"h* at N = {N:.3g}, D = {D:.3g} (mean loss over targets)"
        ),
        "Optimal mixture per domain" + (" with bootstrap percentile intervals." if has_interval else "."),
    )
    for r in mixing:
        drawn[f"mixture_path_{r.law}"] = (
            figures.mixture_path(r.path),
            f"{r.law}: h* along budgets up to N = {N:.3g}, D = {D:.3g}.",
        )
    if train.k == 3:
        for r in mixing:
            drawn[f"simplex_{r.law}"] = (
                figures.simplex_heatmap(r.fit, N=N, D=D, runs=train, optimum=r.optimum["h_star"].to_numpy()),
                f"{r.law}: predicted mean loss over the simplex at N = {N:.3g}, D = {D:.3g}; star: h*.",
            )
    return drawn


def _summary(reports: list[LawReport], settings: dict, runs: RunTable) -> dict:
    def clean(frame):
        return {str(i): {c: float(v) for c, v in row.items()} for i, row in frame.iterrows()}

    laws = {}
    for r in reports:
        entry = {
            "train_mre": r.train_mre,
            "held_out_mre": r.held_out_mre,
            "objective": dict(zip(r.fit.targets, np.asarray(r.fit.objective).tolist())),
            "flags": {t: list(r.fit.diagnostics[t].flags) for t in r.fit.targets},
        }
        if r.optimum is not None:
            entry.update(optimal_mixture=clean(r.optimum), loss_at_optimum=r.optimum.attrs.get("loss"))
        if r.held_out_mre_interval is not None:
            entry["held_out_mre_interval"] = clean(r.held_out_mre_interval)
        if isinstance(r.next_runs, pd.DataFrame):
            entry["next_runs"] = _jsonable(r.next_runs.to_dict(orient="records"))
        if r.bootstrap is not None:
            entry["parameter_intervals"] = _jsonable(r.bootstrap.intervals())
            entry["standard_errors"] = _jsonable(r.bootstrap.standard_errors)
        laws[r.law] = entry
    return {
        "kind": "report",
        "schema_version": 1,
        "settings": settings,
        "targets": list(runs.targets),
        "domains": list(runs.weight_columns),
        "laws": laws,
    }


def _jsonable(tree):
    if isinstance(tree, dict):
        return {str(k): _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in tree]
    if isinstance(tree, str):
        return tree
    value = float(tree)
    return value if np.isfinite(value) else None


# ---------------------------------------------------------------------------------------------------- HTML page

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.note { color: #555; font-size: 0.9em; } .flag { color: #a33; }
"""


def _table(frame: pd.DataFrame, fmt=lambda v: f"{v:.4g}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or ""] + list(frame.columns))
    rows = []
    for index, row in frame.iterrows():
        cells = "".join(f"<td>{html.escape(v if isinstance(v, str) else fmt(v))}</td>" for v in row)
        rows.append(f"<tr><td>{html.escape(str(index))}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _scores_frame(reports: list[LawReport], held: bool) -> pd.DataFrame:
    """MRE % per target (and their mean) per law, train and held-out; bootstrap intervals of held-out MRE."""
    columns = {}
    for r in reports:
        columns[f"{r.law} train"] = pd.Series(r.train_mre)
        if held:
            columns[f"{r.law} held-out"] = pd.Series(r.held_out_mre)
    frame = pd.DataFrame(columns)
    frame.loc["mean"] = frame.mean()
    text = frame.map(lambda v: f"{v:.3f}")
    for r in reports:
        if r.held_out_mre_interval is not None:
            for t, row in r.held_out_mre_interval.iterrows():
                text.loc[t, f"{r.law} held-out"] += f" [{row['lo']:.3f}, {row['hi']:.3f}]"
    text.index.name = "MRE %"
    return text


def _optimum_table(reports: list[LawReport]) -> pd.DataFrame:
    """h* per domain and law (with intervals), the predicted loss there and the gain over the uniform mixture, for
    the laws that depend on the mixture (``reports``)."""
    columns = {}
    for r in reports:
        o = r.optimum
        if {"lo", "hi"} <= set(o.columns):
            columns[r.law] = [
                f"{100 * a:.1f} [{100 * b:.1f}, {100 * c:.1f}]" for a, b, c in zip(o["h_star"], o["lo"], o["hi"])
            ]
        else:
            columns[r.law] = [f"{100 * a:.1f}" for a in o["h_star"]]
    frame = pd.DataFrame(columns, index=pd.Index(reports[0].optimum.index, name="h* %"))
    for r in reports:
        o = r.path.objectives.index(WEIGHTED)
        loss = r.optimum.attrs.get("loss")
        frame.loc["predicted mean loss at h*", r.law] = f"{r.path.objective[-1, o]:.4f}" + (
            f" [{loss['lo']:.4f}, {loss['hi']:.4f}]" if loss else ""
        )
        frame.loc["gain vs uniform mixture", r.law] = f"{r.path.gain[-1, o]:.4f}"
    return frame


def _parameter_table(r: LawReport) -> pd.DataFrame:
    rows = {}
    boot_intervals = r.bootstrap.intervals() if r.bootstrap is not None else {}
    domains = figures.domain_labels(r.fit.weight_columns)
    for t, params in r.fit.params.items():
        for name, value in params.items():
            values = np.atleast_1d(np.asarray(value, float))
            intervals = boot_intervals.get(t, {}).get(name)
            for i, v in enumerate(values):
                label = f"{name}[{domains[i]}]" if values.size > 1 else name
                cell = f"{v:.4g}"
                if intervals is not None:
                    lo, hi = np.asarray(intervals, float).reshape(-1, 2)[i]
                    cell += f" [{lo:.4g}, {hi:.4g}]"
                rows.setdefault(label, {})[t] = cell
    frame = pd.DataFrame(rows).T
    frame.index.name = "parameter"
    return frame


def _html(title, source, runs, train, held_out, reports, drawn, settings, choosing=None) -> str:
    """The page; ``drawn`` maps figure name -> (PNG bytes, caption)."""
    esc = html.escape
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='note'>{esc(source)} generated {when} by mixlaw_jax</p>",
    ]
    parts.append(
        "<h2>Data and settings</h2><ul>"
        f"<li>{runs.n_rows} rows, {runs.n_runs} runs, {runs.k} domains: "
        f"{esc(', '.join(runs.weight_columns))}</li><li>targets: {esc(', '.join(runs.targets))}</li>"
        f"<li>training rows: {train.n_rows} ({train.n_runs} runs)</li>"
        + (
            f"<li>held-out rows: {held_out.n_rows} ({held_out.n_runs} runs), "
            f"selected by <code>{esc(settings['holdout'])}</code></li>"
            if held_out is not None
            else ""
        )
        + f"<li>fit: {settings['n_starts']} random starts per target, successive-halving schedule "
        f"{esc(str(settings['schedule']))}, seed {settings['seed']}</li>"
        f"<li>bootstrap: {settings['replicates']} replicates (runs resampled), "
        f"{100 * settings['level']:.0f}% percentile intervals</li></ul>"
    )
    parts.append(
        "<h2>Scores (MRE %)</h2>"
        + _table(_scores_frame(reports, held_out is not None))
        + (
            "<p class='note'>Brackets: bootstrap percentile interval of the held-out MRE.</p>"
            if any(r.held_out_mre_interval is not None for r in reports)
            else ""
        )
    )
    flags = [(r.law, t, f) for r in reports for t in r.fit.targets for f in r.fit.diagnostics[t].flags]
    if flags:
        parts.append(
            "<p class='note'>Parameters at a bound or at an extreme value:</p><ul>"
            + "".join(f"<li class='flag'>{esc(law)}, {esc(t)}: {esc(f)}</li>" for law, t, f in flags)
            + "</ul>"
        )
    if choosing is not None:
        parts.append(_choosing_html(choosing))
    mixing = [r for r in reports if r.path is not None]
    if mixing:
        parts.append(
            f"<h2>Optimal mixture at N = {settings['N']:.3g}, D = {settings['D']:.3g}</h2>"
            "<p class='note'>Minimises the mean predicted loss over the targets, within the range of weights "
            "each domain has in the training runs"
            + "".join(f"; law {esc(r.law)} does not depend on the mixture" for r in reports if r.path is None)
            + ".</p>"
            + _table(_optimum_table(mixing))
        )
    proposed = [r for r in reports if r.next_runs is not None]
    if proposed:
        parts.append(_next_runs_html(proposed, settings))
    parts.append("<h2>Figures</h2>")
    for name, (png, caption) in drawn.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<figure id='{esc(name)}'><img alt='{esc(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Parameters</h2>")
    for r in reports:
        parts.append(
            f"<details><summary>{esc(r.law)} law"
            + (" (bootstrap intervals in brackets)" if r.bootstrap is not None else "")
            + "</summary>"
            + _table(_parameter_table(r))
            + "</details>"
        )
    if any(r.held_out_interval is not None for r in reports):
        parts.append("<h2>Held-out predictions with bootstrap intervals</h2>")
        for r in reports:
            if r.held_out_interval is not None:
                parts.append(
                    f"<details><summary>{esc(r.law)} law</summary>" + _table(r.held_out_interval) + "</details>"
                )
    parts.append("</body></html>")
    return "\n".join(parts)


def _next_runs_html(reports: list[LawReport], settings: dict) -> str:
    """The "What to train next" section: per law, the proposed runs and what each pins down."""
    esc = html.escape
    parts = [
        "<h2>What to train next</h2>",
        f"<p class='note'>The {NEXT_RUNS} candidate runs (space-filling mixtures at the training sizes and one size "
        f"up) that remove the most variance of h* at N = {settings['N']:.3g}, D = {settings['D']:.3g} "
        "per FLOP (6 N D), each chosen given the ones above it (<code>mixlaw propose</code> for other budgets, "
        "candidates or costs).</p>",
    ]
    for r in reports:
        if isinstance(r.next_runs, str):
            parts.append(f"<p class='note'>{esc(r.law)} law: none proposed: {esc(r.next_runs)}</p>")
            continue
        a = r.next_runs.attrs
        table = r.next_runs.drop(columns=["score"]).copy()
        table["variance_reduction"] = (100 * table["variance_reduction"]).map("{:.1f}%".format)
        table.index = pd.RangeIndex(1, len(table) + 1, name="run")
        parts.append(
            f"<h3>{esc(r.law)} law</h3><p class='note'>Var h* (summed over domains) {a['variance_before']:.3g} now, "
            f"{a['variance_after']:.3g} predicted after these runs (uncertainty: {esc(describe_ensemble(a))}; "
            f"{a['candidates']} candidates); the loss at h* under the same uncertainty: "
            f"{a['loss_at_h_star']:.4g} ± {a['loss_at_h_star_sd']:.2g}.</p>" + _table(table)
        )
    return "\n".join(parts)


def _choosing_html(choosing: Comparison | str) -> str:
    """The "Choosing a law" section: one table per metric (pooled over the held-out rows) and the winners."""
    esc = html.escape
    if isinstance(choosing, str):
        return f"<h2>Choosing a law</h2><p class='note'>Not scored: {esc(choosing)}</p>"
    c = choosing
    parts = [
        "<h2>Choosing a law</h2>",
        f"<p class='note'>{esc(c.split.describe())}: {len(c.folds)} fold(s), "
        f"{int(c.folds['test_rows'].sum())} held-out rows. Each cell: the score over every held-out row "
        f"[{100 * c.level:.0f}% bootstrap percentile interval, {c.n_replicates} replicates of the held-out "
        f"{esc(c.resampled)}; the fits are not repeated per replicate].</p>",
    ]
    for metric, title in (("mre", "held-out MRE %"), ("r2", "held-out R²"), ("spearman", "held-out Spearman rho")):
        table = c.table(metric)
        table.index.name = title
        parts.append(_table(table))
    winners = c.winners("mre")
    rows = pd.DataFrame(
        {
            "winner (lowest MRE)": winners["winner"],
            "runner-up": winners["runner_up"].fillna("-"),
            "intervals overlap": winners["intervals_overlap"].map({True: "yes", False: "no"}).fillna("-"),
            "replicates where the winner is better": winners["fraction_better"].map(
                lambda v: "-" if v is None or pd.isna(v) else f"{100 * v:.0f}%"
            ),
        }
    )
    rows.index.name = "target"
    parts.append(_table(rows))
    return "".join(parts)
