"""Row selection by a safe comparison language (mixlaw_jax.selection): no code runs, the masks match numpy."""

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaw_jax.errors import MixlawError
from mixlaw_jax.selection import select_rows


@pytest.fixture
def runs():
    return pd.DataFrame(
        {
            "model_size": [1.22e8, 3.5e8, 1.3e9, np.nan, 2.7e9, 7e9],
            "n_tokens": [1_000, 2_000, 3_000, 4_000, 5_000, 6_000],
            "domain": ["c4", "books", None, "c4", "wiki", "arxiv"],
            "model size": [1, 2, 3, 4, 5, 6],
            "delta": [-2.5, -1.0, 0.0, 1.0, 2.5, np.nan],
        }
    )


@pytest.mark.parametrize(
    "attack",
    [
        'model_size>0 and @os.system("touch {marker}")==0',
        "model_size>0 and __import__('os').system('touch {marker}')==0",
        "__import__('os').system('touch {marker}')",
        "model_size.__class__.__init__.__globals__['os'].system('touch {marker}') == 0",
        "[__import__('os').system('touch {marker}') for x in (1,)] == 0",
        "(lambda: __import__('os').system('touch {marker}'))() == 0",
        "model_size > 0 & `x`.system('touch {marker}') == 0",
        "model_size > f\"{{__import__('os').system('touch {marker}')}}\"",
    ],
)
def test_code_execution_attempts_are_rejected_and_run_nothing(runs, tmp_path, monkeypatch, attack):
    marker = tmp_path / "MARKER"
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("os.system was called"))
    with pytest.raises(MixlawError, match="not allowed") as err:
        select_rows(runs, attack.format(marker=marker))
    assert "a selection compares columns" in str(err.value)
    assert not marker.exists()


def test_forbidden_constructs_are_named(runs):
    cases = {
        "model_size.real > 1": "attributes",
        "[x for x in ()]": "comprehensions",
        "lambda: 1": "lambdas",
        "n_tokens[0] > 1": "subscripts",
        "abs(n_tokens) > 1": "function calls",
        "(n := 1) > 0": r"\(:=\)",
        "model_size * 2 > 1": r"arithmetic \('\*'\)",
        "n_tokens > 1 + 1": r"arithmetic \('\+'\)",
        "model_size is None": "'is' is not allowed",
        "n_tokens > None": "literal None",
    }
    for expr, reason in cases.items():
        with pytest.raises(MixlawError, match=reason):
            select_rows(runs, expr)


def test_masks_match_numpy(runs):
    n, t, d = runs["model_size"].to_numpy(), runs["n_tokens"].to_numpy(), runs["domain"].to_numpy()
    sp, delta = runs["model size"].to_numpy(), runs["delta"].to_numpy()
    with np.errstate(invalid="ignore"):
        expected = {
            "model_size <= 1.3e9": n <= 1.3e9,
            "model_size > 122000000": n > 122_000_000,
            "1e8 < model_size <= 1.3e9": (1e8 < n) & (n <= 1.3e9),
            "3000 >= n_tokens": t <= 3000,
            "n_tokens != 2000": t != 2000,
            "model_size > 1e9 and n_tokens < 6000": (n > 1e9) & (t < 6000),
            "n_tokens < 2000 or n_tokens > 5000 or n_tokens == 3000": (t < 2000) | (t > 5000) | (t == 3000),
            "not n_tokens > 2000": ~(t > 2000),
            "model_size > 1e9 & n_tokens < 6000": (n > 1e9) & (t < 6000),
            "(n_tokens < 2000) | (n_tokens > 5000)": (t < 2000) | (t > 5000),
            "~(n_tokens > 2000) | domain == 'wiki'": ~(t > 2000) | (d == "wiki"),
            "n_tokens in [1000, 3000, 9000]": np.isin(t, [1000, 3000, 9000]),
            "n_tokens not in (1000, 3000)": ~np.isin(t, [1000, 3000]),
            "domain == 'c4'": d == "c4",
            'domain in ["c4", "wiki"]': (d == "c4") | (d == "wiki"),
            "domain >= 'c'": np.array([isinstance(x, str) and x >= "c" for x in d]),
            "`model size` > 3": sp > 3,
            "`model size` >= 2 and `model size` < 5": (sp >= 2) & (sp < 5),
            "delta < -1": delta < -1,
            "delta >= -2.5 and delta < +1": (delta >= -2.5) & (delta < 1),
            "n_tokens > 2.5e3": t > 2.5e3,
            "model_size < 1E9": n < 1e9,
            "model_size > n_tokens": n > t,
            "n_tokens > 2000 and\n  domain != 'books'": (t > 2000) & (d != "books") & pd.notna(d),
        }
    for expr, mask in expected.items():
        got = select_rows(runs, expr)
        assert got.dtype == bool and got.shape == (len(runs),), expr
        np.testing.assert_array_equal(got, mask, err_msg=expr)


