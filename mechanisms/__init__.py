"""Allocation mechanisms behind one interface, plus the exact-optimum oracle.

Importing this package registers the built-ins: ``mohaf``, ``greedy``, ``first_price``,
``second_price``, ``random``, ``drf``, ``best_fit``, ``dot_product`` and ``optimal``. See :mod:`mechanisms.registry` to add one
and :func:`mechanisms.checks.check_mechanism` to check that it keeps the contract.
"""

from mechanisms import (
    drf,
    first_price,
    greedy,
    mohaf,
    optimal,
    packing,
    random_allocation,
    second_price,
)
from mechanisms.base import Allocation, Mechanism, SubMarket
from mechanisms.registry import available, create, mechanism_class, register, unregister

__all__ = [
    "Allocation",
    "Mechanism",
    "SubMarket",
    "available",
    "create",
    "drf",
    "first_price",
    "greedy",
    "mechanism_class",
    "mohaf",
    "optimal",
    "packing",
    "random_allocation",
    "register",
    "second_price",
    "unregister",
]
