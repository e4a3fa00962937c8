"""Property-based tests (hypothesis): on random valid and hostile run tables every call returns a finite result
or raises MixlawError, and nothing else."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixlaw_jax as mj
from mixlaw_jax import _io
from mixlaw_jax.data import WEIGHT_SUM_TOL

PROPERTY = settings(
    max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
TINY = mj.Search(64, ((16, 20), (4, 40)))

finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-300, max_value=1e300)
loss = st.floats(min_value=1e-300, max_value=100.0)  # a cross-entropy: > 0, and no higher than any table holds


@st.composite
def valid_frames(draw):
    """A valid table: k in 1..4 weight columns w0.. (each row within WEIGHT_SUM_TOL of the simplex), N, D,
    targets t0 and t1 (finite or missing, each observed at least once), a text column, maybe a repeated
    checkpoint, and row labels that are a range, shuffled integers or text."""
    k = draw(st.integers(1, 4))
    n_rows = draw(st.integers(1, 8))
    h = np.array([draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k)) for _ in range(n_rows)])
    h[h.sum(axis=1) == 0] = 1.0
    h /= h.sum(axis=1, keepdims=True)
    slack = np.array(draw(st.lists(st.floats(-0.9, 0.9), min_size=n_rows, max_size=n_rows)))
    h *= 1.0 + slack[:, None] * WEIGHT_SUM_TOL
    f = pd.DataFrame(h, columns=[f"w{i}" for i in range(k)])
    f["N"] = draw(st.lists(positive, min_size=n_rows, max_size=n_rows))
    f["D"] = draw(st.lists(positive, min_size=n_rows, max_size=n_rows))
    for t in ("t0", "t1"):
        losses = np.array(draw(st.lists(loss | st.just(np.nan), min_size=n_rows, max_size=n_rows)))
        losses[draw(st.integers(0, n_rows - 1))] = draw(loss)
        f[t] = losses
    f["note"] = draw(st.lists(st.text(max_size=5), min_size=n_rows, max_size=n_rows))
    if draw(st.booleans()):
        again = f.iloc[[draw(st.integers(0, n_rows - 1))]].copy()
        again["D"] *= draw(st.sampled_from([1.0, 1.0 + 1e-5]))
        f = pd.concat([f, again], ignore_index=True)
    labels = draw(st.sampled_from(["range", "shuffled", "text"]))
    if labels == "shuffled":
        f.index = draw(st.permutations(range(len(f))))
    elif labels == "text":
        f.index = [f"run-{i}" for i in range(len(f))]
    return f


def load(frame, **kwargs):
    return mj.load_runs(frame, weights="w*", N="N", D="D", targets=["t0", "t1"], **kwargs)


def assert_valid(runs: mj.RunTable, frame: pd.DataFrame, renormalized: bool) -> None:
    """Every array of a loaded table is finite where it must be and consistent with the source rows."""
    assert runs.n_rows == len(runs.frame) and 1 <= runs.n_rows <= len(frame)
    assert np.isfinite(runs.h).all() and (runs.h >= 0).all()
    assert np.abs(runs.h.sum(axis=1) - 1).max() <= (1e-12 if renormalized else WEIGHT_SUM_TOL)
    assert np.isfinite(runs.n).all() and (runs.n > 0).all() and np.isfinite(runs.d).all() and (runs.d > 0).all()
    assert not np.isinf(runs.losses).any() and runs.observed.any(axis=0).all()
    assert sorted(set(runs.run_id.tolist())) == list(range(runs.n_runs))
    assert set(runs.frame.index) <= set(frame.index) and len(runs.hash()) == 64


@pytest.mark.filterwarnings("ignore::mixlaw_jax.errors.MixlawWarning")
@PROPERTY
@given(frame=valid_frames(), duplicates=st.sampled_from(["keep", "merge", "error"]), renormalize=st.booleans())
def test_valid_tables_load_into_finite_arrays(frame, duplicates, renormalize):
    try:
        runs = load(frame, duplicates=duplicates, renormalize=renormalize)
    except mj.MixlawError as err:
        assert duplicates == "error" and "repeat a checkpoint of the same run" in str(err)
        return
    assert_valid(runs, frame, renormalize)
    assert runs.n_rows == len(frame) or duplicates == "merge"
    assert duplicates == "keep" or runs.duplicate_report() == []


def spoil_cell(frame, column, row, value):
    cells = frame[column].tolist()
    cells[row] = value
    return frame.assign(**{column: pd.Series(cells, index=frame.index, dtype=object)})


@st.composite
def hostile_frames(draw):
    """A valid table with one thing spoilt; returns (frame, load_runs options, text the error must contain,
    or None where loading may succeed)."""
    frame = draw(valid_frames())
    row = draw(st.integers(0, len(frame) - 1))
    label = frame.index[row]
    weights = [c for c in frame.columns if c.startswith("w")]
    numeric = st.sampled_from(weights + ["N", "D", "t0", "t1"])
    kind = draw(
        st.sampled_from(
            [
                "text",
                "odd object",
                "missing",
                "infinite",
                "not positive",
                "negative weight",
                "weights off",
                "drop column",
                "empty",
                "target all missing",
                "k",
            ]
        )
    )
    if kind == "text":
        return spoil_cell(frame, draw(numeric), row, draw(st.text(max_size=8))), {}, None
    if kind == "odd object":
        column = draw(numeric)
        value = draw(st.sampled_from([True, b"x", 1 + 2j, [1.0], {"a": 1}, 10**400]))
        return spoil_cell(frame, column, row, value), {}, f"column {column!r}, row {label}: non-numeric value"
    if kind == "missing":
        column = draw(st.sampled_from(weights + ["N", "D"]))
        value = draw(st.sampled_from([np.nan, None]))
        return spoil_cell(frame, column, row, value), {}, f"column {column!r}, row {label}: missing value"
    if kind == "infinite":
        column, sign = draw(numeric), draw(st.sampled_from([1, -1]))
        return (
            spoil_cell(frame, column, row, sign * np.inf),
            {},
            f"column {column!r}, row {label}: value {sign * np.inf} is not finite",
        )
    if kind == "not positive":
        column, value = draw(st.sampled_from(["N", "D"])), draw(st.floats(max_value=0.0, allow_infinity=False))
        return spoil_cell(frame, column, row, value), {}, f"column {column!r}, row {label}: value {value!r} must be > 0"
    if kind == "negative weight":
        column = draw(st.sampled_from(weights))
        value = draw(st.floats(max_value=-1e-300, allow_infinity=False))
        return spoil_cell(frame, column, row, value), {}, f"column {column!r}, row {label}: negative weight"
    if kind == "weights off":
        factor = draw(st.floats(1.0 + 2 * WEIGHT_SUM_TOL, 1e6) | st.floats(1e-6, 1.0 - 2 * WEIGHT_SUM_TOL))
        f = frame.copy()
        f.loc[label, weights] *= factor
        renormalize = draw(st.booleans())
        return f, {"renormalize": renormalize}, None if renormalize else f"row {label}: weights sum to"
    if kind == "drop column":
        column = draw(st.sampled_from(["N", "D", "t0", "t1"]))
        role = {"N": "size", "D": "token"}.get(column, "target")
        return frame.drop(columns=column), {}, f"unknown {role} column {column!r}"
    if kind == "empty":
        return frame.iloc[:0], {}, "the run table is empty"
    if kind == "target all missing":
        return frame.assign(t1=np.nan), {}, "target column 't1' has no values"
    k = len(weights) + draw(st.sampled_from([-1, 1]))
    return frame, {"k": k}, f"resolve to {len(weights)} columns"


@pytest.mark.filterwarnings("ignore::mixlaw_jax.errors.MixlawWarning")
@PROPERTY
@given(case=hostile_frames())
def test_hostile_tables_raise_mixlaw_error_naming_the_fault_or_load_finite_arrays(case):
    frame, options, expected = case
    try:
        runs = load(frame, **options)
    except mj.MixlawError as err:
        assert expected is None or expected in str(err), (str(err), expected)
        return
    assert expected is None, f"loaded although expected {expected!r}"
    assert_valid(runs, frame, options.get("renormalize", False))


ADDITIVE = mj.FitResult(
    law="additive",
    k=3,
    targets=("t0",),
    weight_columns=("w0", "w1", "w2"),
    n_column="N",
    d_column="D",
    weight_range=np.array([[0.0, 1.0]] * 3),
    coordinates=np.array([[1.5, 8.0, 0.3, 9.0, 0.3, 0.1, 0.2, 0.0, 0.5, 0.7, 0.9]]),
    objective=np.zeros(1),
    diagnostics={},
    settings={},
    provenance={},
)


@pytest.mark.filterwarnings("ignore::mixlaw_jax.errors.MixlawWarning")
@PROPERTY
@given(
    h=st.lists(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), min_size=6, max_size=6),
    n=st.lists(positive, min_size=6, max_size=6),
    d=st.lists(positive, min_size=6, max_size=6),
)
def test_predictions_on_valid_tables_are_finite(h, n, d):
    h = np.array(h)
    h[h.sum(axis=1) == 0] = 1.0
    frame = pd.DataFrame(h / h.sum(axis=1, keepdims=True), columns=["w0", "w1", "w2"]).assign(N=n, D=d)
    try:
        pred = ADDITIVE.predict(frame)
    except mj.MixlawError:
        return
    assert pred.shape == (6, 1) and np.isfinite(pred.to_numpy()).all()


def design() -> pd.DataFrame:
    """The 12-row design of test_robustness (3 mixtures x 2 N x 2 D), so the compiled fit is shared."""
    rows = [
        {"weight_a": a, "weight_b": b, "model_size": n, "n_tokens": d}
        for a, b in ((0.2, 0.8), (0.5, 0.5), (0.7, 0.3))
        for n in (1e8, 3e8)
        for d in (2e9, 5e9)
    ]
    return pd.DataFrame(rows)


def all_finite(tree) -> bool:
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return all(all_finite(v) for v in tree)
    return not isinstance(tree, float) or np.isfinite(tree)


@PROPERTY
@given(
    losses=st.lists(st.floats(-1e6, 1e6) | st.floats(2.0, 4.0) | st.just(np.nan), min_size=12, max_size=12),
    seed=st.integers(0, 2**31 - 1),
)
def test_fits_of_any_losses_and_seed_are_finite_or_a_mixlaw_error(losses, seed):
    try:
        runs = mj.load_runs(
            design().assign(x_loss=losses),
            weights="weight_*",
            N="model_size",
            D="n_tokens",
            targets=["x_loss"],
            warn=False,
        )
        result = mj.fit(runs, "chinchilla", search=dataclasses.replace(TINY, seed=seed))
    except mj.MixlawError as err:
        assert any(
            s in str(err)
            for s in (
                "has no values",
                "observed rows, fewer than",
                "runs, fewer than",
                "every start failed",
                "must be > 0 (a cross-entropy)",
            )
        ), err
        return
    assert np.isfinite(result.coordinates).all() and np.isfinite(result.objective).all()
    assert all_finite(result.params) and all_finite({t: d.to_dict() for t, d in result.diagnostics.items()})
    assert np.isfinite(result.predict(runs).to_numpy()).all()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("json")


@PROPERTY
@given(data=json_values)
def test_result_files_round_trip_exactly_or_refuse_non_finite_numbers(folder, data):
    path = folder / "result.json"
    old = {"kind": "fit", "schema_version": 1, "data": "old"}
    _io.atomic_write_json(path, old)
    payload = {"kind": "fit", "schema_version": 1, "data": data}
    try:
        _io.atomic_write_json(path, payload)
    except mj.MixlawError as err:
        assert "non-finite number" in str(err) and not all_finite(data)
        assert _io.read_json(path, "fit", 1) == old
        return
    assert all_finite(data) and _io.read_json(path, "fit", 1) == payload
    assert sorted(p.name for p in folder.iterdir()) == ["result.json"]
