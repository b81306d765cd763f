"""User-facing errors (one clear line, exit code 2, no traceback unless ``--debug``) and warnings."""

from __future__ import annotations


class MarketInputError(Exception):
    """Bad input: a scenario key, a table row, a missing file, an unknown name.

    The message is a single line that names the file and the key or row and the
    offending value. The CLI prints it as ``error: <message>`` and exits with 2.
    """

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None) -> None:
        text = f"{source}: {message}" if source else message
        super().__init__(" ".join(text.split()))


class MarketWarning(UserWarning):
    """Something about the input a user should know while the run goes on.

    For example requests that arrive after the last round, or that nothing can serve. The
    CLI always prints it as one line ``warning: <message>``, whatever the caller's filters.
    """
