"""Module boundaries: no file reaches into another module's private names (issue 21).

Every ``.py`` file under mixlaw_jax/, benchmarks/, tests/ and notebooks/ is parsed with :mod:`ast` (nothing is
imported or run) and checked for three ways of using a private name (a leading underscore, not a dunder) of another
module:

(a) ``from X import _name`` (relative or absolute). A private *module* imported as a module is allowed: ``from . import
    _io`` (the package's crash-safe result-file module, whose functions are public names), ``from mixlaw_jax import
    _io``; so is ``from X import name`` where X is a private module, such as ``from ._base import Law`` in
    mixlaw_jax/laws/ (the names imported are public).
(b) ``monkeypatch.setattr(<module>, "_name", ...)`` or ``monkeypatch.setattr("pkg.mod._name", ...)`` (and
    ``delattr``, and the builtins ``setattr`` / ``delattr``) on a mixlaw_jax module;
(c) ``<module alias>._name`` or ``getattr(<module alias>, "_name")`` where the alias is a mixlaw_jax module (such as
    ``multistart._score`` after ``from mixlaw_jax.engine import multistart``).

What another module needs is given a public name instead. Each failure lists every offending file:line.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ("mixlaw_jax", "benchmarks", "tests", "notebooks")
PACKAGE = "mixlaw_jax"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def source_files() -> list[Path]:
    return sorted(p for tree in TREES for p in (ROOT / tree).rglob("*.py") if ".ipynb_checkpoints" not in p.parts)


def module_name(path: Path) -> str:
    """Dotted name of a file: mixlaw_jax/engine/space.py -> mixlaw_jax.engine.space (a package's __init__.py is the
    package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_local_module(dotted: str, here: Path) -> bool | None:
    """Whether ``dotted`` names a module or package of this repository (from its root, or from the folder of the file
    ``here``, as pytest and scripts put it on the path); None when its first part is not a name of the repository."""
    bases = (ROOT, here.parent)
    for base in bases:
        path = base.joinpath(*dotted.split("."))
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    top = dotted.split(".")[0]
    if any((base / top).is_dir() or (base / f"{top}.py").is_file() for base in bases):
        return False
    return None


@functools.cache
def is_module(dotted: str, here: Path) -> bool:
    """Whether ``dotted`` is a module: of this repository by its files, otherwise by the import system."""
    local = is_local_module(dotted, here)
    if local is not None:
        return local
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def absolute(node: ast.ImportFrom, path: Path) -> str:
    """The module an ``ImportFrom`` reads from, as an absolute dotted name."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class FileModules:
    """The names a file binds to modules of this repository (``import mixlaw_jax as mj``, ``from mixlaw_jax.engine
    import multistart``, ``from . import grouped`` ...), wherever in the file the import is."""

    def __init__(self, tree: ast.AST, path: Path):
        self.path = path
        self.aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        self.aliases[root] = root
            elif isinstance(node, ast.ImportFrom):
                base = absolute(node, path)
                for alias in node.names:
                    dotted = f"{base}.{alias.name}" if base else alias.name
                    if alias.name != "*" and is_local_module(dotted, path):
                        self.aliases[alias.asname or alias.name] = dotted

    def dotted(self, node: ast.AST) -> str | None:
        """The module a Name / Attribute chain denotes (``mj.engine.multistart``), or None when it is not one."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            parent = self.dotted(node.value)
            if parent is not None and is_local_module(f"{parent}.{node.attr}", self.path):
                return f"{parent}.{node.attr}"
        return None

    def package_module(self, node: ast.AST) -> str | None:
        """Like :meth:`dotted`, for modules of the mixlaw_jax package only."""
        found = self.dotted(node)
        return found if found is not None and (found == PACKAGE or found.startswith(PACKAGE + ".")) else None


def parsed() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p))) for p in source_files()]


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def private_imports(files) -> list[str]:
    """(a) ``from X import _name`` where ``X._name`` is not a module."""
    found = []
    for path, tree in files:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = absolute(node, path)
                for alias in node.names:
                    if is_private(alias.name) and not is_module(f"{base}.{alias.name}" if base else alias.name, path):
                        found.append(
                            f"{where(path, node)}: from {'.' * node.level}{node.module or ''} import {alias.name}"
                        )
    return found


