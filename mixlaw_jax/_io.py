"""Crash-safe result files: versioned JSON written atomically, read back with a clear error for anything else."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile

from .errors import MixlawError


def atomic_write_json(path, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` so that a crash leaves the old file or none, never a partial one.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed over ``path``
    (a rename within one file system is atomic). An interrupted write removes its temporary file; a killed
    process may leave one behind (named ``.tmp-*.json``), never a partial ``path``. A replaced file keeps
    its permissions; a new one gets rw-r--r--.

    Raises:
      MixlawError: for a non-finite number in ``payload`` (naming where) or a folder that cannot be written.
    """
    path = os.fspath(path)
    where = _non_finite(payload)
    if where is not None:
        raise MixlawError(f"cannot save {path}: non-finite number at {where}")
    atomic_write_bytes(path, json.dumps(payload, indent=1, allow_nan=False).encode("utf-8"))


def output_file(path, inputs=()) -> str:
    """Check that ``path`` may be written as a result file, before any work is done; returns it as a string.

    A result file is a new file or an existing regular file, and never one of the command's ``inputs`` (compared
    as files, so another spelling of the same path, a hard link or a symbolic link to an input is caught too).
    A symbolic link, a folder, a FIFO or a device at ``path`` is refused rather than replaced: the atomic rename
    would put a regular file in its place. A missing parent folder is created when the file is written.

    Raises:
      MixlawError: naming the path and why it cannot be written.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise MixlawError(f"an output path must be a file name, not {type(path).__name__}") from None
    if not path or path.endswith((os.sep, "/")):
        raise MixlawError(f"output path {path!r} is not a file name")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as err:
        raise MixlawError(f"cannot write {path}: {err.strerror or err}") from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise MixlawError(
            f"will not write {path}: it is {file_type(info.st_mode)}, not a regular file; mixlaw writes "
            f"results only to new or regular files"
        )
    for source in inputs:
        if source is not None and _same_file(path, os.fspath(source)):
            raise MixlawError(
                f"will not write {path}: it is an input of this command ({os.fspath(source)}); "
                f"choose another output path"
            )
    return path


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (same inode, or the same path once links are resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def file_type(mode: int) -> str:
    """What a path whose ``st_mode`` is ``mode`` is, in words ("a symbolic link", "a FIFO", ...)."""
    for test, name in (
        (stat.S_ISREG, "a file"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "neither a file nor a folder"


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or none: a temporary file in the same folder,
    flushed to disk, renamed over ``path``, then the folder synced. A replaced file keeps its permissions; a new
    one gets rw-r--r--. Only a new or a regular file is written (``output_file``); folders that cannot be written
    raise MixlawError."""
    path = output_file(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777 if os.path.isfile(path) else 0o644
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    except OSError as err:
        raise MixlawError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise MixlawError(f"cannot write {path}: {err.strerror or err}") from None
        raise
    fsync_folder(folder)


def fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _non_finite(tree, where: str = "the top level") -> str | None:
    """The key path of the first NaN or infinite float in a JSON-like tree, or None."""
    if isinstance(tree, float):
        return None if math.isfinite(tree) else f"{where} ({tree})"
    if isinstance(tree, dict):
        items = ((f"{k}" if where == "the top level" else f"{where}.{k}", v) for k, v in tree.items())
    elif isinstance(tree, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(tree))
    else:
        return None
    for key, value in items:
        found = _non_finite(value, key)
        if found is not None:
            return found
    return None


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def read_json(path, kind: str, schema_version: int) -> dict:
    """Read a result file of the given kind and schema version, with a clear error for anything else.

    Raises:
      MixlawError: for a missing, unreadable, corrupt or truncated file, one holding NaN or infinity,
        or one of another kind or schema version.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f, parse_constant=_reject_constant)
    except FileNotFoundError:
        raise MixlawError(f"no such file: {path}") from None
    except OSError as err:
        raise MixlawError(f"cannot read {path}: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise MixlawError(f"{path} is not a valid result file (corrupt or truncated JSON: {err})") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise MixlawError(f"{path} holds a {found!r} result, not a {kind!r} result")
    if payload.get("schema_version") != schema_version:
        raise MixlawError(
            f"{path} has schema version {payload.get('schema_version')!r}; this version of mixlaw_jax "
            f"reads version {schema_version}"
        )
    return payload
