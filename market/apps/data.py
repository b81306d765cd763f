"""The trace files on disk: download and verify them (``market data fetch``, ``market data verify``).

Datasets are a registry (:func:`dataset`, names in :data:`DATASETS`); each names its
folder under ``$MARKET_DATA_DIR``, the files the project uses with the sha256 of their
*content*, and the official location:

- ``google2011``: five parts of Google's clusterdata-2011-2 trace
  (:data:`scenarios.google2011.CONTENT_SHA256`), gzip files from Google's public bucket;
  the hash is of the uncompressed content, so a recompressed local copy (``.csv.xz``) or a
  plain ``.csv`` verifies too.
- ``alibaba-gpu-2023``: the node and pod lists of Alibaba's GPU trace
  (:data:`scenarios.alibaba_gpu.CONTENT_SHA256`), plain CSV files from the
  ``alibaba/clusterdata`` repository on GitHub.
- ``azure-llm-2023``: the Azure LLM inference traces of 2023
  (:data:`scenarios.azure_llm.CONTENT_SHA256`), plain CSV files from the
  ``Azure/AzurePublicDataset`` repository on GitHub (CC-BY 4.0; Patel et al., ISCA 2024).

``fetch`` downloads a dataset's files over https into ``$MARKET_DATA_DIR`` (or ``--dir``)
in the official layout, checks the sha256 of each file's content against the committed
table, and only then renames it into place: a file is there complete and verified or not
at all. Files already present and verified are skipped.

``verify`` checks what is there; ``market data verify`` (:mod:`market.apps.commands.data`)
prints one line per file and exits with 1 if a file is missing or does not match.

Data: Google cluster-usage traces, clusterdata-2011-2, CC-BY 4.0. C. Reiss, J. Wilkes,
J. L. Hellerstein, "Google cluster-usage traces: format + schema", Google, 2011.
Alibaba cluster-trace-gpu-v2023, released by Alibaba Group for research and study use.
Q. Weng, L. Yang et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with
Fragmentation Gradient Descent", USENIX ATC 2023.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from market.errors import MarketInputError

# scenarios.google2011 / alibaba_gpu, market.core.io (pandas) and urllib are imported where
# they are used, so that ``market --help`` stays light

BUCKET = "https://storage.googleapis.com/clusterdata-2011-2"
ALIBABA_URL = "https://raw.githubusercontent.com/alibaba/clusterdata/master/cluster-trace-gpu-v2023/csv"
#: the registry's names, in order (``market data verify`` checks them all)
AZURE_URL = "https://raw.githubusercontent.com/Azure/AzurePublicDataset/master/data"
DATASETS = ("google2011", "alibaba-gpu-2023", "azure-llm-2023")
CHUNK = 1 << 20
_OPENERS: dict[str, Callable] = {".gz": gzip.open, ".xz": lzma.open}


@dataclass(frozen=True)
class Dataset:
    """One downloadable trace.

    Attributes:
        name: its name on the command line (``google2011``).
        folder: its folder under the data directory (``clusterdata-2011-2``).
        files: path inside ``folder`` (without compression suffix) -> sha256 of the content.
        url: the official base URL; a file is at ``url/<path><download_suffix>``.
        download_suffix: ``.gz`` if the published files are gzip, ``""`` if plain.
        local_suffixes: suffixes tried after the path for a local copy, in order.
        hint: what to run when a file is missing.
    """

    name: str
    folder: str
    files: Mapping[str, str]
    url: str
    download_suffix: str
    local_suffixes: tuple[str, ...]
    hint: str


def dataset(name: str) -> Dataset:
    """The registry's entry ``name``.

    Raises:
        MarketInputError: for an unknown name.
    """
    if name == "google2011":
        from scenarios import google2011

        return Dataset(name, google2011.TRACE, google2011.CONTENT_SHA256, BUCKET, ".gz",
                       tuple(s.removeprefix(".csv") for s in google2011.SUFFIXES), google2011.FETCH_HINT)
    if name == "alibaba-gpu-2023":
        from scenarios import alibaba_gpu

        return Dataset(name, alibaba_gpu.TRACE, alibaba_gpu.CONTENT_SHA256, ALIBABA_URL, "", ("",), alibaba_gpu.FETCH_HINT)
    if name == "azure-llm-2023":
        from scenarios import azure_llm

        return Dataset(name, azure_llm.FOLDER, azure_llm.CONTENT_SHA256, AZURE_URL, "", ("",), azure_llm.FETCH_HINT)
    raise MarketInputError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")


@dataclass(frozen=True)
class FileStatus:
    """The state of one expected trace file.

    Attributes:
        name: its path inside the dataset's folder, without compression suffix.
        path: the local file found (None if missing).
        status: ``ok``, ``mismatch``, ``missing`` or ``unreadable``.
        sha256: the content hash found ('' if missing or unreadable).
        detail: why a file is unreadable.
        dataset: the dataset it belongs to.
    """

    name: str
    path: Path | None
    status: str
    sha256: str = ""
    detail: str = ""
    dataset: str = "google2011"

    @property
    def expected(self) -> str:
        """The sha256 the file's content should have."""
        return dataset(self.dataset).files[self.name]


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


