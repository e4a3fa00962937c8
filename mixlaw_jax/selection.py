"""Row selection (``RunTable.query``, ``--where``, ``--holdout``) without running code from the expression.

``DataFrame.eval`` executes arbitrary Python (``@os.system(...)``); here the expression is parsed with :mod:`ast` and
only this grammar is evaluated, with numpy over the frame's columns::

    selection  := selection ("or" | "|") selection | selection ("and" | "&") selection
                | ("not" | "~") selection | "(" selection ")" | comparison
    comparison := operand (cmp operand)+ | column ["not"] "in" ("[" | "(") [literal {"," literal}] ("]" | ")")
    cmp        := "<" | "<=" | ">" | ">=" | "==" | "!="
    operand    := column | literal
    column     := identifier | "`" any column name "`"
    literal    := ["-" | "+"] number | string | True | False

As in pandas, ``&`` and ``|`` bind like ``and`` and ``or`` (``a > 1 & b < 2`` needs no parentheses); ``~`` is ``not``
(``~a > 1`` means ``not a > 1``). Each comparison involves a column; numbers compare with numeric columns and strings
with text columns. A comparison on a missing cell (NaN, None) is False, including ``!=`` and ``not in``.
"""

import ast
import difflib
import operator
import re
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

from .errors import MixlawError

MAX_LENGTH = 2000
GRAMMAR = (
    "a selection compares columns with numbers or strings (<, <=, >, >=, ==, !=, in [...]), "
    "joined by and / or / not (or &, |, ~) and parentheses"
)
_STRING = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_TOKENS = re.compile(rf"({_STRING})|`([^`]*)`|([&|~\r\n])", re.DOTALL)
_CMP = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitXor: "^",
}
_FORBIDDEN = {
    ast.Call: "function calls",
    ast.Attribute: "attributes (a.b)",
    ast.Subscript: "subscripts (a[...])",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "assignments (:=)",
    ast.JoinedStr: "f-strings",
    ast.IfExp: "conditional expressions",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Starred: "starred expressions",
}
_NO = np.False_  # a literal's "missing" flag


class _Operand(NamedTuple):
    kind: str  # "number" or "text"
    values: object  # (rows,) array for a column, a scalar for a literal
    missing: object  # (rows,) bool array for a column, numpy False for a literal
    label: str
    is_column: bool


def select_rows(frame: pd.DataFrame, expr: str, *, what: str = "row selection") -> np.ndarray:
    """(rows,) bool mask of the rows of `frame` where `expr` holds; any bad expression is a MixlawError."""
    return _Selection(frame, expr, what).run()


