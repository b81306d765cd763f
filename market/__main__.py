"""``python -m market``: the same as the ``market`` command."""

import sys

from market.apps.cli import main

code = main()
# CPython 3.12 marks a KeyboardInterrupt that ended any string exec() as unhandled even when a
# caller caught it (run_eval_code_obj; dataclasses and namedtuple build their methods with such
# an exec, so a Ctrl-C during an import can land there), and after `python -m` it then ends
# the process by SIGINT whatever main() returned (measured: 6 of 30 Ctrl-Cs a second into
# `python -m market run --workers 2` ended with -2 after printing "interrupted"). The mark is
# reset at the start of every string exec: this empty one keeps main()'s exit code. (The
# `market` script is run as a file, which CPython exits through sys.exit alone.)
exec("")  # noqa: S102
sys.exit(code)
