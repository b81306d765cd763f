"""Ctrl-C and SIGTERM that are never lost, even where a library swallows the exception.

Python's SIGINT handler raises KeyboardInterrupt wherever the main thread happens to
be. Inside a C extension that clears errors it can vanish: numpy's comparison of a dtype
with a string (``dtype == "string"``, which pandas' dtype checks do while a table is
written) clears the error of a failed conversion, KeyboardInterrupt included. A sweep
interrupted at such a moment went on to finish and write its results with exit code 0
(about one Ctrl-C in ten during a sweep's first tables, measured).

The handlers installed by :func:`handled` therefore also record the signal, and
:func:`raise_if_interrupted` raises it again: every commit of output (:mod:`market.core.io`)
and every loop over runs or pool results calls it, so a swallowed interrupt stops the
command at the next such point, before anything is written. :func:`deferred` holds the
signals through the steps that must not be cut (a process pool's start, an output's final
rename) and takes them right after. Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken like Ctrl-C: the same clean stop (workers ended, nothing written)."""


_received: list[int] = []  # the signals taken since :func:`handled` was entered


def _handle(signum: int, frame: object) -> None:
    _received.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise (KeyboardInterrupt, :class:`Terminated`) and are recorded.

    SIGINT is taken over only from Python's default handler: a process started with
    SIGINT ignored (a background job) keeps ignoring it. Outside the main thread, where
    no handler can be set, the block runs unchanged. The previous handlers come back
    at the end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _handle)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        _received.clear()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that come in the block are held, then taken when it ends.

    For steps that must not be cut half-way: a process pool's start (a worker being
    forked when Ctrl-C comes would be unknown to the clean-up, and outlive the command)
    and an output's commit (the old directory moved aside, the new one renamed into
    place, the old one removed). A signal held is raised when the block ends (as
    KeyboardInterrupt or :class:`Terminated`, and recorded as by :func:`handled`), so the
    command stops right after the step. Outside the main thread the block runs
    unchanged. Nested blocks hold for the outermost one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is _handle or (signum == signal.SIGINT and handler is signal.default_int_handler):
            previous[signum] = signal.signal(signum, lambda s, f: held.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if _handle in previous.values():
            _received.extend(held)  # within handled(): the command's later checks see it too
    if held:
        raise Terminated if signal.SIGTERM in held else KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt (:class:`Terminated` for SIGTERM) if a signal was taken in the block.

    A no-op when no signal came, or outside :func:`handled`. Call it before anything is
    committed and between runs.

    Raises:
        KeyboardInterrupt: Ctrl-C was pressed (even if its first exception was swallowed).
        Terminated: SIGTERM came.
    """
    if _received:
        raise Terminated if signal.SIGTERM in _received else KeyboardInterrupt