def test_missing_cells_compare_false(runs):
    nan_row, none_row = 3, 2  # model_size is NaN in row 3, domain is None in row 2
    for expr in [
        "model_size > 0",
        "model_size <= 1e12",
        "model_size != 5",
        "model_size == model_size",
        "model_size in [1.22e8, 3.5e8]",
        "model_size not in [1.0]",
    ]:
        assert not select_rows(runs, expr)[nan_row], expr
    for expr in ["domain != 'c4'", "domain < 'zzz'", "domain not in ['c4']", "domain == ''"]:
        assert not select_rows(runs, expr)[none_row], expr
    assert select_rows(runs, "not model_size > 0")[nan_row]


def test_frame_index_and_string_dtypes_do_not_matter(runs):
    shuffled = runs.set_axis([10, 3, 7, 1, 0, 99])
    np.testing.assert_array_equal(select_rows(shuffled, "n_tokens > 3000"), runs["n_tokens"].to_numpy() > 3000)
    typed = runs.astype({"domain": "string"}).assign(kind=pd.Categorical(["a", "b", "a", "b", "a", "b"]))
    np.testing.assert_array_equal(
        select_rows(typed, "domain == 'c4' or kind == 'b'"), [True, True, False, True, False, True]
    )


@pytest.mark.parametrize(
    "expr, match",
    [
        ("n_tokens", "not a bare column 'n_tokens'"),
        ("n_tokens and model_size > 1", "not a bare column 'n_tokens'"),
        ("1", "not a bare value"),
        ("True", "not a bare value"),
        ("1 < 2", "needs a column"),
        ("model_size = 122000000", "=="),
        ("model_size > 1 and n_tokens = 5", "=="),
        ("", "empty"),
        ("   ", "empty"),
        ("model_size >", "cannot parse row selection"),
        ("model_sise > 1", "did you mean 'model_size'"),
        ("zzz > 1", "columns are: model_size, n_tokens"),
        ("model_size > '1e9'", "column 'model_size' holds number values .* the string '1e9'"),
        ("domain == 3", "column 'domain' holds text values .* the number 3"),
        ("domain in ['c4', 3]", "the number 3"),
        ("'c4' in domain", "'in' needs a list"),
        ("n_tokens in [model_size]", "only literals"),
        ("(n_tokens > 1) == True", "cannot itself be compared"),
        ("-model_size < 0", "applies only to a number"),
        ("n_tokens > " + "9" * 400, "too large"),
        ("n_tokens > 1 and " * 150 + "n_tokens > 1", "limit is 2000"),
    ],
)
def test_bad_selections_raise_mixlaw_error(runs, expr, match):
    with pytest.raises(MixlawError, match=match) as err:
        select_rows(runs, expr)
    if expr.strip() and len(expr) < 200:
        assert repr(expr) in str(err.value)


def test_non_string_expression_and_custom_wording(runs):
    with pytest.raises(MixlawError, match="must be a string"):
        select_rows(runs, None)
    with pytest.raises(MixlawError, match="^held-out selection 'n_tokens':"):
        select_rows(runs, "n_tokens", what="held-out selection")


@pytest.mark.parametrize(
    "expr, negated",
    [
        ("not " * 491 + "n_tokens > 2000", True),
        ("(" * 900 + "n_tokens > 2000" + ")" * 900, False),
        ("~" * 1980 + "n_tokens > 2000", False),
        ("-" * 1980 + "2000 < n_tokens", False),
    ],
)
def test_nesting_within_the_length_limit_selects_or_raises_mixlaw_error(runs, expr, negated):
    try:
        mask = select_rows(runs, expr)
    except MixlawError:
        return
    expected = runs["n_tokens"].to_numpy() > 2000
    np.testing.assert_array_equal(mask, ~expected if negated else expected)


def test_ten_thousand_deep_nesting_is_a_mixlaw_error(runs):
    for expr in ["not " * 10_000 + "n_tokens > 1", "(" * 10_000 + "n_tokens > 1" + ")" * 10_000]:
        with pytest.raises(MixlawError):
            select_rows(runs, expr)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
    | st.lists(
        st.sampled_from(
            [
                "model_size",
                "n_tokens",
                "domain",
                "`model size`",
                " and ",
                " or ",
                "not ",
                "~",
                "&",
                "|",
                "(",
                ")",
                "<",
                "<=",
                "==",
                "!=",
                "=",
                " in ",
                "[",
                "]",
                ",",
                "1e9",
                "-3",
                "'c4'",
                "@",
                ".",
                "*",
                "True",
                " ",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_any_string_gives_a_mask_or_mixlaw_error(expr):
    frame = pd.DataFrame(
        {"model_size": [1e8, np.nan, 1e10], "n_tokens": [1, 2, 3], "domain": ["c4", None, "x"], "model size": [1, 2, 3]}
    )
    try:
        mask = select_rows(frame, expr)
    except MixlawError:
        return
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (3,)
