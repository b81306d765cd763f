"""``market data fetch [DATASET]`` and ``market data verify [DATASET]``: the trace files on disk.

Datasets: ``google2011`` (Google cluster-usage traces, clusterdata-2011-2, CC-BY 4.0;
Reiss, Wilkes, Hellerstein, 2011), ``alibaba-gpu-2023`` (Alibaba
cluster-trace-gpu-v2023, for research and study use; Weng et al., USENIX ATC 2023) and
``azure-llm-2023`` (Azure LLM inference trace 2023, CC-BY 4.0; Patel et al., ISCA 2024).
Without a dataset both act on every dataset. The library code (registry, download,
checksums) is :mod:`market.apps.data`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from market.apps.commands import progress_bar
from market.apps.data import DATASETS

NAME = "data"
HELP = "download and verify trace data"
DESCRIPTION = (
    "Trace files in $MARKET_DATA_DIR, in each trace's official layout: google2011 "
    "(clusterdata-2011-2/<table>/<part>; Google cluster-usage traces, clusterdata-2011-2, CC-BY 4.0, "
    "Reiss, Wilkes, Hellerstein, 2011), alibaba-gpu-2023 (alibaba-gpu-2023/<file>.csv; Alibaba "
    "cluster-trace-gpu-v2023, for research and study use, Weng et al., USENIX ATC 2023) and azure-llm-2023 "
    "(azure-llm-2023/<file>.csv; Azure LLM inference trace 2023, CC-BY 4.0, Patel et al., ISCA 2024)."
)


def _dataset_arguments(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("dataset", nargs="?", choices=DATASETS, help=f"the dataset to {what} (default: all)")
    p.add_argument("--dataset", dest="dataset_option", choices=DATASETS, metavar="NAME",
                   help=f"the dataset to {what}, as an option ({', '.join(DATASETS)})")
    p.add_argument("--dir", type=Path, help="data folder (default: $MARKET_DATA_DIR or the user cache)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The actions of ``market data``: ``fetch`` and ``verify``."""
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = dsub.add_parser(
        "fetch", help="download a trace's files and verify their sha256",
        description="Download a dataset's files (default: every dataset) from their official location over https "
        "(Google's public bucket; the alibaba/clusterdata repository on GitHub), verify the sha256 of their "
        "content and write each file atomically.",
    )
    _dataset_arguments(f, "fetch")
    f.add_argument("--mirror", help="base URL with the dataset's official layout (one dataset only; "
                   "default: its official location)")
    f.add_argument("--force", action="store_true", help="download again even if a verified copy is present")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    v = dsub.add_parser(
        "verify", help="check the trace files on disk (exit 1 on a missing or mismatched file)",
        description="Check the sha256 of the content of every trace file the project uses (default: every dataset).",
    )
    _dataset_arguments(v, "check")


def run(args: argparse.Namespace) -> int:
    """``market data ACTION``."""
    return {"fetch": _fetch, "verify": _verify}[args.data_command](args)


def _datasets(args: argparse.Namespace) -> list[str]:
    """The datasets named (positional or ``--dataset``; both must agree), else all."""
    from market.errors import MarketInputError

    given = {d for d in (args.dataset, args.dataset_option) if d is not None}
    if len(given) > 1:
        raise MarketInputError(f"two different datasets given: {args.dataset} and --dataset {args.dataset_option}")
    return list(given) if given else list(DATASETS)


def _fetch(args: argparse.Namespace) -> int:
    """``market data fetch``."""
    from market.apps.data import fetch
    from market.errors import MarketInputError

    datasets = _datasets(args)
    if args.mirror is not None and len(datasets) > 1:
        raise MarketInputError("--mirror needs one dataset (each has its own layout): market data fetch NAME --mirror URL")
    bad = []
    for data in datasets:
        with progress_bar(unit="B", unit_scale=True, disable=args.quiet, desc=data) as bar:
            statuses = fetch(args.dir, base_url=args.mirror, force=args.force, progress=bar.update, log=bar.write,
                             data=data)
        bad += [s for s in statuses if s.status != "ok"]
    return 1 if bad else 0


def _verify(args: argparse.Namespace) -> int:
    """``market data verify``."""
    from market.apps.data import dataset, local_target, verify_all
    from scenarios import google2011

    root = google2011.data_dir() if args.dir is None else args.dir
    statuses = verify_all(root, _datasets(args))
    width = max(len(s.status) for s in statuses)
    for s in statuses:
        where = s.path if s.path is not None else local_target(root, s.name, s.dataset)
        detail = {
            "mismatch": f" (content sha256 {s.sha256}, expected {s.expected})",
            "unreadable": f" ({s.detail})",
        }.get(s.status, "")
        print(f"{s.status:<{width}}  {where}{detail}")
    bad = [s for s in statuses if s.status != "ok"]
    if bad:
        hints = "; ".join(dataset(d).hint for d in dict.fromkeys(s.dataset for s in bad))
        print(f"{len(bad)} of {len(statuses)} file(s) missing or not matching ({hints})", file=sys.stderr)
        return 1
    print(f"all {len(statuses)} files verified under {root}")
    return 0
