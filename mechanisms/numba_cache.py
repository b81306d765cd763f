"""Numba's on-disk cache of the compiled kernels, keyed by the kernels' source.

Numba decides whether a cached kernel is stale from the file that defines it only. Our
kernels inline helpers from other modules (``market.core.eligibility.eligible`` inside the
candidate kernel and the oracle's scan, ``mechanisms.kernels.posted_price`` inside the
candidate kernel), so after an edit of a helper's module a cache that numba still thinks
fresh would run the old helper: measured, a changed eligibility mask layout halved a
GPU market's allocations without an error. The cache therefore lives in a folder named
after a hash of the source of every module that defines or inlines kernels (the
``mechanisms`` and ``market.core`` packages): any change there starts a new cache.

The folder is ``$NUMBA_CACHE_DIR/kernels-<hash>`` when ``NUMBA_CACHE_DIR`` is set (the
Makefile sets ``.numba_cache``), else ``$XDG_CACHE_HOME/market-alloc/numba/kernels-<hash>``
(``~/.cache/...``). Every module that compiles kernels imports this module before its
first ``@numba.njit(cache=True)``, which reads ``numba.config.CACHE_DIR`` when it decorates.
"""

from __future__ import annotations

import hashlib
import os
import types
from collections.abc import Callable
from pathlib import Path

import numba

#: the packages whose modules define or inline cached kernels
_SOURCES = (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "market" / "core")


def source_hash() -> str:
    """The first 16 hex digits of the sha256 over the kernels' packages' ``.py`` files (names and content)."""
    h = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted(folder.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """Where this version of the kernels is cached (see the module docstring)."""
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        root = Path(base)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "market-alloc" / "numba"
    return root / f"kernels-{source_hash()}"


numba.config.CACHE_DIR = str(cache_dir())


def compiled_twice(kernel: Callable) -> tuple[Callable, Callable]:
    """``(parallel, serial)``: the same kernel source compiled with and without numba's threads.

    For kernels whose threads pay off only on big inputs (a parallel launch costs more than
    it saves on small ones). The serial build is of a renamed copy, ``<name>_serial``,
    because numba names its cache files after the function: both builds are cached, each
    in its own files. ``nb.prange`` in the source is a plain ``range`` in the serial build.
    """
    serial = types.FunctionType(kernel.__code__, kernel.__globals__, f"{kernel.__name__}_serial",
                                kernel.__defaults__)
    serial.__qualname__ = serial.__name__
    return numba.njit(parallel=True, cache=True)(kernel), numba.njit(cache=True)(serial)
