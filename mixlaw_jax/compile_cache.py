"""The on-disk compilation cache: XLA programs kept between processes (JAX's persistent compilation cache).

A fit's first call in a process spends most of its time compiling (benchmarks/NOTES.md); a program depends only on
shapes and settings, never on the data values, so a later process that meets the same shapes can load it instead.
The fitting path (``engine.solve``, the mixture solver; through :func:`before_solve`) and the ``mixlaw`` command
switch the cache on with :func:`ensure_compilation_cache`, once per process, on first use; ``import mixlaw_jax``
leaves JAX's configuration alone.

The folder is ``$MIXLAW_COMPILE_CACHE`` (an absolute path), else ``$XDG_CACHE_HOME/mixlaw_jax/xla``, else
``~/.cache/mixlaw_jax/xla``: always in the user's cache folder, never in the working directory or the package.
``MIXLAW_COMPILE_CACHE=off`` turns it off; a relative path, or one inside the package, is refused with a warning
(and the cache stays off); a cache folder already set for JAX (``jax_compilation_cache_dir``,
``JAX_COMPILATION_CACHE_DIR``) is left as it is.

Several processes may share the folder. JAX (0.10, ``jax._src.lru_cache.LRUCache``) keys each entry by a hash of the
program, the compile options, the JAX version and the platform, so a stale entry is never used; it writes an entry in
place (``Path.write_bytes``, no temporary file: not atomic) and without a lock unless a size limit is set, so a
process may read an entry another is still writing. Such a truncated entry fails to decompress (zlib, or zstandard
where installed, detects a stream cut short); JAX then warns ("Error reading persistent compilation cache entry") and
compiles the program afresh, so a race costs one compilation, never a wrong program. An entry left cut short (e.g.
by a process killed while writing it) is never rewritten (JAX skips a key whose file exists): every later process
warns and compiles that program again, until the file, or the folder, is deleted.

The programs compiled in a process stay in memory: each XLA CPU program holds about 12 memory mappings, and Linux
allows a process ``vm.max_map_count`` of them (65,530 by default), so a long loop of fits on tables of many shapes
(some 5,000 programs: the design benchmark's campaigns) dies in LLVM with "Cannot allocate memory" and a
segmentation fault. :func:`before_solve` also calls :func:`release_programs_near_map_limit`, which clears JAX's
in-process program caches (``jax.clear_caches``; the next calls compile again) once the process holds
``MAP_LIMIT_SHARE`` of the limit.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .errors import warn_user

#: Environment variable naming the cache folder, or ``off``.
VARIABLE = "MIXLAW_COMPILE_CACHE"
#: Programs that took at least this long to compile are kept. 0: every program (JAX's default, 1 s, misses most of a
#: fit's programs; 0.2 s left ~27 small ones of a Chinchilla fit, 0.6 s of compilation, to every new process).
MIN_COMPILE_SECONDS = 0.0
#: The package's own folder, where the cache is never written.
PACKAGE = Path(__file__).resolve().parent

_lock = threading.Lock()
_checked = False


def default_folder() -> Path | None:
    """``$XDG_CACHE_HOME/mixlaw_jax/xla`` (an absolute ``XDG_CACHE_HOME`` only, as the XDG spec asks), else
    ``~/.cache/mixlaw_jax/xla``; None when the home folder is unknown (``~`` does not expand to an absolute path)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        base = Path(xdg)
    else:
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = Path(home) / ".cache"
    return base / "mixlaw_jax" / "xla"


def cache_folder() -> Path | None:
    """The folder the cache should use by ``$MIXLAW_COMPILE_CACHE`` and the defaults (module docstring), or None for
    no cache (off, or a folder refused with a :class:`MixlawWarning`). JAX's configuration is not read."""
    setting = os.environ.get(VARIABLE, "").strip()
    if setting.lower() == "off":
        return None
    if not setting:
        folder = default_folder()
        if folder is None:
            warn_user(f"compilation cache off: the home folder is unknown; set {VARIABLE} to an absolute folder")
        return folder
    folder = Path(os.path.expanduser(setting))
    if not folder.is_absolute():
        warn_user(
            f"compilation cache off: {VARIABLE}={setting!r} is not an absolute path (the cache is never written in the "
            f"working directory); give an absolute folder, or 'off'"
        )
        return None
    resolved = folder.resolve()
    if resolved == PACKAGE or PACKAGE in resolved.parents:
        warn_user(
            f"compilation cache off: {VARIABLE}={setting!r} is inside the mixlaw_jax package ({PACKAGE}); give a "
            f"folder outside it, or 'off'"
        )
        return None
    return folder


def use_compilation_cache() -> str | None:
    """Switch JAX's persistent compilation cache on in :func:`cache_folder`, keeping programs that took at least
    ``MIN_COMPILE_SECONDS`` to compile. A cache folder already set for JAX is left as it is (and returned); so is
    JAX's configuration when the cache is off. Returns the folder in use, or None."""
    import jax

    if os.environ.get(VARIABLE, "").strip().lower() == "off":
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = cache_folder()
    if folder is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return str(folder)


def ensure_compilation_cache() -> None:
    """:func:`use_compilation_cache` the first time it is called in a process; nothing after that (so that a
    setting changed later in the process, or by the user's own ``jax.config.update``, is left alone)."""
    global _checked
    if _checked:
        return
    with _lock:
        if not _checked:
            _checked = True
            use_compilation_cache()


#: Compiled programs are released when the process holds this share of its memory-map limit (vm.max_map_count).
MAP_LIMIT_SHARE = 0.75
#: The fitting path looks at the process's memory mappings at most this often (reading them takes 1-15 ms).
MAP_CHECK_SECONDS = 1.0
_next_map_check = 0.0


def map_limit() -> int | None:
    """The kernel's limit on one process's memory mappings (``vm.max_map_count``); None where it cannot be read."""
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return None


def mapped_regions() -> int | None:
    """The memory mappings this process holds now (lines of ``/proc/self/maps``); None where it cannot be read."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return maps.read().count(b"\n")
    except OSError:
        return None


def release_programs_near_map_limit(limit: int | None = None) -> bool:
    """Clear JAX's in-process compiled programs (``jax.clear_caches``) when this process holds at least
    ``MAP_LIMIT_SHARE`` x ``limit`` memory mappings (module docstring); returns whether it did.

    ``limit``: the number of mappings allowed, by default :func:`map_limit`; with the default the mappings are
    looked at no more than once every ``MAP_CHECK_SECONDS`` (the fitting path calls this before every solve). Where
    /proc cannot be read (not Linux) it does nothing.
    """
    global _next_map_check
    if limit is None:
        now = time.monotonic()
        if now < _next_map_check:
            return False
        _next_map_check = now + MAP_CHECK_SECONDS
        limit = map_limit()
    regions = mapped_regions()
    if limit is None or regions is None or regions < MAP_LIMIT_SHARE * limit:
        return False
    import jax

    jax.clear_caches()
    return True


def before_solve() -> None:
    """What the fitting path (``engine.multistart.solve``, the mixture solver) does before it runs its programs:
    :func:`ensure_compilation_cache`, then :func:`release_programs_near_map_limit`."""
    ensure_compilation_cache()
    release_programs_near_map_limit()


__all__ = [
    "before_solve",
    "cache_folder",
    "default_folder",
    "ensure_compilation_cache",
    "map_limit",
    "mapped_regions",
    "release_programs_near_map_limit",
    "use_compilation_cache",
]