def private_patches(files) -> list[str]:
    """(b) setattr / delattr of a private name of a mixlaw_jax module, by object and name or by dotted string."""
    found = []
    for path, tree in files:
        modules = FileModules(tree, path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name not in ("setattr", "delattr"):
                continue
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str) and "." in target.value:
                owner, _, attribute = target.value.rpartition(".")
                if owner.split(".")[0] == PACKAGE and is_private(attribute):
                    found.append(f"{where(path, node)}: {name}({target.value!r}, ...)")
            elif len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                module = modules.package_module(target)
                if module is not None and is_private(node.args[1].value):
                    found.append(f"{where(path, node)}: {name}({module}, {node.args[1].value!r}, ...)")
    return found


def private_attributes(files) -> list[str]:
    """(c) ``<mixlaw_jax module>._name`` and ``getattr(<mixlaw_jax module>, "_name")``."""
    found = []
    for path, tree in files:
        modules = FileModules(tree, path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and is_private(node.attr):
                module = modules.package_module(node.value)
                if module is not None:
                    found.append(f"{where(path, node)}: {module}.{node.attr}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and is_private(node.args[1].value)
            ):
                module = modules.package_module(node.args[0])
                if module is not None:
                    found.append(f"{where(path, node)}: {node.func.id}({module}, {node.args[1].value!r})")
    return found


@pytest.fixture(scope="module")
def files():
    return parsed()


def report(found: list[str], what: str) -> str:
    return f"{len(found)} {what}:\n" + "\n".join(sorted(set(found), key=_line_order))


def _line_order(entry: str):
    location = entry.split(": ", 1)[0]
    name, _, line = location.rpartition(":")
    return name, int(line)


def test_no_private_name_is_imported_from_another_module(files):
    found = private_imports(files)
    assert not found, report(found, "imports of another module's private names (give the name a public one)")


def test_no_test_patches_a_private_name_of_a_module(files):
    found = private_patches(files)
    assert not found, report(found, "patches of a module's private names (patch a public seam instead)")


def test_no_private_name_is_read_through_a_module_alias(files):
    found = private_attributes(files)
    assert not found, report(found, "uses of a mixlaw_jax module's private names through the module")


def test_the_checks_find_what_they_look_for(tmp_path):
    """Each check on a small file: the forms it must find, and the allowed forms it must leave alone."""
    source = """
from mixlaw_jax.mixture import _target_losses, project
from mixlaw_jax import _io
from mixlaw_jax._io import atomic_write_json
from mixlaw_jax.engine import multistart
import mixlaw_jax as mj
import mixlaw_jax.engine.grouped as grouped

def test(monkeypatch):
    monkeypatch.setattr(multistart, "_score_chunk", None)
    monkeypatch.setattr("mixlaw_jax.engine.multistart._cpu_pool", None)
    monkeypatch.setattr(multistart, "solve", None)
    monkeypatch.setattr(_io.os, "replace", None)
    multistart._score(1)
    mj.engine.multistart._model(2)
    getattr(grouped, "_private")
    _io.atomic_write_json
    value._replace(a=1)
"""
    path = ROOT / "tests" / "_boundaries_probe.py"  # never written: parsed as if it were there
    tree = ast.parse(source)
    files = [(path, tree)]
    assert [e.split(": ", 1)[1] for e in private_imports(files)] == ["from mixlaw_jax.mixture import _target_losses"]
    assert [e.split(": ", 1)[1] for e in private_patches(files)] == [
        "setattr(mixlaw_jax.engine.multistart, '_score_chunk', ...)",
        "setattr('mixlaw_jax.engine.multistart._cpu_pool', ...)",
    ]
    assert sorted(e.split(": ", 1)[1] for e in private_attributes(files)) == [
        "getattr(mixlaw_jax.engine.grouped, '_private')",
        "mixlaw_jax.engine.multistart._model",
        "mixlaw_jax.engine.multistart._score",
    ]
