"""Run tables: validated arrays (N, D, h, losses per target, run ids) from a DataFrame or a file.

A *run* is one trained model (one mixture h, one size N); it may contribute several rows, one per
token checkpoint D. Runs matter for the bootstrap (a resample keeps a run's rows together) and for
row-selection protocols such as dropping each run's first checkpoints.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import os
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import MixlawError

#: Mixture weights must sum to 1 within this tolerance (RegMix rounds weights to 3 decimals: +-0.004).
WEIGHT_SUM_TOL = 5e-3


@dataclasses.dataclass(frozen=True)
class RunTable:
    """Validated run table.

    Attributes:
      h: (rows, k) mixture weights, each row on the simplex.
      n: (rows,) model sizes N, or None when the table has no N column.
      d: (rows,) training tokens D, or None.
      losses: (rows, targets) observed losses; NaN marks a missing cell (excluded from that target).
      run_id: (rows,) integer run index in 0..n_runs-1.
      weight_columns, targets: column names, in array order.
      frame: the source rows (for queries and reports).
    """

    h: np.ndarray
    n: np.ndarray | None
    d: np.ndarray | None
    losses: np.ndarray
    run_id: np.ndarray
    weight_columns: tuple[str, ...]
    targets: tuple[str, ...]
    frame: pd.DataFrame = dataclasses.field(repr=False, compare=False)
    n_column: str | None = None
    d_column: str | None = None

    @property
    def k(self) -> int:
        return self.h.shape[1]

    @property
    def n_rows(self) -> int:
        return self.h.shape[0]

    @property
    def n_runs(self) -> int:
        return int(self.run_id.max()) + 1 if self.n_rows else 0

    @property
    def observed(self) -> np.ndarray:
        """(rows, targets) True where the loss is present."""
        return np.isfinite(self.losses)

    def missing_report(self) -> dict[str, list[int]]:
        """target -> source row labels whose loss is missing (those rows are left out of that target's fit)."""
        labels = self.frame.index.to_numpy()
        return {t: labels[~self.observed[:, j]].tolist() for j, t in enumerate(self.targets)
                if not self.observed[:, j].all()}

    def hash(self) -> str:
        """SHA-256 of the arrays, to record which table a result came from."""
        digest = hashlib.sha256()
        for a in (self.h, self.n, self.d, self.losses, self.run_id):
            if a is not None:
                digest.update(np.ascontiguousarray(a).tobytes())
        digest.update(repr((self.weight_columns, self.targets)).encode())
        return digest.hexdigest()

    def subset(self, rows) -> "RunTable":
        """The rows selected by a boolean mask or index array, with run ids renumbered."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        if rows.size == 0:
            raise MixlawError("the row selection is empty: no rows left to fit")
        _, run_id = np.unique(self.run_id[rows], return_inverse=True)
        pick = lambda a: None if a is None else a[rows]
        return dataclasses.replace(self, h=self.h[rows], n=pick(self.n), d=pick(self.d),
                                   losses=self.losses[rows], run_id=run_id.astype(np.int64),
                                   frame=self.frame.iloc[rows])

    def query(self, expr: str) -> "RunTable":
        """Rows matching a pandas query on the source columns, e.g. ``"model_size <= 1.3e9"``."""
        try:
            mask = self.frame.eval(expr).to_numpy(dtype=bool)
        except Exception as err:  # pandas raises many types for a bad expression
            raise MixlawError(f"cannot evaluate row selection {expr!r}: {err}") from None
        return self.subset(mask)

    def drop_first_checkpoints(self, n_first: int) -> "RunTable":
        """Drop each run's ``n_first`` smallest-D checkpoints (rows with equal D count once).

        Shukor et al.'s train MRE is reproduced under ``n_first=2``: each run's early checkpoints sit
        off the law (see README, "Row-selection protocols").
        """
        if self.d is None:
            raise MixlawError("drop_first_checkpoints needs a D column")
        keep = np.ones(self.n_rows, dtype=bool)
        for run in range(self.n_runs):
            rows = np.flatnonzero(self.run_id == run)
            distinct = np.unique(self.d[rows])
            keep[rows] = self.d[rows] > (distinct[n_first - 1] if n_first > 0 and len(distinct) >= n_first
                                         else (np.inf if n_first > 0 else -np.inf))
        return self.subset(keep)

    def target_index(self, targets: Sequence[str] | None) -> list[int]:
        if targets is None:
            return list(range(len(self.targets)))
        return [_index_of(self.targets, t, "target") for t in targets]


def _index_of(names: Sequence[str], name: str, what: str) -> int:
    if name in names:
        return list(names).index(name)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; available: {', '.join(names)}"
    raise MixlawError(f"unknown {what} {name!r}{hint}")


def _read(source) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = os.fspath(source)
    if not os.path.exists(path):
        raise MixlawError(f"no such file: {path}")
    try:
        if path.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as err:
        raise MixlawError(f"cannot read {path}: {err}") from None


def _resolve_columns(frame: pd.DataFrame, spec, what: str) -> list[str]:
    """A list of names, or one glob pattern, resolved against the frame's columns."""
    names = [str(c) for c in frame.columns]
    patterns = [spec] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matched = [c for c in names if fnmatch.fnmatchcase(c, pattern)]
            if not matched:
                raise MixlawError(f"no column matches the {what} pattern {pattern!r}; columns: {', '.join(names)}")
            out += matched
        else:
            out.append(names[_index_of(names, pattern, f"{what} column")])
    if not out:
        raise MixlawError(f"no {what} columns given")
    return out


def _numeric(frame: pd.DataFrame, column: str, *, allow_nan: bool) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & frame[column].notna().to_numpy()
    if bad.any():
        row = frame.index[np.flatnonzero(bad)[0]]
        raise MixlawError(f"column {column!r}, row {row}: non-numeric value {frame[column].loc[row]!r}")
    invalid = ~np.isfinite(values) if not allow_nan else np.isinf(values)
    if invalid.any():
        row = frame.index[np.flatnonzero(invalid)[0]]
        raise MixlawError(f"column {column!r}, row {row}: value {values[np.flatnonzero(invalid)[0]]} is not finite")
    return values


def load_runs(source, *, weights, N: str | None = None, D: str | None = None, targets,
              run_id: str | None = None, renormalize: bool = False) -> RunTable:
    """Load and validate a run table.

    Args:
      source: a DataFrame, or a CSV / Parquet path.
      weights: the mixture-weight columns: a list of names or a glob such as ``"weight_*"``.
      N, D: the model-size and token columns, or None for laws that do not use them.
      targets: the loss columns (names or a glob such as ``"*_loss"``). Missing cells (NaN) are
        excluded from that target's fit and listed by :meth:`RunTable.missing_report`.
      run_id: a column identifying runs; by default a run is a distinct (mixture, N) pair.
      renormalize: rescale weight rows that sum to within ``WEIGHT_SUM_TOL`` of 1 onto the simplex,
        with a warning giving the largest correction; weight sums further from 1 are always an error.

    Returns:
      A :class:`RunTable`.

    Raises:
      MixlawError: naming the column, row and value of the first problem found.
    """
    frame = _read(source)
    if len(frame) == 0:
        raise MixlawError("the run table is empty")
    weight_cols = _resolve_columns(frame, weights, "weight")
    target_cols = _resolve_columns(frame, targets, "target")
    overlap = set(weight_cols) & set(target_cols)
    if overlap:
        raise MixlawError(f"columns used both as weights and targets: {sorted(overlap)}")

    h = np.stack([_numeric(frame, c, allow_nan=False) for c in weight_cols], axis=1)
    negative = np.argwhere(h < 0)
    if negative.size:
        r, c = negative[0]
        raise MixlawError(f"column {weight_cols[c]!r}, row {frame.index[r]}: negative weight {float(h[r, c])!r}")
    sums = h.sum(axis=1)
    off = np.abs(sums - 1.0)
    if (off > WEIGHT_SUM_TOL).any():
        r = int(np.flatnonzero(off > WEIGHT_SUM_TOL)[0])
        raise MixlawError(f"row {frame.index[r]}: weights sum to {sums[r]:.6g}, not 1 (tolerance {WEIGHT_SUM_TOL}); "
                          f"columns {', '.join(weight_cols)}")
    if renormalize and off.max() > 0:
        warnings.warn(f"renormalised weight rows onto the simplex; largest correction {off.max():.3g}", stacklevel=2)
        h = h / sums[:, None]

    def positive_column(name):
        if name is None:
            return None
        column = _resolve_columns(frame, [name], "size")[0]
        values = _numeric(frame, column, allow_nan=False)
        if (values <= 0).any():
            r = int(np.flatnonzero(values <= 0)[0])
            raise MixlawError(f"column {column!r}, row {frame.index[r]}: value {float(values[r])!r} must be > 0")
        return values

    n, d = positive_column(N), positive_column(D)
    losses = np.stack([_numeric(frame, c, allow_nan=True) for c in target_cols], axis=1)
    for j, c in enumerate(target_cols):
        if not np.isfinite(losses[:, j]).any():
            raise MixlawError(f"target column {c!r} has no values")

    if run_id is not None:
        column = _resolve_columns(frame, [run_id], "run id")[0]
        _, ids = np.unique(frame[column].astype(str).to_numpy(), return_inverse=True)
    else:
        key = np.concatenate([h, (n if n is not None else np.zeros(len(h)))[:, None]], axis=1)
        _, ids = np.unique(key, axis=0, return_inverse=True)
    return RunTable(h=h, n=n, d=d, losses=losses, run_id=ids.reshape(-1).astype(np.int64),
                    weight_columns=tuple(weight_cols), targets=tuple(target_cols), frame=frame,
                    n_column=N, d_column=D)
