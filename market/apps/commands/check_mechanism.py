"""``market check-mechanism NAME``: the conformance check of one registered mechanism."""

from __future__ import annotations

import argparse
import json
import sys

from market.errors import MarketInputError

NAME = "check-mechanism"
HELP = "check that a mechanism (built-in or plug-in) keeps every mechanism invariant"
DESCRIPTION = (
    "Run a registered mechanism (a built-in, a @register class or an entry point in the group "
    "market.mechanisms) through mechanisms.checks.check_mechanism: feasibility in every dimension, "
    "single assignment, 0 <= payment <= budget, QoS, determinism given the rng, no mutation of the "
    "sub-market, empty and degenerate markets, ties. Prints 'ok: NAME passes N checks' (exit 0) or "
    "the broken invariant on stderr (exit 1)."
)


def param(text: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` to ``(KEY, VALUE)``; the value is read as JSON if it parses (an argparse ``type``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market check-mechanism``."""
    p.add_argument("name", metavar="NAME", help="registered mechanism name, e.g. mohaf")
    p.add_argument("--param", type=param, action="append", default=[], metavar="KEY=VALUE",
                   help="constructor parameter of the mechanism (repeatable), e.g. --param rank=density")
    p.add_argument("--markets", type=int, default=8, help="random markets after the fixed degenerate ones")
    p.add_argument("--seed", type=int, default=0, help="seed of the random markets and of the rng")


def run(args: argparse.Namespace) -> int:
    """``market check-mechanism``: 0 if every invariant holds, 1 with the broken one on stderr."""
    from mechanisms import create
    from mechanisms.checks import check_mechanism

    if args.markets < 0:
        raise MarketInputError(f"--markets must be >= 0, got {args.markets}")
    mechanism = create(args.name, **dict(args.param))  # unknown name or bad parameter: exit 2
    try:
        passed = check_mechanism(mechanism, n_markets=args.markets, seed=args.seed)
    except AssertionError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"ok: {args.name} passes {passed} checks")
    return 0