class _Selection:
    def __init__(self, frame: pd.DataFrame, expr, what: str):
        self.frame, self.expr, self.what, self.names = frame, expr, what, {}

    def fail(self, reason: str, grammar: bool = True):
        quoted = repr(self.expr if len(self.expr) <= 200 else self.expr[:200] + "...")
        raise MixlawError(f"{self.what} {quoted}: {reason}" + (f"; {GRAMMAR}" if grammar else ""))

    def run(self) -> np.ndarray:
        if not isinstance(self.expr, str):
            raise MixlawError(f"{self.what} must be a string, not {type(self.expr).__name__}")
        if not self.expr.strip():
            self.fail("is empty")
        if len(self.expr) > MAX_LENGTH:
            self.fail(f"is {len(self.expr)} characters long; the limit is {MAX_LENGTH}", grammar=False)
        prefix = "_bt"
        while prefix in self.expr:
            prefix += "_"

        def rewrite(match: re.Match) -> str:  # keep strings, name backtick columns, & | ~ -> and or not, join lines
            if match.group(1) is not None:
                return match.group(1)
            if match.group(2) is not None:
                placeholder = f"{prefix}{len(self.names)}"
                self.names[placeholder] = match.group(2)
                return f" {placeholder} "
            return {"&": " and ", "|": " or ", "~": " not "}.get(match.group(3), " ")

        code = _TOKENS.sub(rewrite, self.expr)
        try:
            with warnings.catch_warnings():  # e.g. SyntaxWarning for "\d" in a string
                warnings.simplefilter("ignore")
                tree = ast.parse(code.strip(), mode="eval")
        except (SyntaxError, ValueError) as err:
            bare = re.sub(_STRING, '""', code, flags=re.DOTALL)
            if re.search(r"(?<![=!<>])=(?!=)", bare):
                self.fail("use == to compare, not =")
            if "@" in bare:
                self.fail("'@' (pandas local variables) is not allowed")
            reason = err.msg if isinstance(err, SyntaxError) else str(err)
            raise MixlawError(f"cannot parse {self.what} {self.expr!r}: {reason}; {GRAMMAR}") from None
        except (RecursionError, MemoryError):
            self.fail("is nested too deeply")
        try:
            return self.mask(tree.body)
        except (RecursionError, MemoryError):
            self.fail("is nested too deeply")

    def mask(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.BoolOp):
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            return combine.reduce([self.mask(value) for value in node.values])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.mask(node.operand)
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            result = np.ones(len(self.frame), dtype=bool)
            for left, op, right in zip(operands, node.ops, operands[1:]):
                result &= self.compare(left, op, right)
            return result
        operand = self.operand(node)  # a column or a literal on its own: rejects anything else on the way
        if isinstance(node, ast.Name):
            name = self.names.get(node.id, node.id)
            shown = f"`{name}`" if node.id in self.names else name
            self.fail(f"selects by a comparison, not a bare column {name!r} (write e.g. {shown} > 0)")
        self.fail(f"selects by a comparison, not a bare value ({operand.label})")

    def compare(self, left_node: ast.AST, op: ast.cmpop, right_node: ast.AST) -> np.ndarray:
        left = self.operand(left_node)
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right_node, (ast.List, ast.Tuple)):
                self.fail("'in' needs a list or tuple of literals on its right, e.g. domain in ['c4', 'books']")
            if not left.is_column:
                self.fail(f"'in' needs a column on its left, not {left.label}")
            hits = np.zeros(len(self.frame), dtype=bool)
            for element in right_node.elts:
                value = self.operand(element)
                if value.is_column:
                    self.fail(f"the list after 'in' holds only literals, not {value.label}")
                hits |= self.check(left, operator.eq, value)
            return hits if isinstance(op, ast.In) else ~hits & ~left.missing
        if type(op) not in _CMP:
            self.fail(f"'{'is' if isinstance(op, ast.Is) else 'is not'}' is not allowed (use == or !=)")
        return self.check(left, _CMP[type(op)], self.operand(right_node))

    def check(self, left: _Operand, op, right: _Operand) -> np.ndarray:
        if not (left.is_column or right.is_column):
            self.fail(f"compares {left.label} with {right.label}; a comparison needs a column")
        if left.kind != right.kind:
            column, other = (left, right) if left.is_column else (right, left)
            self.fail(
                f"{column.label} holds {column.kind} values and cannot be compared with {other.label}", grammar=False
            )
        with np.errstate(invalid="ignore"):
            result = np.asarray(op(left.values, right.values), dtype=bool)
        return np.broadcast_to(result, (len(self.frame),)) & ~left.missing & ~right.missing

    def operand(self, node: ast.AST) -> _Operand:
        if isinstance(node, ast.Name):
            return self.column(self.names.get(node.id, node.id))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.operand(node.operand)
            if value.is_column or value.kind != "number":
                self.fail(f"a sign (-, +) applies only to a number, not {value.label}")
            number = -value.values if isinstance(node.op, ast.USub) else value.values
            return value._replace(values=number, label=f"the number {ast.unparse(node)}")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return _Operand("text", node.value, _NO, f"the string {node.value!r}", False)
            if isinstance(node.value, (bool, int, float)):
                kind = "value" if isinstance(node.value, bool) else "number"
                try:
                    return _Operand("number", float(node.value), _NO, f"the {kind} {node.value!r}", False)
                except OverflowError:
                    self.fail(f"the number {str(node.value)[:20]}... is too large")
            self.fail(f"the literal {node.value!r} is not allowed")
        if isinstance(node, ast.BinOp):
            self.fail(f"arithmetic ({_ARITHMETIC[type(node.op)]!r}) is not allowed")  # & and | became and / or
        if isinstance(node, (ast.List, ast.Tuple)):
            self.fail("a list or tuple is allowed only after 'in' / 'not in'")
        if isinstance(node, (ast.Compare, ast.BoolOp, ast.UnaryOp)):
            self.fail("a comparison's result cannot itself be compared")
        self.fail(f"{_FORBIDDEN.get(type(node), type(node).__name__ + ' expressions')} are not allowed")

    def column(self, name: str) -> _Operand:
        columns = [str(c) for c in self.frame.columns]
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"columns are: {', '.join(columns)}"
            self.fail(f"unknown column {name!r}; {hint}", grammar=False)
        if columns.count(name) > 1:
            self.fail(f"column {name!r} appears {columns.count(name)} times in the table", grammar=False)
        series = self.frame.iloc[:, columns.index(name)]
        missing = series.isna().to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_complex_dtype(series.dtype):
            return _Operand("number", series.to_numpy(dtype=float, na_value=np.nan), missing, f"column {name!r}", True)
        if pd.api.types.infer_dtype(series.astype(object), skipna=True) in ("string", "empty"):
            text = series.astype(object).to_numpy(dtype=object, na_value="")
            return _Operand("text", text, missing, f"column {name!r}", True)
        self.fail(f"column {name!r} holds {series.dtype} values, which a selection cannot compare", grammar=False)
