"""Atomic, reproducible output: tables written under a temporary name, then renamed.

A run's directory appears complete or not at all: everything is written into a
sibling ``.<name>.tmp-<pid>`` directory which is renamed into place at the end (its files
and folders are fsynced first, so even after a power loss the name never shows unwritten
data). Single files (:func:`write_table`, :func:`write_json`) go through a
``.<name>.tmp-<pid>`` file the same way. A process killed
mid-write (SIGKILL, power loss) leaves only such hidden temporaries, never a final name
with partial content; the next write to the same name removes the temporaries of
processes that no longer run. Table bytes are deterministic (fixed row order, no
timestamps), so their sha256 identifies a result; the manifest records it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from market.core.interrupts import deferred, raise_if_interrupted
from market.errors import MarketInputError

#: every output directory holds this file: only such a directory is ever replaced (a
#: manifest.json or summary.md is no proof: a user's own folder may hold one). It holds the
#: name of the command that wrote the directory (``run``, ``audit``, ...), so that one
#: command's output is never replaced by another's (empty in outputs of older versions)
OUTPUT_MARKER = ".market-output"


def write_table(df: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``df`` atomically as ``<path>.parquet`` or ``<path>.csv``; return the file path."""
    target = path.with_suffix(f".{fmt}")
    with _atomic_file(target) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False, compression="zstd")
        else:
            df.to_csv(tmp, index=False, float_format="%.17g")
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
    with _atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def check_output_directory(out: Path, marker: str = OUTPUT_MARKER, kind: str | None = None) -> Path:
    """Check that an output directory may be written at ``out``, before any work is done.

    ``out`` may be a new name, an empty directory or an earlier output of this tool (it
    holds ``marker``) written by the same command. Anything else is refused, so that an
    output never replaces what is not one, nor another command's (``market audit --out``
    given a run's folder would lose the run): a file, a directory with other content, the
    working directory or one of its parents, a path below a file, a place where no folder
    can be created.

    Args:
        out: the output directory as the user gave it.
        marker: the file that marks an earlier output of the same kind
            (:data:`OUTPUT_MARKER`; a sweep directory has its own).
        kind: the command that will write ``out`` (e.g. ``"run"``); an earlier output whose
            marker names another command is refused (an empty marker, written by older
            versions, names none). None: any earlier output may be replaced.

    Returns:
        ``out`` as a Path.

    Raises:
        MarketInputError: naming the path and why it is refused.
    """
    out = Path(out)
    where = Path(os.path.abspath(out))
    cwd = Path.cwd().resolve()
    if where.resolve() == cwd or where.resolve() in cwd.parents or not where.name:
        raise MarketInputError(f"output directory {str(out)!r} is the working directory or one of its parents; name a new folder")
    for parent in where.parents:
        if parent.exists() and not parent.is_dir():
            raise MarketInputError(f"output directory {str(out)!r}: {parent} is a file, not a folder")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise MarketInputError(f"output directory {str(out)!r} exists and is not a directory; name a new folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise MarketInputError(
            f"output directory {str(out)!r} exists and is not an earlier output of market (no {marker}); "
            "remove it or name a new folder"
        )
    held = written_by(out, marker)
    if kind is not None and held is not None and held != kind:
        raise MarketInputError(f"output directory {str(out)!r} holds the output of 'market {held}', which "
                               f"'market {kind}' does not replace; remove it or name a new folder")
    _check_writable(out, where)
    return out


def written_by(out: Path, marker: str = OUTPUT_MARKER) -> str | None:
    """The command named in ``out``'s marker (e.g. ``"run"``), None if none is named or there is no marker."""
    try:
        held = (Path(out) / marker).read_text(errors="replace").strip()
    except OSError:  # no marker (or not readable): nothing is claimed
        return None
    return held or None


def _check_writable(out: Path, where: Path) -> None:
    """Refuse ``out`` (one line) when no folder can be made where it would go.

    A probe folder is made and removed in the nearest existing folder (``os.access`` says
    yes to root even where the file system says no, e.g. under ``/sys``), with signals held
    meanwhile: a Ctrl-C between the two left the probe behind (a sweep's run folder, on CI).
    """
    existing = next(p for p in (where, *where.parents) if p.exists())
    try:
        with deferred():
            os.rmdir(tempfile.mkdtemp(prefix=".market-probe-", dir=existing))
    except OSError as exc:
        raise MarketInputError(f"output directory {str(out)!r}: cannot create a folder in {existing} "
                               f"({exc.strerror or exc})") from None


@contextmanager
def atomic_directory(out: Path, kind: str) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` only if the block succeeds.

    ``out`` must pass :func:`check_output_directory` for ``kind``; the new directory gets
    :data:`OUTPUT_MARKER` naming ``kind``. Temporaries of ``out`` left by killed processes
    (``.<name>.tmp-<pid>`` and ``.<name>.old-<pid>`` whose pid no longer runs) are
    removed first.

    Args:
        out: the output directory.
        kind: the command writing it, as typed (``"run"``, ``"audit"``, ``"llm-report"``...).

    Raises:
        MarketInputError: if ``out`` may not be replaced.
    """
    out = check_output_directory(out, kind=kind)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # checked before the work, but the file system may have changed since
        raise MarketInputError(f"output directory {str(out)!r}: cannot create it ({exc.strerror or exc})") from None
    tmp = _temporary(out, "tmp")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    # an interrupt (Ctrl-C) or an error up to the commit, also while the finished tables
    # are synced, leaves no temporary behind and the earlier output in place
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / OUTPUT_MARKER).write_text(f"{kind}\n")
        yield tmp
        _fsync_tree(tmp)
        raise_if_interrupted()  # a Ctrl-C swallowed while the tables were written
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The commit is never cut by a signal (it is held and taken right after): then either
    # the earlier output or the new one is in place, and no moved-aside copy is left.
    with deferred():
        try:
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
        except BaseException:
            if old.exists() and not out.exists():
                os.replace(old, out)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync(out.parent)
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries of ``target`` left by processes that no longer run.

    Args:
        target: a final file or directory name (it need not exist).

    Returns:
        The paths removed.
    """
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:tmp|old)-(\d+)")
    removed = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match is None or _running(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _temporary(target: Path, kind: str) -> Path:
    """This process's temporary name for ``target``, after clearing dead processes' ones."""
    remove_stale_temporaries(target)
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}")


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this host (this process counts)."""
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def _atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary name that is renamed to ``target`` if the block succeeds, else removed.

    Its bytes reach the disk before the rename (an atomic directory syncs its own files).
    """
    tmp = _temporary(target, "tmp")
    try:
        yield tmp
        if not re.fullmatch(rf"\..+\.tmp-{os.getpid()}", target.parent.name):
            _fsync(tmp)
        raise_if_interrupted()  # a Ctrl-C swallowed while the file was written
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush a file's (or, on POSIX, a directory's) data to disk."""
    if path.is_dir() and os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))
