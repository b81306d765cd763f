"""Numba's OpenMP threads sleep as soon as a parallel loop ends (``OMP_WAIT_POLICY=PASSIVE``).

The candidate search, the routing's grid search and the oracle's pricing run on numba's
threads (its ``omp`` threading layer, GNU libgomp). By default libgomp's idle threads
spin for a while after each parallel loop, waiting for the next one. In a round the next
thing on the other CPU is not a parallel loop but MOHAF's helper thread
(:mod:`mechanisms.chains`), and the spinning thread takes that CPU from it. Measured on the
3,553 x 888 bench market (2 CPUs, 6 processes each, alternating): the round's median
28.0 ms spinning, 23.6 ms passive (faster in all 6 pairs), and 8-10 ms less CPU per
round; at 1M x 100k 6.01 and 5.78 s against 5.52 and 5.58 s. A parallel loop then starts
by waking the threads (tens of microseconds; a round has three such loops).

Importing this module sets the policy unless the environment already sets one (an empty
value counts as none); libgomp reads it when it is loaded, which numba does when it first
starts its threads, so every module with a parallel kernel imports it (the policy counts
from the first parallel loop on, not from the import).
"""

from __future__ import annotations

import os

#: libgomp's idle policy, unless the environment sets one
if not os.environ.get("OMP_WAIT_POLICY"):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
