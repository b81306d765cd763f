"""Mechanisms by name: the built-ins, user registrations and entry points.

A user adds a mechanism without touching the core, either in code::

    from mechanisms import register, Mechanism

    @register("my_auction")
    class MyAuction(Mechanism):
        def allocate(self, market, rng): ...

or from their own package, with an entry point in the group ``market.mechanisms``
(``my_auction = "mypkg.auction:MyAuction"``).
"""

from __future__ import annotations

from collections.abc import Callable

from market.errors import MarketInputError
from market.plugins import Registry
from mechanisms.base import Mechanism

ENTRY_POINT_GROUP = "market.mechanisms"


def _named(name: str, cls: type[Mechanism]) -> type[Mechanism]:
    """The class to register under ``name``: ``cls`` given that name, or an alias of it.

    A class already registered under another name (``greedy_alias = mechanisms.greedy:Greedy``)
    is registered as a subclass named ``name``: renaming the shared class renamed the
    original for everyone. What is no class is refused (the conformance check's
    ``interface`` invariant then asks for a :class:`Mechanism`).
    """
    if not isinstance(cls, type):
        raise TypeError(f"{cls!r} is not a Mechanism class")
    if set(_REGISTRY.names_of(cls)) - {name}:
        return type(cls.__name__, (cls,), {"name": name, "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    cls.name = name
    return cls


_REGISTRY: Registry[type[Mechanism]] = Registry(ENTRY_POINT_GROUP, _named)


def register(name: str) -> Callable[[type[Mechanism]], type[Mechanism]]:
    """Class decorator registering a mechanism under ``name``.

    Args:
        name: the name scenarios and the CLI use.

    Returns:
        The decorator (it returns the class unchanged, with ``name`` set).
    """

    def decorate(cls: type[Mechanism]) -> type[Mechanism]:
        return _REGISTRY.add(name, cls)

    return decorate


def unregister(name: str) -> None:
    """Forget the mechanism registered under ``name`` (no error if there is none).

    Entry points are loaded again on the next lookup, so this mostly serves tests and
    plug-ins that register a mechanism for a while.
    """
    _REGISTRY.remove(name)


def available() -> list[str]:
    """Names of all registered mechanisms, sorted."""
    return _REGISTRY.names()


def mechanism_class(name: str) -> type[Mechanism]:
    """The class registered under ``name``.

    Raises:
        MarketInputError: if no mechanism has that name.
    """
    cls = _REGISTRY.get(name)
    if cls is None:
        problem = _REGISTRY.problem(name)
        raise MarketInputError(f"mechanism {name!r}: {problem}" if problem else
                               f"unknown mechanism {name!r} (available: {', '.join(available())})")
    return cls


def create(name: str, **params: object) -> Mechanism:
    """Instantiate the mechanism ``name`` with its parameters.

    Raises:
        MarketInputError: if the name is unknown or a parameter is not accepted.
    """
    cls = mechanism_class(name)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise MarketInputError(f"mechanism {name!r}: bad parameters {params}: {exc}") from None
