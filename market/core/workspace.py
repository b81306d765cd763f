"""Large arrays a model keeps from one round to the next, so that their pages stay mapped.

A 1M-request round fills about 1.2 GB of candidate tables (:mod:`market.core.candidates`):
four ``(N, K)`` arrays for the cluster auctions and four for the spill-over. Arrays that
large are mapped afresh by the allocator for each round and unmapped after it (glibc maps
blocks above 32 MiB on their own, :mod:`market.core.memory`), so every round pays the
kernel to fault their pages in and zero them before the candidate search can write them:
measured 59-220 ms to fill a fresh ``(1M, 22)`` float array against 29 ms to fill it again.
A :class:`Workspace` hands out the same buffers every round instead (the engine asks it for
those tables and the spill-over sub-market's local candidate indices,
:func:`~market.core.engine.clear_round`).

A buffer is lent for one round: whatever a round builds on it (candidate tables, the
sub-markets' views of them) must not outlive the round, since the next round writes over
it (so a mechanism copies what it keeps of a sub-market, :class:`mechanisms.base.SubMarket`).
One workspace serves one caller at a time (a model's rounds are played one after
another), and the model lets its buffers go once its run's last round is played.
"""

from __future__ import annotations

import numpy as np

#: spare rows a grown buffer gets, as a fraction of the rows asked for (the spill-over's
#: row count varies a little from round to round; growing costs a fresh buffer's faults)
HEADROOM = 0.125


class Workspace:
    """Named 2-d buffers, each at least as many rows as last asked for, lent round after round."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, rows: int, columns: int, dtype: np.dtype | type) -> np.ndarray:
        """``(rows, columns)`` of the buffer ``name``: its first rows, C-contiguous, contents unspecified.

        The buffer is replaced by a larger one (``HEADROOM`` more rows) when it has fewer rows,
        or another width or dtype; the old one is released first, so memory does not hold both.
        """
        dtype = np.dtype(dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != columns or buf.dtype != dtype:
            self._buffers.pop(name, None)
            del buf
            buf = np.empty((rows + int(rows * HEADROOM), columns), dtype=dtype)
            self._buffers[name] = buf
        return buf[:rows]

    def release(self) -> None:
        """Let every buffer go.

        For a run whose last round is played: a finished model may wait long for the garbage
        collector (it and its agents refer to each other) and would hold the buffers till then.
        """
        self._buffers.clear()

    def __getstate__(self) -> dict:
        """Nothing: a copy (a pickled model) starts with no buffers."""
        return {}

    def __setstate__(self, state: dict) -> None:
        self._buffers = {}

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(buf.nbytes for buf in self._buffers.values())
