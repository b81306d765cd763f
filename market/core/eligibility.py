"""Eligibility: which resource types a request may run on, as bit masks for the kernels.

A resource has a ``resource_type`` (e.g. its GPU model; ``""`` = untyped) and a request an
``allowed_types`` list (``V100M16|V100M32``; ``""`` = any resource). A request with a
list may only be placed on a resource whose type is in it; a request without one may be
placed anywhere (README, contract 2).

For the numba kernels each resource type gets a code (0 = untyped, typed resources
``1..T`` in sorted order) and each request a row of ``int64`` words whose bit ``c % 32``
of word ``c // 32`` is set when code ``c`` is allowed (32 bits per word: shifts and masks
only, and the sign bit stays clear, so every operation stays in ``int64``). A request
without a list has every bit set; types named by requests but held by no resource get no
code (nothing can serve them). A market where no request has a list gets masks with no
word at all, ``(N, 0)``: the kernels then skip the test (no cost in untyped markets).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pandas as pd

import mechanisms.numba_cache  # noqa: F401  (before any kernel: the cache keyed by the kernels' source)
from scenarios.tables import TYPE_SEPARATOR

#: bits used per int64 word of a request's mask (a power of two: shifts, not divisions)
BITS = 32
SHIFT = 5
#: a word with every bit set: every type allowed
FULL = (1 << BITS) - 1


def type_codes(resource_type: pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each resource's type code and the names of codes ``1..T``.

    Args:
        resource_type: ``(M,)`` type names, ``""`` = untyped.

    Returns:
        ``(codes, names)``: ``(M,)`` int64 codes (0 = untyped) and ``names[c - 1]`` the
        type of code ``c``.
    """
    values = np.asarray(resource_type, dtype=object).astype(str)
    names = sorted({v for v in values.tolist() if v})
    lookup = {name: c + 1 for c, name in enumerate(names)}
    return np.array([lookup.get(v, 0) for v in values.tolist()], dtype=np.int64), names


def allowed_masks(allowed_types: pd.Series | np.ndarray, names: list[str]) -> np.ndarray:
    """``(N, W)`` int64 masks of the codes each request may use.

    ``W = 0`` when no request has a list (every request may use every resource).

    Args:
        allowed_types: ``(N,)`` ``|``-separated type lists, ``""`` = any.
        names: the type names of codes ``1..T`` (:func:`type_codes`).
    """
    values = np.asarray(allowed_types, dtype=object).astype(str).tolist()
    if not any(values):
        return any_type(len(values))
    words = (len(names) + 1) // BITS + 1
    masks = np.full((len(values), words), FULL, dtype=np.int64)
    lookup = {name: c + 1 for c, name in enumerate(names)}
    for i, text in enumerate(values):
        if not text:
            continue
        masks[i] = 0
        for name in text.split(TYPE_SEPARATOR):
            code = lookup.get(name)
            if code is not None:
                masks[i, code // BITS] |= 1 << (code % BITS)
    return masks


def any_type(n: int) -> np.ndarray:
    """``(n, 0)`` masks: no request has a list, every request may use every resource."""
    return np.zeros((n, 0), dtype=np.int64)


@nb.njit(cache=True, inline="always")
def eligible(allowed: np.ndarray, i: int, code: int) -> bool:
    """Request ``i`` may use a resource of type ``code`` (bit ``code`` of its mask; always with no masks)."""
    if allowed.shape[1] == 0:
        return True
    return (allowed[i, code >> SHIFT] >> (code & (BITS - 1))) & 1 == 1


def eligible_pairs(allowed_types: pd.Series | np.ndarray, resource_type: pd.Series | np.ndarray) -> np.ndarray:
    """``(P,)`` bool: each pair's request may use its resource, from the type names.

    Independent of the bit masks (string membership), for the feasibility checks.
    """
    allowed = np.asarray(allowed_types, dtype=object).astype(str).tolist()
    types = np.asarray(resource_type, dtype=object).astype(str).tolist()
    return np.array([not a or (t != "" and t in a.split(TYPE_SEPARATOR)) for a, t in zip(allowed, types, strict=True)],
                    dtype=bool)
