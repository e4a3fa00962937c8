"""Crash-safe result files: versioned JSON written atomically."""
from __future__ import annotations

import json
import os
import tempfile

from .errors import MixlawError


def atomic_write_json(path, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` so that a crash leaves the old file or none, never a partial one.

    The text goes to a temporary file in the same folder, is flushed to disk, then renamed over ``path``.
    """
    path = os.fspath(path)
    text = json.dumps(payload, indent=1, allow_nan=False)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path, kind: str, schema_version: int) -> dict:
    """Read a result file of the given kind and schema version, with a clear error for anything else."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            payload = json.load(f)
    except FileNotFoundError:
        raise MixlawError(f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MixlawError(f"{path} is not a valid result file (corrupt or truncated JSON: {err})") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise MixlawError(f"{path} holds a {found!r} result, not a {kind!r} result")
    if payload.get("schema_version") != schema_version:
        raise MixlawError(f"{path} has schema version {payload.get('schema_version')!r}; this version of mixlaw_jax "
                          f"reads version {schema_version}")
    return payload
