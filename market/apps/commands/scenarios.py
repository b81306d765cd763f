"""``market scenarios``: the shipped scenarios, one line each."""

from __future__ import annotations

import argparse

NAME = "scenarios"
HELP = "list the shipped scenarios"
DESCRIPTION = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``market scenarios`` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """``market scenarios``."""
    from scenarios.config import shipped

    for name, desc in shipped():
        print(f"{name:24s} {desc}")
    return 0
