"""Atomic, reproducible output: tables written under a temporary name, then renamed.

A run's directory appears complete or not at all: everything is written into a
sibling ``.<name>.tmp-<pid>`` directory which is renamed into place at the end. Table
bytes are deterministic (fixed row order, no timestamps), so their sha256 identifies a
result; the manifest records it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def write_table(df: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``df`` as ``<path>.parquet`` or ``<path>.csv``; return the file path."""
    target = path.with_suffix(f".{fmt}")
    if fmt == "parquet":
        df.to_parquet(target, index=False, compression="zstd")
    else:
        df.to_csv(target, index=False, float_format="%.17g")
    return target


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(obj: Any, path: Path) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


@contextmanager
def atomic_directory(out: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` only if the block succeeds."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