def _root(root: Path | None) -> Path:
    from scenarios import google2011

    return google2011.data_dir() if root is None else Path(root)


def _local(root: Path, name: str, ds: Dataset) -> Path | None:
    """The copy of ``name`` the loaders read (their suffix order)."""
    for suffix in ds.local_suffixes:
        path = root / ds.folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def local_target(root: Path, name: str, data: str = "google2011") -> Path:
    """Where ``fetch`` puts file ``name`` of dataset ``data`` (the official name)."""
    ds = dataset(data)
    return Path(root) / ds.folder / f"{name}{ds.download_suffix}"


def check(root: Path, name: str, data: str = "google2011") -> FileStatus:
    """Status of one expected file of dataset ``data`` under ``root``."""
    ds = dataset(data)
    path = _local(Path(root), name, ds)
    if path is None:
        return FileStatus(name, None, "missing", dataset=data)
    try:
        digest = content_sha256(path)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return FileStatus(name, path, "unreadable", detail=detail, dataset=data)
    return FileStatus(name, path, "ok" if digest == ds.files[name] else "mismatch", digest, dataset=data)


def verify(root: Path | None = None, data: str = "google2011") -> list[FileStatus]:
    """Check every file of one dataset (content sha256)."""
    root = _root(root)
    return [check(root, name, data) for name in dataset(data).files]


def verify_all(root: Path | None = None, datasets: Iterable[str] | None = None) -> list[FileStatus]:
    """Check every file of ``datasets`` (default: all of :data:`DATASETS`), in registry order."""
    return [s for data in (DATASETS if datasets is None else datasets) for s in verify(root, data)]


def _download(url: str, target: Path, expected: str, progress: Callable[[int], None] | None,
              compression: str = ".gz") -> None:
    """Download ``url`` to ``target`` atomically, verifying the sha256 of its content."""
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
            digest = content_sha256(tmp, compression)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            what = {".gz": "gzip file", ".xz": "xz file"}.get(compression, "file")
            raise MarketInputError(f"{url}: not a valid {what} ({exc})") from None
        if digest != expected:
            raise MarketInputError(f"{url}: sha256 of content {digest} does not match the expected {expected}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    root: Path | None = None,
    names: Iterable[str] | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] = print,
    data: str = "google2011",
) -> list[FileStatus]:
    """Download the files of one dataset and verify them.

    Args:
        root: the data folder (default ``$MARKET_DATA_DIR``).
        names: files to fetch (keys of the dataset's ``files``; default all).
        base_url: the official location (default) or a mirror with the same layout
            (e.g. ``file://...``).
        force: download even if a verified copy is present.
        progress: called with the number of bytes of each chunk received.
        log: where one line per file goes.
        data: the dataset (:data:`DATASETS`).

    Returns:
        The status of each file afterwards.

    Raises:
        MarketInputError: on an unknown dataset or file, a download error or a checksum
            mismatch (nothing is left under the final name).
    """
    ds = dataset(data)
    root = _root(root)
    base = (ds.url if base_url is None else base_url).rstrip("/")
    wanted = list(ds.files) if names is None else list(names)
    unknown = [n for n in wanted if n not in ds.files]
    if unknown:
        raise MarketInputError(f"unknown {data} file {unknown[0]!r} (known: {', '.join(ds.files)})")
    out = []
    for name in wanted:
        status = check(root, name, data)
        if status.status == "ok" and not force:
            log(f"ok        {name} (already present: {status.path})")
            out.append(status)
            continue
        url = f"{base}/{name}{ds.download_suffix}"
        target = local_target(root, name, data)
        _download(url, target, ds.files[name], progress, ds.download_suffix)
        log(f"fetched   {name} -> {target}")
        out.append(check(root, name, data))
    return out
