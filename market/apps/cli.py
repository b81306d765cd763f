"""The ``market`` command line (also ``python -m market``).

Every sub-command lives in the module that implements it and registers itself here
through an ``add_parser(subparsers)`` function; :data:`COMMANDS` lists those modules.
Errors in the input print one line ``error: ...`` and exit with code 2 (``--debug``
shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from market.errors import MarketInputError

#: modules that provide ``add_parser(subparsers)``; each sets ``func`` on its parser
COMMANDS = [
    "market.apps.commands",
    "market.studies.sweep",
    "market.apps.data_cli",
    "market.studies.reproduce",
    "market.apps.report",
    "market.studies.scaling",
    "market.apps.dashboard_cli",
    "market.studies.ablation",
    "market.studies.audit",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="market",
        description="Multi-agent market allocation: hierarchical auctions, dynamic pricing, fairness metrics.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, turn input errors into one line and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MarketInputError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return MarketInputError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
