"""A local process pool that shares the CPUs and stops at once on Ctrl-C or an error.

:func:`local_pool` is the one place ``market run`` and ``market sweep`` start worker
processes. Its workers ignore SIGINT: Ctrl-C in a terminal signals the whole process
group, and the decision to stop belongs to the parent alone (a worker that took the
KeyboardInterrupt itself would only fail its current task and take the next one, and
``ProcessPoolExecutor.shutdown(wait=True)`` would then wait for every queued task). When
the block raises, KeyboardInterrupt included, the pending tasks are cancelled, the workers
are terminated (SIGTERM, which also stops one inside a numba kernel) and the pool's queues
and threads are joined, so the command exits without stray processes and without
multiprocessing's resource tracker reporting leaked semaphores.

Only the standard library is imported here (the sweep command's ``--help`` stays fast).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from market.core.interrupts import deferred, raise_if_interrupted
from market.core.memory import retain_freed_memory

#: imported by the fork server once, so every worker starts with the runner loaded
PRELOAD = ["market.core.runner"]


@contextlib.contextmanager
def local_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of ``workers`` processes, terminated if the block raises.

    Workers are forked from a fork server (spawned where there is none) with
    :data:`PRELOAD` imported, share the CPUs between them (numba threads per worker:
    CPUs // workers) and ignore SIGINT. They are all started before the block (a Ctrl-C
    meanwhile is taken once they are). On a normal exit the pool is shut down after its
    tasks; on any exception, KeyboardInterrupt included, its queued tasks are cancelled
    and its workers terminated before the exception goes on.

    Args:
        workers: the number of processes (>= 1).
    """
    pool = None
    try:
        # Every worker is started before the block, with Ctrl-C held meanwhile: one being
        # forked when it came (the fork server may still be importing PRELOAD, a second or
        # two) was unknown to terminate(), outlived the command and printed a traceback.
        with deferred():
            pool = _start(workers)
        yield pool
        pool.shutdown(wait=True)
    except BaseException:
        if pool is not None:
            terminate(pool)
        raise


def _start(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, all of them started."""
    if "forkserver" in mp.get_all_start_methods():
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        # the fork server imports PRELOAD before it ignores SIGINT itself: started with SIGINT
        # ignored (kept across its exec), a Ctrl-C then prints no traceback from its imports
        from multiprocessing import forkserver

        with _sigint_ignored():
            forkserver.ensure_running()
    else:
        context = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)  # runs in parallel, not numba threads in each
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(threads,))
    # Python 3.12-3.14 start forkserver workers one per submit, and the manager thread (which
    # alone tells workers to stop at shutdown) with the first; this starts all of them now,
    # so a pool that runs no task (a sweep whose runs are all reused) still ends its workers
    # (private, as terminate() is: the executor has no public way to do either)
    try:
        pool._launch_processes()
        pool._start_executor_manager_thread()
    except BaseException:  # a fork failing part-way: the workers started are ended
        terminate(pool)
        raise
    return pool


def each_result(executor: Executor | None, calls: Iterable[tuple[Callable[..., Any], tuple]]) -> Iterator[Any]:
    """The result of each ``fn(*args)`` in ``calls``, in their order, as each is ready.

    With ``executor`` None the calls run in this process, one after another; otherwise
    they are all submitted at once (a local pool, a Dask cluster) and their results
    taken in order, so the caller sees the same sequence on any executor. Before each
    result a Ctrl-C that a library swallowed is raised again
    (:func:`market.core.interrupts.raise_if_interrupted`); the calls not yet started are
    cancelled when the caller stops early or anything raises.

    Args:
        executor: where the calls run; None for this process.
        calls: ``(fn, args)`` pairs; on an executor, ``fn`` and ``args`` must pickle.

    Yields:
        ``fn(*args)`` for each call, in order.
    """
    if executor is None:
        for fn, args in calls:
            raise_if_interrupted()
            yield fn(*args)
        return
    futures = [executor.submit(fn, *args) for fn, args in calls]
    try:
        for future in futures:
            raise_if_interrupted()
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


def terminate(pool: ProcessPoolExecutor, timeout: float = 30.0) -> None:
    """Cancel the pool's queued tasks, terminate its workers and join its internals.

    The steps of ``ProcessPoolExecutor.terminate_workers`` (Python 3.14), which 3.12 and
    3.13 lack, so the worker processes and the manager thread are reached privately; then
    the wait for the manager thread, which 3.14 leaves out. A second Ctrl-C meanwhile is
    ignored, so that it cannot cut the clean-up short.
    """
    thread = pool._executor_manager_thread  # read first: shutdown(wait=False) forgets it
    processes = list((pool._processes or {}).values())
    with _sigint_ignored():
        pool.shutdown(wait=False, cancel_futures=True)
        for stop in ("terminate", "kill"):
            for process in processes:
                try:
                    getattr(process, stop)()
                except (ProcessLookupError, ValueError):  # already gone, or already closed
                    continue
            # The manager thread sees the workers end, fails their futures, joins the
            # processes and closes the queues: then nothing is left for the resource tracker.
            if thread is not None:
                thread.join(timeout)
                if not thread.is_alive():
                    return
                continue
            for process in processes:  # the start failed before the manager thread: no one else joins them
                process.join(timeout)
            if not any(process.is_alive() for process in processes):
                return


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in the block (only the main thread may change a signal's handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be restored
            signal.signal(signal.SIGINT, previous)


def _worker_start(threads: int) -> None:
    """Pool worker start-up: leave Ctrl-C to the parent; share the CPUs between workers; keep freed memory."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    retain_freed_memory()
    import numba
    from numba.np.ufunc import parallel

    # numba guards the start of its thread pool with a multiprocessing lock whenever the
    # start method's name contains "fork", which "forkserver" does: each worker would hold a
    # named semaphore that a terminated worker leaves to the resource tracker ("leaked
    # semaphore objects"). A worker starts no processes, so no cross-process lock is needed.
    if getattr(parallel, "_backend_init_process_lock", False) is None:
        parallel._backend_init_process_lock = contextlib.nullcontext()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
