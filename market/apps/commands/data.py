"""``market data fetch google2011`` and ``market data verify``: the trace files on disk.

The library code (download, checksums) is :mod:`market.apps.data`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from market.apps.data import BUCKET, DATASETS

NAME = "data"
HELP = "download and verify trace data"
DESCRIPTION = ("Trace files in $MARKET_DATA_DIR (official layout clusterdata-2011-2/<table>/<part>). "
               "Google cluster-usage traces, clusterdata-2011-2, CC-BY 4.0 (Reiss, Wilkes, Hellerstein, 2011).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The actions of ``market data``: ``fetch`` and ``verify``."""
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = dsub.add_parser(
        "fetch", help="download a trace's files and verify their sha256",
        description="Download the Google 2011 trace parts the project uses from the public bucket over https, "
        "verify the sha256 of their content and write each file atomically.",
    )
    f.add_argument("dataset", choices=DATASETS)
    f.add_argument("--dir", type=Path, help="data folder (default: $MARKET_DATA_DIR or the user cache)")
    f.add_argument("--mirror", default=BUCKET, help=f"base URL with the bucket's layout (default {BUCKET})")
    f.add_argument("--force", action="store_true", help="download again even if a verified copy is present")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    v = dsub.add_parser(
        "verify", help="check the trace files on disk (exit 1 on a missing or mismatched file)",
        description="Check the sha256 of the uncompressed content of every trace file the project uses.",
    )
    v.add_argument("dataset", nargs="?", default="google2011", choices=DATASETS)
    v.add_argument("--dir", type=Path, help="data folder (default: $MARKET_DATA_DIR or the user cache)")


def run(args: argparse.Namespace) -> int:
    """``market data ACTION``."""
    return {"fetch": _fetch, "verify": _verify}[args.data_command](args)


def _fetch(args: argparse.Namespace) -> int:
    """``market data fetch``."""
    from tqdm import tqdm

    from market.apps.data import fetch

    with tqdm(unit="B", unit_scale=True, disable=args.quiet, file=sys.stderr, desc="google2011") as bar:
        statuses = fetch(args.dir, base_url=args.mirror, force=args.force, progress=bar.update, log=bar.write)
    bad = [s for s in statuses if s.status != "ok"]
    return 1 if bad else 0


def _verify(args: argparse.Namespace) -> int:
    """``market data verify``."""
    from market.apps.data import verify
    from scenarios import google2011

    root = google2011.data_dir() if args.dir is None else args.dir
    statuses = verify(root)
    width = max(len(s.status) for s in statuses)
    for s in statuses:
        where = s.path if s.path is not None else root / google2011.TRACE / f"{s.name}.gz"
        detail = {
            "mismatch": f" (content sha256 {s.sha256}, expected {google2011.CONTENT_SHA256[s.name]})",
            "unreadable": f" ({s.detail})",
        }.get(s.status, "")
        print(f"{s.status:<{width}}  {where}{detail}")
    bad = [s for s in statuses if s.status != "ok"]
    if bad:
        print(f"{len(bad)} of {len(statuses)} file(s) missing or not matching ({google2011.FETCH_HINT})", file=sys.stderr)
        return 1
    print(f"all {len(statuses)} files verified under {root}")
    return 0
