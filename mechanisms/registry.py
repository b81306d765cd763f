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
from importlib.metadata import entry_points

from market.errors import MarketInputError
from mechanisms.base import Mechanism

_REGISTRY: dict[str, type[Mechanism]] = {}
ENTRY_POINT_GROUP = "market.mechanisms"


def register(name: str) -> Callable[[type[Mechanism]], type[Mechanism]]:
    """Class decorator registering a mechanism under ``name``.

    Args:
        name: the name scenarios and the CLI use.

    Returns:
        The decorator (it returns the class unchanged, with ``name`` set).
    """

    def decorate(cls: type[Mechanism]) -> type[Mechanism]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def unregister(name: str) -> None:
    """Forget the mechanism registered under ``name`` (no error if there is none).

    Entry points are loaded again on the next lookup, so this mostly serves tests and
    plug-ins that register a mechanism for a while.
    """
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            cls = ep.load()
            cls.name = ep.name
            _REGISTRY[ep.name] = cls


def available() -> list[str]:
    """Names of all registered mechanisms, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def mechanism_class(name: str) -> type[Mechanism]:
    """The class registered under ``name``.

    Raises:
        MarketInputError: if no mechanism has that name.
    """
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MarketInputError(
            f"unknown mechanism {name!r} (available: {', '.join(available())})"
        ) from None


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
