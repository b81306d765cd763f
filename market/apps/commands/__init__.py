"""The ``market`` sub-commands: one module per command, all with the same interface.

A command module defines, at module level:

- ``NAME``: the command as typed, e.g. ``"run"`` or ``"check-mechanism"`` (the module is
  named after it, ``-`` spelled ``_``: ``check_mechanism.py``);
- ``HELP``: its one line in the ``market --help`` listing;
- ``DESCRIPTION``: the paragraph at the top of ``market NAME --help`` (None: no paragraph);
- ``add_arguments(parser: argparse.ArgumentParser) -> None``: adds its arguments (and
  sub-actions, see :mod:`market.apps.commands.data`);
- ``run(args: argparse.Namespace) -> int``: does the work; returns the exit code.

Registering a command is one line: its module name in :data:`market.apps.cli.COMMANDS`,
the only place commands are registered. The rules that keep the CLI fast and clear:

- **Light at import.** ``market --help`` imports every command module, so a module imports
  only the standard library and light modules (:mod:`market.errors`, this package) at
  module level. ``add_arguments`` runs only for the command on the command line; keep it
  light too, so ``market NAME --help`` is fast. Heavy libraries (numpy, pandas, numba,
  scipy, matplotlib, mesa) and every module importing them are imported inside ``run``.
  ``tests/test_cli.py`` checks this with ``python -X importtime``.
- **Inputs first.** ``run`` loads and validates every input (scenario, its market
  tables, parameters) before it starts a progress bar or creates an output, and raises
  :class:`market.errors.MarketInputError` on bad input: :func:`market.apps.cli.main`
  prints it as exactly one line ``error: ...`` on stderr and exits with code 2.
- **Library code elsewhere.** A command parses, checks, calls library functions (in
  :mod:`market.core`, :mod:`market.studies` or an :mod:`market.apps` module) and prints;
  the library never parses arguments.

This package also holds the argument types the commands share (:func:`int_list`,
:func:`name_list`, :func:`output_directory`, :func:`sweep_directory`) and their run-counting progress bar
(:func:`run_progress`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` to ``[0, 1, 2]`` (an argparse ``type``): distinct integers, as seeds are."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:  # else an empty --seeds "" would fall back to the scenario's without a word
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got an empty list {text!r}")
    twice = [v for i, v in enumerate(values) if v in values[:i]]
    if twice:  # (named here, by the option, rather than later as the scenario's key 'seeds')
        raise argparse.ArgumentTypeError(f"expected distinct integers, {twice[0]} is listed twice in {text!r}")
    return values


def name_list(text: str) -> list[str]:
    """``"mohaf, greedy"`` to ``["mohaf", "greedy"]`` (an argparse ``type``)."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:  # else an empty --mechanisms "" would fall back to the scenario's without a word
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got an empty list {text!r}")
    return names


def output_directory(kind: str) -> Callable[[str], Path]:
    """The argparse ``type`` of ``--out`` for the command ``kind`` (its ``NAME``).

    The directory is checked when the command line is read, before any work, by
    :func:`market.core.io.check_output_directory`: a new name, an empty folder or an
    earlier output of the same command, never a file, a folder with other content or
    another command's output.
    """

    def directory(text: str) -> Path:
        from market.core.io import check_output_directory
        from market.errors import MarketInputError

        try:
            return check_output_directory(Path(text), kind=kind)
        except MarketInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return directory


def sweep_directory(text: str) -> Path:
    """A sweep directory (an argparse ``type``): a new name, an empty folder or an earlier sweep.

    A sweep resumes in its directory, so it is not replaced but added to: a folder of other
    content, an output of another command or the working directory is refused when the
    command line is read (:func:`market.core.io.check_output_directory` with the sweep's
    own marker).
    """
    from market.core.io import check_output_directory
    from market.errors import MarketInputError
    from market.studies.sweep import SWEEP_MARKER

    try:
        return check_output_directory(Path(text), SWEEP_MARKER)
    except MarketInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@contextmanager
def progress_bar(**options: Any) -> Iterator[Any]:
    """A tqdm progress bar on stderr, closed whatever happens in the block.

    If the block raises (an error, Ctrl-C), the bar's line is cleared: the one line
    ``error: ...``, ``interrupted`` or ``terminated`` is then all the terminal keeps.

    Args:
        **options: tqdm's keyword arguments (``total``, ``desc``, ``unit``, ``disable``...).
    """
    from tqdm import tqdm

    bar = tqdm(file=sys.stderr, **options)
    try:
        yield bar
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


@contextmanager
def run_progress(desc: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of runs on stderr, as the ``progress(done, total)`` callback studies take.

    The total may be learnt late (a study knows its runs once it has planned them); the bar
    is closed whatever happens in the block, its line cleared if the block raises.

    Args:
        desc: the bar's label, e.g. ``"poa strategic"``.
        quiet: no bar (the callback does nothing visible).
    """
    with progress_bar(total=0, desc=desc, unit="run", disable=quiet) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress
