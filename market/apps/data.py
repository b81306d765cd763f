"""The trace files on disk: download and verify them (``market data fetch``, ``market data verify``).

``fetch`` downloads the parts the project uses (:data:`scenarios.google2011.CONTENT_SHA256`)
from Google's public bucket over https into ``$MARKET_DATA_DIR`` (or ``--dir``) in the
official layout, checks the sha256 of each file's *uncompressed content* against the
committed table, and only then renames it into place: a file is there complete and
verified or not at all. Files already present and verified are skipped.

``verify`` checks what is there (any of ``.csv.gz``, ``.csv.xz``, ``.csv``); ``market data
verify`` (:mod:`market.apps.commands.data`) prints one line per file and exits with 1 if
a file is missing or does not match.

Data: Google cluster-usage traces, clusterdata-2011-2, CC-BY 4.0. C. Reiss, J. Wilkes,
J. L. Hellerstein, "Google cluster-usage traces: format + schema", Google, 2011.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from market.errors import MarketInputError

# scenarios.google2011, market.core.io (pandas) and urllib are imported where they are used,
# so that ``market --help`` stays light

BUCKET = "https://storage.googleapis.com/clusterdata-2011-2"
DATASETS = ("google2011",)
CHUNK = 1 << 20
_OPENERS: dict[str, Callable] = {".gz": gzip.open, ".xz": lzma.open}


@dataclass(frozen=True)
class FileStatus:
    """The state of one expected trace file.

    Attributes:
        name: its path inside the trace folder, without compression suffix.
        path: the local file found (None if missing).
        status: ``ok``, ``mismatch``, ``missing`` or ``unreadable``.
        sha256: the content hash found ('' if missing or unreadable).
        detail: why a file is unreadable.
    """

    name: str
    path: Path | None
    status: str
    sha256: str = ""
    detail: str = ""


def content_sha256(path: Path, compression: str | None = None) -> str:
    """sha256 of a file's uncompressed content.

    Args:
        path: the file.
        compression: ``.gz``, ``.xz`` or ``""`` (plain); default from the file's suffix.
    """
    opener = _OPENERS.get(path.suffix if compression is None else compression, open)
    h = hashlib.sha256()
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _local(root: Path, name: str) -> Path | None:
    """The copy of ``name`` the loaders read (same suffix order as :func:`google2011.find_part`)."""
    from scenarios import google2011

    stem = root / google2011.TRACE / name.removesuffix(".csv")
    for suffix in google2011.SUFFIXES:
        path = stem.with_name(stem.name + suffix)
        if path.is_file():
            return path
    return None


def check(root: Path, name: str) -> FileStatus:
    """Status of one expected file under ``root``."""
    from scenarios import google2011

    path = _local(root, name)
    if path is None:
        return FileStatus(name, None, "missing")
    try:
        digest = content_sha256(path)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        return FileStatus(name, path, "unreadable", detail=" ".join(str(exc).split()) or type(exc).__name__)
    return FileStatus(name, path, "ok" if digest == google2011.CONTENT_SHA256[name] else "mismatch", digest)


def verify(root: Path | None = None) -> list[FileStatus]:
    """Check every file the project uses (content sha256)."""
    from scenarios import google2011

    root = google2011.data_dir() if root is None else Path(root)
    return [check(root, name) for name in google2011.CONTENT_SHA256]


def _download(url: str, target: Path, expected: str, progress: Callable[[int], None] | None) -> None:
    """Download ``url`` to ``target`` atomically, verifying the gzip content's sha256."""
    import urllib.error
    import urllib.request

    from market.core.io import remove_stale_temporaries

    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MarketInputError(f"cannot download {url}: {reason}") from None
        try:
            digest = content_sha256(tmp, ".gz")
        except (OSError, EOFError) as exc:
            raise MarketInputError(f"{url}: not a valid gzip file ({exc})") from None
        if digest != expected:
            raise MarketInputError(f"{url}: sha256 of content {digest} does not match the expected {expected}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    root: Path | None = None,
    names: Iterable[str] | None = None,
    base_url: str = BUCKET,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] = print,
) -> list[FileStatus]:
    """Download the trace files the project uses and verify them.

    Args:
        root: the data folder (default ``$MARKET_DATA_DIR``).
        names: files to fetch (keys of ``CONTENT_SHA256``; default all).
        base_url: the bucket (or a mirror with the same layout, e.g. ``file://...``).
        force: download even if a verified copy is present.
        progress: called with the number of bytes of each chunk received.
        log: where one line per file goes.

    Returns:
        The status of each file afterwards.

    Raises:
        MarketInputError: on a download error or a checksum mismatch (nothing is
            left under the final name).
    """
    from scenarios import google2011

    root = google2011.data_dir() if root is None else Path(root)
    wanted = list(google2011.CONTENT_SHA256) if names is None else list(names)
    unknown = [n for n in wanted if n not in google2011.CONTENT_SHA256]
    if unknown:
        raise MarketInputError(f"unknown trace file {unknown[0]!r} (known: {', '.join(google2011.CONTENT_SHA256)})")
    out = []
    for name in wanted:
        status = check(root, name)
        if status.status == "ok" and not force:
            log(f"ok        {name} (already present: {status.path})")
            out.append(status)
            continue
        url = f"{base_url.rstrip('/')}/{name}.gz"
        target = root / google2011.TRACE / f"{name}.gz"
        _download(url, target, google2011.CONTENT_SHA256[name], progress)
        log(f"fetched   {name} -> {target}")
        out.append(check(root, name))
    return out
