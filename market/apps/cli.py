"""The ``market`` command line (also ``python -m market``).

Every sub-command is a module of :mod:`market.apps.commands` with the interface described
there (``NAME``, ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args)``);
:data:`COMMANDS` lists them, in the order ``market --help`` shows them, and is the only
place a command is registered. Only the command on the command line gets its arguments
added, so ``market --help`` and ``market NAME --help`` import no command's heavy
dependencies. Errors in the input print one line ``error: ...`` and exit with code 2
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Collection, Sequence

from market.core import interrupts
from market.core.memory import retain_freed_memory
from market.errors import MarketInputError, MarketWarning

#: the command modules under :mod:`market.apps.commands`; a new command is one more name
COMMANDS = [
    "run",
    "scenarios",
    "bench",
    "sweep",
    "data",
    "reproduce",
    "report",
    "scaling",
    "dashboard",
    "ablation",
    "llm_report",
    "poa",
    "audit",
    "check_mechanism",
]
PACKAGE = "market.apps.commands"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: market run: argument --rounds: ...``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print one line (no usage block) and exit with 2."""
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: object = None, line: str | None = None) -> None:
    """Show a warning as one line ``warning: ...`` on stderr (no source line)."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command.

    Args:
        only: names of the commands whose arguments to add (None: every command's). The
            others are listed (name and help) but take no arguments.
    """
    parser = _Parser(
        prog="market",
        description="Multi-agent market allocation: hierarchical auctions, dynamic pricing, fairness metrics.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        module = importlib.import_module(f"{PACKAGE}.{module_name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.DESCRIPTION)
        p.set_defaults(func=module.run)
        # --debug is also taken after the command (SUPPRESS keeps the one given before it)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        if only is None or module.NAME in only:
            module.add_arguments(p)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named on the command line: the first argument that is not an option.

    ``market`` itself takes only flags (``--debug``, ``--help``), so that argument is the
    command (or an unknown name, which the parser then reports).
    """
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, turn input errors into one line and exit code 2.

    Ctrl-C exits with 130 and SIGTERM (``kill``, ``timeout``) with 143, both after the same
    clean stop: a process pool's workers are ended and no output is left behind, the
    earlier output at ``--out`` as it was. A signal that comes while a pool's workers
    start, or while a finished output is being renamed into place, is taken right after
    that step (:func:`market.core.interrupts.deferred`): then the new output is complete.
    """
    retain_freed_memory()  # before the first round's arrays (market.core.memory)
    argv = sys.argv[1:] if argv is None else list(argv)
    with interrupts.handled():  # from the start: building the parser imports the command's module
        try:
            try:
                command = _command(argv)
                parser = build_parser(only=[command] if command else [])
                args = parser.parse_args(argv)  # --help and usage errors end here by SystemExit
                return _dispatch(args)
            finally:
                # a pipe's reader may have gone: the block-buffered output's last write fails
                # here, where it is handled, not in the interpreter's flush at exit
                sys.stdout.flush()
        except interrupts.Terminated:
            print("terminated", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader went away (`market scenarios | head`): stop quietly
            # (Python's recipe: stdout to /dev/null, so the flush at exit does not fail again)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141  # 128 + SIGPIPE, what a shell reports for a command killed by the pipe


def _dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; an input error becomes one line and exit code 2."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            warnings.simplefilter("default", MarketWarning)  # the user's warnings are shown, never raised
            code = int(args.func(args) or 0)
            interrupts.raise_if_interrupted()  # a Ctrl-C some library swallowed is still one
            return code
    except MarketInputError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return MarketInputError.exit_code


if __name__ == "__main__":
    sys.exit(main())
