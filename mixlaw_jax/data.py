"""Run tables: validated arrays (N, D, h, losses per target, run ids) from a DataFrame or a file.

A *run* is one trained model (one mixture h, one size N); it may contribute several rows, one per
token checkpoint D. Runs matter for the bootstrap (a resample keeps a run's rows together) and for
row-selection protocols such as dropping each run's first checkpoints.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import difflib
import fnmatch
import gzip
import hashlib
import io
import lzma
import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import MixlawError, warn_user
from .laws import Inputs
from .options import whole_number
from .selection import select_rows

#: Mixture weights must sum to 1 within this tolerance (RegMix rounds weights to 3 decimals: +-0.004).
WEIGHT_SUM_TOL = 5e-3
#: Weight sums within this of 1 are floating-point rounding: renormalising them is not worth a warning.
ROUNDING = 1e-12
#: Losses above this are warned about: a cross-entropy over a vocabulary of V tokens starts near ln V (about 11 nats
#: for V = 50,000; 16 bits), so no table of losses holds such values (perplexities do).
IMPLAUSIBLE_LOSS = 100.0


@dataclasses.dataclass(frozen=True)
class RunTable:
    """Validated run table.

    Attributes:
      h: (rows, k) mixture weights, each row on the simplex; (rows, 0) for a table loaded with ``weights=None``
        (no mixtures: only laws that do not use h can be fitted to it).
      n: (rows,) model sizes N, or None when the table has no N column.
      d: (rows,) training tokens D, or None.
      losses: (rows, targets) observed losses; NaN marks a missing cell (excluded from that target).
      run_id: (rows,) integer run index in 0..n_runs-1.
      weight_columns, targets: column names, in array order (``weight_columns`` is empty when k = 0).
      frame: the source rows (for queries and reports).
      duplicate_rtol: relative gap in D below which two checkpoints of a run count as one
        (see :meth:`duplicate_report`).
      warned_constant: weight columns ``load_runs`` already warned about as never varying (a fit does not
        repeat that warning).
      u: (rows, k_u) unique tokens available per domain (k_u = k, or 1 for a table without mixtures; +inf for an
        unlimited pool), or None when the table was loaded without ``unique_tokens``.
      unique_tokens: the ``unique_tokens`` specification the table was loaded with (to read new frames the same
        way), or None.
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
    duplicate_rtol: float = 1e-3
    warned_constant: tuple[str, ...] = ()
    u: np.ndarray | None = None
    unique_tokens: dict | str | float | None = None

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

    def inputs(self) -> Inputs:
        """The rows as a law's inputs (log N, log D, h, log h); a missing N or D column reads as 1 (for laws that
        do not use it)."""
        ones = np.ones(self.n_rows)
        return Inputs.from_arrays(
            ones if self.n is None else self.n, ones if self.d is None else self.d, self.h, self.u
        )

    def missing_report(self) -> dict[str, list[int]]:
        """target -> source row labels whose loss is missing (those rows are left out of that target's fit)."""
        labels = self.frame.index.to_numpy()
        return {
            t: labels[~self.observed[:, j]].tolist()
            for j, t in enumerate(self.targets)
            if not self.observed[:, j].all()
        }

    def duplicate_report(self) -> list[dict]:
        """Groups of rows that repeat a checkpoint: same run, mixture and N, with D within relative
        ``duplicate_rtol`` (without a D column: rows identical in every used column).

        Returns:
          One dict per group: ``rows`` (source row labels), ``D`` (their token counts, or None) and
          ``identical`` (True when the rows agree in D and every loss too).
        """
        labels = self.frame.index.to_numpy()
        out = []
        for g in _duplicate_groups(self.h, self.n, self.d, self.run_id, self.losses, self.duplicate_rtol):
            same_d = self.d is None or np.all(self.d[g] == self.d[g[0]])
            same_loss = all(_equal_nan(self.losses[g[0]], self.losses[i]) for i in g[1:])
            out.append(
                {
                    "rows": labels[g].tolist(),
                    "D": None if self.d is None else self.d[g].tolist(),
                    "identical": bool(same_d and same_loss),
                }
            )
        return out

    def constant_domains(self) -> dict[str, float]:
        """weight column -> its value, for domains whose weight is the same in every row (k >= 2 only).

        A law's per-domain parameters (such as the domain's exponent) are not identifiable from such a table.
        """
        if self.k < 2:
            return {}
        return {
            c: float(self.h[0, i]) for i, c in enumerate(self.weight_columns) if np.all(self.h[:, i] == self.h[0, i])
        }

    def hash(self) -> str:
        """SHA-256 of the arrays, to record which table a result came from."""
        digest = hashlib.sha256()
        for a in (self.h, self.n, self.d, self.losses, self.run_id, self.u):
            if a is not None:
                digest.update(np.ascontiguousarray(a).tobytes())
        digest.update(repr((self.weight_columns, self.targets)).encode())
        return digest.hexdigest()

    def subset(self, rows) -> RunTable:
        """The rows selected by a boolean mask of length ``n_rows`` or an array of row positions in
        [-n_rows, n_rows), with run ids renumbered."""
        try:
            rows = np.asarray(rows)
        except (TypeError, ValueError) as err:
            raise MixlawError(f"a row selection must be a boolean mask or row positions: {err}") from None
        if rows.dtype == bool:
            if rows.shape != (self.n_rows,):
                raise MixlawError(
                    f"a boolean row mask must have one entry per row ({self.n_rows}), not shape {rows.shape}"
                )
            rows = np.flatnonzero(rows)
        elif rows.size and (rows.ndim != 1 or rows.dtype.kind not in "iu"):
            raise MixlawError(
                f"row positions must be a 1-D array of whole numbers, not {rows.dtype} of shape {rows.shape}"
            )
        elif rows.size and not ((rows >= -self.n_rows) & (rows < self.n_rows)).all():
            bad = rows[(rows < -self.n_rows) | (rows >= self.n_rows)][0]
            raise MixlawError(f"row position {int(bad)} is out of range: the table has {self.n_rows} rows")
        if rows.size == 0:
            raise MixlawError("the row selection is empty: no rows left to fit")
        rows = rows.astype(np.int64)
        _, run_id = np.unique(self.run_id[rows], return_inverse=True)

        def pick(a):
            return None if a is None else a[rows]

        return dataclasses.replace(
            self,
            h=self.h[rows],
            n=pick(self.n),
            d=pick(self.d),
            u=pick(self.u),
            losses=self.losses[rows],
            run_id=run_id.astype(np.int64),
            frame=self.frame.iloc[rows],
        )

    def query(self, expr: str) -> RunTable:
        """Rows where a selection on the source columns holds, e.g. ``"model_size <= 1.3e9"``: comparisons of
        columns with numbers or strings joined by and / or / not (``selection``; nothing is executed)."""
        return self.subset(select_rows(self.frame, expr))

    def drop_first_checkpoints(self, n_first: int) -> RunTable:
        """Drop each run's ``n_first`` smallest-D checkpoints (rows with equal D count once).

        Shukor et al.'s train MRE is reproduced under ``n_first=2``: each run's early checkpoints sit
        off the law (see README, "Row-selection protocols").
        """
        if self.d is None:
            raise MixlawError("drop_first_checkpoints needs a D column")
        if isinstance(n_first, bool) or not isinstance(n_first, (int, np.integer)) or n_first < 0:
            raise MixlawError(f"drop_first_checkpoints needs a whole number >= 0, not {n_first!r}")
        keep = np.ones(self.n_rows, dtype=bool)
        for run in range(self.n_runs):
            rows = np.flatnonzero(self.run_id == run)
            distinct = np.unique(self.d[rows])
            keep[rows] = self.d[rows] > (
                distinct[n_first - 1]
                if n_first > 0 and len(distinct) >= n_first
                else (np.inf if n_first > 0 else -np.inf)
            )
        return self.subset(keep)

    def target_index(self, targets: str | Sequence[str] | None) -> list[int]:
        """Positions of the named targets (all when None; a string names one); names must be target columns,
        given once each."""
        if targets is None:
            return list(range(len(self.targets)))
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, Sequence) or not targets:
            raise MixlawError(f"targets must be a non-empty list of target column names, not {targets!r}")
        for t in targets:
            if not isinstance(t, str):
                raise MixlawError(f"targets must be column names, not {t!r} ({type(t).__name__})")
        index = [index_of(self.targets, t, "target") for t in targets]
        if len(set(index)) != len(index):
            raise MixlawError(f"targets names a column more than once: {list(targets)}")
        return index


def index_of(names: Sequence[str], name: str, what: str) -> int:
    """The position of ``name`` in ``names``; otherwise a MixlawError naming the ``what`` and the closest name."""
    if name in names:
        return list(names).index(name)
    folded = {n.casefold(): n for n in reversed(names)}
    close = [folded[name.casefold()]] if name.casefold() in folded else difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; available: {', '.join(names)}"
    raise MixlawError(f"unknown {what} {name!r}{hint}")


def _equal_nan(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _checkpoint_clusters(h, n, d, run_id, losses, rtol: float) -> np.ndarray:
    """(rows,) cluster index: rows of the same run, mixture and N whose D values chain within relative
    ``rtol`` share a cluster (without D: rows identical in every used column)."""
    rows = len(h)
    key = [h, run_id[:, None].astype(np.float64)] + ([n[:, None]] if n is not None else [])
    if d is None:
        key.append(np.where(np.isnan(losses), np.inf, losses))  # losses are finite or NaN
    _, key_id = np.unique(np.concatenate(key, axis=1), axis=0, return_inverse=True)
    key_id = key_id.reshape(-1)
    dd = d if d is not None else np.zeros(rows)
    order = np.lexsort((dd, key_id))
    ks, ds = key_id[order], dd[order]
    starts = np.ones(rows, dtype=bool)
    starts[1:] = (ks[1:] != ks[:-1]) | (ds[1:] - ds[:-1] > rtol * ds[1:])
    cluster = np.empty(rows, dtype=np.int64)
    cluster[order] = np.cumsum(starts) - 1
    return cluster


def _duplicate_groups(h, n, d, run_id, losses, rtol: float) -> list[np.ndarray]:
    """Row positions of each cluster of two or more rows (``_checkpoint_clusters``), ordered by first row."""
    cluster = _checkpoint_clusters(h, n, d, run_id, losses, rtol)
    repeated = np.flatnonzero(np.bincount(cluster) > 1)
    groups = [np.flatnonzero(cluster == c) for c in repeated]
    return sorted(groups, key=lambda g: g[0])


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def _describe_groups(groups: list[dict], d_column: str | None, limit: int = 3) -> str:
    parts = []
    for g in groups[:limit]:
        rows = ", ".join(str(r) for r in g["rows"])
        what = "identical" if g["identical"] else f"column {d_column!r}: {', '.join(f'{v:.6g}' for v in g['D'])}"
        parts.append(f"rows {rows} ({what})")
    more = f"; and {len(groups) - limit} more" if len(groups) > limit else ""
    return "; ".join(parts) + more


def _cluster_mean(cluster: np.ndarray, values: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Per cluster, the mean of ``values`` where ``use`` (NaN where none is used); each value is divided by
    its cluster's count before summing, so the mean of finite values never overflows."""
    count = np.bincount(cluster, weights=use)
    share = np.where(use, values, 0.0) / np.maximum(count[cluster], 1)
    return np.where(count > 0, np.bincount(cluster, weights=share), np.nan)


def _merge_duplicates(h, n, d, losses, run_id, frame, d_column, target_cols, rtol):
    """Each cluster of repeated checkpoints becomes its first row, with the mean D and the mean of each
    target's observed losses (NaN when none is observed)."""
    cluster = _checkpoint_clusters(h, n, d, run_id, losses, rtol)
    n_clusters = int(cluster.max()) + 1
    first = np.full(n_clusters, len(h))
    np.minimum.at(first, cluster, np.arange(len(h)))
    keep = np.sort(first)
    observed = np.isfinite(losses)
    merged_losses = np.stack(
        [_cluster_mean(cluster, losses[:, j], observed[:, j]) for j in range(losses.shape[1])], axis=1
    )[cluster[keep]]
    frame = frame.iloc[keep].copy()
    for j, c in enumerate(target_cols):
        frame[c] = merged_losses[:, j]
    merged_d = None
    if d is not None:
        merged_d = _cluster_mean(cluster, d, np.ones(len(d), dtype=bool))[cluster[keep]]
        frame[d_column] = merged_d
    return h[keep], (None if n is None else n[keep]), merged_d, merged_losses, run_id[keep], frame


def read_table(source) -> pd.DataFrame:
    """A DataFrame as it is, or a CSV / Parquet file read (``_read_csv``); a header that repeats a name is refused."""
    if isinstance(source, pd.DataFrame):
        frame = source
    else:
        try:
            path = os.fspath(source)
        except TypeError:
            raise MixlawError(
                f"the run table must be a DataFrame or a CSV / Parquet path, not {type(source).__name__}"
            ) from None
        if not os.path.exists(path):
            raise MixlawError(f"no such file: {path}")
        if os.path.isdir(path):
            raise MixlawError(f"{path} is a folder, not a CSV or Parquet file")
        try:
            frame = pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else _read_csv(path)
        except MixlawError:
            raise
        except Exception as err:  # pandas and pyarrow raise many types for an unreadable file
            raise MixlawError(f"cannot read {path}: {' '.join(str(err).split())}") from None
    names = [str(c) for c in frame.columns]
    _refuse_repeated(names, "the run table")
    if list(frame.columns) != names:
        frame = frame.set_axis(names, axis=1)
    return frame


#: Byte-order marks and the encodings they announce (UTF-32 before UTF-16: FF FE starts both).
BYTE_ORDER_MARKS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


#: Compressed CSV files, by suffix.
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _read_csv(path: str) -> pd.DataFrame:
    """A CSV file (or one compressed with gzip, bzip2 or xz) as a frame: UTF-8, or UTF-16 / UTF-32 with a byte-order
    mark; comma-separated, or separated by semicolons or tabs when the header holds no comma. A header that repeats
    a name is refused (pandas would rename the second ``name.1``)."""
    opener = next((o for suffix, o in COMPRESSED.items() if path.endswith(suffix)), open)
    with opener(path, "rb") as f:
        raw = f.read()
    encoding = next((name for mark, name in BYTE_ORDER_MARKS if raw.startswith(mark)), "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        hint = " (it looks like UTF-16 without a byte-order mark)" if raw[:200].count(b"\x00") > 20 else ""
        raise MixlawError(
            f"cannot read {path}: not {encoding.upper()} text, byte 0x{raw[err.start]:02x} at position "
            f"{err.start}{hint}; save the table as UTF-8"
        ) from None
    header = text.split("\n", 1)[0]  # the codec has dropped the byte-order mark
    sep = "," if "," in header else next((s for s in (";", "\t") if s in header), ",")
    _refuse_repeated(next(csv.reader([header], delimiter=sep)) if header.strip() else [], f"the header of {path}")
    if "\x00" in text:
        raise MixlawError(f"cannot read {path}: it holds NUL characters, so it is not a text table")
    return pd.read_csv(io.StringIO(text), sep=sep)


def _refuse_repeated(names: list[str], where: str) -> None:
    """A MixlawError naming the first column name that ``names`` holds more than once."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MixlawError(f"column {repeated[0]!r} appears {names.count(repeated[0])} times in {where}")


def _resolve_columns(frame: pd.DataFrame, spec, what: str) -> list[str]:
    """A list of names, or one glob pattern, resolved against the frame's columns."""
    names = list(frame.columns)
    patterns = [spec] if isinstance(spec, str) else spec
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        hint = " (or None for a table without mixtures)" if what == "weight" else ""
        raise MixlawError(f"{what} columns must be a name, a glob or a list of names{hint}, not {spec!r}")
    out: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matched = [c for c in names if fnmatch.fnmatchcase(c, pattern)]
            if not matched:
                raise MixlawError(f"no column matches the {what} pattern {pattern!r}; columns: {', '.join(names)}")
            out += matched
        else:
            out.append(names[index_of(names, pattern, f"{what} column")])
    if not out:
        advice = "; pass weights=None for a table without mixtures" if what == "weight" else ""
        raise MixlawError(f"no {what} columns given{advice}")
    repeated = sorted({c for c in out if out.count(c) > 1})
    if repeated:
        raise MixlawError(f"{what} column {repeated[0]!r} is named more than once")
    return out


def _one_column(frame: pd.DataFrame, name: str | None, what: str) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise MixlawError(f"the {what} column must be a column name, not {name!r}")
    found = _resolve_columns(frame, name, what)
    if len(found) > 1:
        raise MixlawError(f"the {what} column {name!r} matches {len(found)} columns ({', '.join(found)}); name one")
    return found[0]


def _numeric(frame: pd.DataFrame, column: str, *, allow_nan: bool) -> np.ndarray:
    """The column as float64; names the row and value of the first non-numeric, missing or infinite cell.

    Missing cells (NaN, None, empty) are allowed only when ``allow_nan``.
    """
    cells = frame[column]
    if cells.dtype.kind in "mM" or isinstance(cells.dtype, pd.DatetimeTZDtype):
        raise MixlawError(
            f"column {column!r} holds {'durations' if cells.dtype.kind == 'm' else 'dates'} "
            f"({cells.dtype}), not numbers"
        )
    try:
        numeric = pd.to_numeric(cells, errors="coerce")
    except (TypeError, ValueError, OverflowError):  # huge integers, odd objects
        numeric = None
    if numeric is not None and numeric.dtype.kind in "biuf":
        values = numeric.to_numpy(dtype=np.float64)
    else:  # complex numbers and anything pandas cannot convert
        values = np.array([_to_float(v) for v in cells], dtype=np.float64)
    bad = np.isnan(values) & cells.notna().to_numpy()
    if cells.dtype.kind in "bO":
        bad |= cells.map(_is_bool).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = cells.iloc[i]
        hint = (
            " (a decimal comma? write numbers with a decimal point)"
            if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+,\d+\s*", value)
            else ""
        )
        raise MixlawError(f"column {column!r}, row {frame.index[i]}: non-numeric value {_show(value)}{hint}")
    if not allow_nan and np.isnan(values).any():
        i = int(np.flatnonzero(np.isnan(values))[0])
        raise MixlawError(f"column {column!r}, row {frame.index[i]}: missing value (empty cell or NaN)")
    if np.isinf(values).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        raise MixlawError(f"column {column!r}, row {frame.index[i]}: value {values[i]} is not finite")
    return values


def _is_bool(value) -> bool:
    """True and False are not numbers here: a boolean in a numeric column is a typo or a wrong column."""
    return isinstance(value, (bool, np.bool_))


def _show(value, limit: int = 60) -> str:
    """repr of a cell, shortened to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_float(value) -> float:
    """A real number as float; NaN for anything else (reported by ``_numeric`` as non-numeric)."""
    if isinstance(value, (complex, np.complexfloating)):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return np.nan


def _check_roles(roles: dict[str, list[str]]) -> None:
    seen: dict[str, str] = {}
    for role, columns in roles.items():
        for c in columns:
            if c in seen:
                raise MixlawError(f"column {c!r} is used both as {seen[c]} and as {role}")
            seen[c] = role


def _weights(frame: pd.DataFrame, weight_cols: list[str], renormalize: bool) -> np.ndarray:
    """(rows, k) mixture weights, checked (no negative weight, none all zero, rows summing to 1 within
    ``WEIGHT_SUM_TOL``) or renormalised; (rows, 0) without weight columns."""
    if not weight_cols:
        return np.zeros((len(frame), 0))
    h = np.stack([_numeric(frame, c, allow_nan=False) for c in weight_cols], axis=1)
    negative = np.argwhere(h < 0)
    if negative.size:
        r, c = negative[0]
        raise MixlawError(f"column {weight_cols[c]!r}, row {frame.index[r]}: negative weight {float(h[r, c])!r}")
    sums = h.sum(axis=1)
    if (sums == 0).any():
        r = int(np.flatnonzero(sums == 0)[0])
        raise MixlawError(f"row {frame.index[r]}: every weight is 0 (columns {', '.join(weight_cols)})")
    off = np.abs(sums - 1.0)
    if renormalize:
        h = h / sums[:, None]
        corrected = np.flatnonzero(off > ROUNDING)
        if corrected.size:
            r = int(np.argmax(off))
            warn_user(
                f"renormalised the weights of {_count(corrected, 'row')} onto the simplex; largest "
                f"correction at row {frame.index[r]}: the weights summed to {sums[r]:.6g} (off by "
                f"{off[r]:.3g})"
            )
    elif (off > WEIGHT_SUM_TOL).any():
        r = int(np.flatnonzero(off > WEIGHT_SUM_TOL)[0])
        raise MixlawError(
            f"row {frame.index[r]}: weights sum to {sums[r]:.6g}, not 1 (tolerance {WEIGHT_SUM_TOL}; "
            f"columns {', '.join(weight_cols)}); pass renormalize=True to rescale them"
        )
    return h


def _pool_sizes(frame: pd.DataFrame, spec, weight_cols: list[str]) -> np.ndarray | None:
    """(rows, k_u) unique tokens per domain from ``load_runs(unique_tokens=...)``: k_u = k for a mixture table (a dict
    weight column -> constant or column name), 1 without mixtures (a column name or a constant). None -> None."""
    if spec is None:
        return None

    def constant(value, what: str) -> np.ndarray:
        if value is None:  # an unlimited pool, said explicitly
            return np.full(len(frame), np.inf)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise MixlawError(
                f"unique tokens for {what}: give a number of tokens, a column name, or None (unlimited), not {value!r}"
            )
        value = float(value)
        if not np.isfinite(value) or value <= 0:
            raise MixlawError(
                f"unique tokens for {what}: {value!r} must be a finite number > 0 (None for an unlimited pool)"
            )
        return np.full(len(frame), value)

    def column(name: str, what: str) -> np.ndarray:
        found = _one_column(frame, name, "unique-tokens")
        if found in weight_cols:
            raise MixlawError(f"unique tokens for {what}: column {found!r} is a weight column")
        values = _numeric(frame, found, allow_nan=False)
        if (values <= 0).any():
            r = int(np.flatnonzero(values <= 0)[0])
            raise MixlawError(
                f"unique tokens for {what}: column {found!r}, row {frame.index[r]}: value {float(values[r])!r} "
                f"must be > 0"
            )
        return values

    def one(value, what: str) -> np.ndarray:
        return column(value, what) if isinstance(value, str) else constant(value, what)

    if not weight_cols:
        if isinstance(spec, dict):
            raise MixlawError(
                "unique_tokens: a table without mixtures (weights=None) takes one column name or one number, not "
                "a dict of weight columns"
            )
        return one(spec, "the table")[:, None]
    if not isinstance(spec, dict):
        raise MixlawError(
            f"unique_tokens: a mixture table takes a dict weight column -> number of tokens or column name "
            f"(e.g. {{{weight_cols[0]!r}: 2e10}}), not {spec!r}"
        )
    for key in spec:
        if not isinstance(key, str) or key not in weight_cols:
            index_of(weight_cols, str(key), "weight column in unique_tokens")
    missing = [c for c in weight_cols if c not in spec]
    if missing:
        raise MixlawError(
            f"unique_tokens gives no pool size for weight column {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; give every domain a number of tokens, a column name, or None for an unlimited pool"
        )
    return np.stack([one(spec[c], f"weight column {c!r}") for c in weight_cols], axis=1)


def load_runs(
    source,
    *,
    weights,
    N: str | None = None,
    D: str | None = None,
    targets,
    run_id: str | None = None,
    renormalize: bool = False,
    duplicates: str = "keep",
    duplicate_rtol: float = 1e-3,
    k: int | None = None,
    warn: bool = True,
    unique_tokens=None,
) -> RunTable:
    """Load and validate a run table.

    Args:
      source: a DataFrame, or a CSV / Parquet path.
      weights: the mixture-weight columns: a list of names or a glob such as ``"weight_*"``; or None for a
        table without mixtures (k = 0: h has no columns, and only laws that do not use h, such as
        ``chinchilla``, can be fitted to it).
      N, D: the model-size and token columns, or None for laws that do not use them.
      targets: the loss columns (names or a glob such as ``"*_loss"``). Missing cells (NaN) are
        excluded from that target's fit and listed by :meth:`RunTable.missing_report`.
      run_id: a column identifying runs; by default a run is a distinct (mixture, N) pair: a distinct N
        without ``weights``, a distinct mixture without ``N``, and one run for the whole table without both; with
        ``unique_tokens``, rows whose pool sizes differ are different runs too.
      renormalize: rescale every weight row onto the simplex, with a warning giving the largest
        correction. Without it, a row whose weights sum to more than ``WEIGHT_SUM_TOL`` away from 1
        is an error, and rows within the tolerance are used as given. Refused with ``weights=None``.
      duplicates: what to do with rows that repeat a checkpoint (same run, mixture and N, D within
        relative ``duplicate_rtol``; see :meth:`RunTable.duplicate_report`): ``"keep"`` them all,
        ``"merge"`` each group into one row (mean D, mean of each observed loss), or ``"error"``.
      duplicate_rtol: relative gap in D below which two checkpoints of a run are the same checkpoint.
      k: the number of mixture domains expected (e.g. the k of a saved fit; 0 for ``weights=None``); weight
        columns that resolve to another number are an error.
      warn: emit a :class:`MixlawWarning` for kept duplicates and for domains whose weight never varies
        (their exponents are not identifiable). Prediction tables pass False.
      unique_tokens: the unique tokens available per domain, for data-constrained laws (``Law.uses_u``): for a
        mixture table a dict naming every weight column, each a number of tokens (``{"weight_wiki": 2e10}``), a
        column name (pool sizes that differ between rows) or None (an unlimited pool); for a table without
        mixtures, one column name or one number. Sizes must be finite and > 0. With ``duplicates="merge"`` a
        merged row keeps its first row's sizes.

    Returns:
      A :class:`RunTable`.

    Raises:
      MixlawError: naming the column, row and value of the first problem found.
    """
    for name, flag in (("renormalize", renormalize), ("warn", warn)):
        if not isinstance(flag, (bool, np.bool_)):
            raise MixlawError(f"{name} must be True or False, not {flag!r}")
    if duplicates not in ("keep", "merge", "error"):
        raise MixlawError(f"duplicates must be 'keep', 'merge' or 'error', not {duplicates!r}")
    if not (isinstance(duplicate_rtol, (int, float)) and 0 <= duplicate_rtol < 1):
        raise MixlawError(f"duplicate_rtol must be a number in [0, 1), not {duplicate_rtol!r}")
    frame = read_table(source)
    if len(frame) == 0:
        raise MixlawError("the run table is empty (no rows)")
    if weights is None and renormalize:
        raise MixlawError(
            "renormalize=True rescales mixture weights, but weights=None loads a table without weight "
            "columns; name the weight columns, or leave renormalize False"
        )
    weight_cols = [] if weights is None else _resolve_columns(frame, weights, "weight")
    target_cols = _resolve_columns(frame, targets, "target")
    if k is not None:
        k = whole_number(k, "k")
    if k is not None and len(weight_cols) != k:
        resolved = (
            "weights=None gives no weight columns"
            if weights is None
            else f"weights {weights!r} resolve to {len(weight_cols)} columns ({', '.join(weight_cols)})"
        )
        raise MixlawError(f"{resolved}, but k = {k} domains are expected")
    n_col, d_col, id_col = (
        _one_column(frame, name, what) for name, what in ((N, "size"), (D, "token"), (run_id, "run id"))
    )
    _check_roles(
        {
            "a weight": weight_cols,
            "a target": target_cols,
            "N": [n_col] if n_col else [],
            "D": [d_col] if d_col else [],
            "the run id": [id_col] if id_col else [],
        }
    )

    h = _weights(frame, weight_cols, renormalize)

    def positive_column(column):
        if column is None:
            return None
        values = _numeric(frame, column, allow_nan=False)
        if (values <= 0).any():
            r = int(np.flatnonzero(values <= 0)[0])
            raise MixlawError(f"column {column!r}, row {frame.index[r]}: value {float(values[r])!r} must be > 0")
        return values

    n, d = positive_column(n_col), positive_column(d_col)
    losses = np.stack([_numeric(frame, c, allow_nan=True) for c in target_cols], axis=1)
    for j, c in enumerate(target_cols):
        if not np.isfinite(losses[:, j]).any():
            raise MixlawError(f"target column {c!r} has no values")
        not_positive = np.flatnonzero(np.nan_to_num(losses[:, j], nan=1.0) <= 0)
        if not_positive.size:
            r = int(not_positive[0])
            raise MixlawError(
                f"column {c!r}, row {frame.index[r]}: loss {float(losses[r, j])!r} must be > 0 (a cross-entropy)"
            )
    if warn and np.nanmax(losses) > IMPLAUSIBLE_LOSS:
        r, j = np.unravel_index(np.nanargmax(losses), losses.shape)
        warn_user(
            f"column {target_cols[j]!r}, row {frame.index[r]}: loss {float(losses[r, j]):.6g} is above "
            f"{IMPLAUSIBLE_LOSS:g}, more than any cross-entropy in nats or bits; are these perplexities "
            f"(fit their logarithm)?"
        )

    u = _pool_sizes(frame, unique_tokens, weight_cols)
    if id_col is not None:
        _, ids = np.unique(frame[id_col].astype(str).to_numpy(), return_inverse=True)
    else:
        key = np.concatenate([h, (n if n is not None else np.zeros(len(h)))[:, None]], axis=1)
        if u is not None:  # a model trained on another pool is another run
            key = np.concatenate([key, u], axis=1)
        _, ids = np.unique(key, axis=0, return_inverse=True)
    ids = ids.reshape(-1).astype(np.int64)

    if duplicates == "merge":
        h, n, d, losses, ids, frame = _merge_duplicates(h, n, d, losses, ids, frame, d_col, target_cols, duplicate_rtol)
        u = _pool_sizes(frame, unique_tokens, weight_cols)  # the merged rows (each keeps its first row's sizes)
    runs = RunTable(
        h=h,
        n=n,
        d=d,
        losses=losses,
        run_id=ids,
        weight_columns=tuple(weight_cols),
        targets=tuple(target_cols),
        frame=frame,
        n_column=n_col,
        d_column=d_col,
        duplicate_rtol=float(duplicate_rtol),
        u=u,
        unique_tokens=None
        if unique_tokens is None
        else (dict(unique_tokens) if isinstance(unique_tokens, dict) else unique_tokens),
    )
    if duplicates != "merge" and (duplicates == "error" or warn):
        groups = runs.duplicate_report()
        if groups and duplicates == "error":
            raise MixlawError(
                f"{_count(groups, 'group')} of rows repeat a checkpoint of the same run (D within "
                f"relative {duplicate_rtol}): {_describe_groups(groups, d_col)}; pass "
                f"duplicates='merge' to average each group, or duplicates='keep'"
            )
        if groups:
            warn_user(
                f"kept {_count(groups, 'group')} of rows that repeat a checkpoint of the same run (D within "
                f"relative {duplicate_rtol}): {_describe_groups(groups, d_col)}; pass duplicates='merge' "
                f"to average each group, or duplicates='error' to refuse them"
            )
    constant = runs.constant_domains()
    if warn and constant:
        listed = ", ".join(f"column {c!r} is {v:.6g} in every row" for c, v in constant.items())
        warn_user(
            f"weights that never vary: {listed}; a law's parameters for such a domain (its exponent) "
            f"are not identifiable from this table"
        )
        runs = dataclasses.replace(runs, warned_constant=tuple(constant))
    return runs
