"""Names to plug-in classes: registrations in code, then a package's entry points.

One registry serves mechanisms (:mod:`mechanisms.registry`, group ``market.mechanisms``)
and bidding strategies (:mod:`agents.strategies`, group ``market.strategies``): a name
registered in code wins over an entry point of the same name, and entry points are read
again on a lookup that misses (a package installed, or a name unregistered, meanwhile).
An entry point that fails to load is left out, so that another package's broken plug-in
does not break every command; a lookup of its name can say why (:meth:`Registry.problem`).
It sits at the bottom of the layers (it imports nothing of the project).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points


class Registry[T]:
    """Plug-ins by name.

    Args:
        group: the entry-point group other packages declare their plug-ins in.
        on_load: called as ``on_load(name, obj)`` on every object registered (in code or
            from an entry point); what it returns is stored (e.g. the class, given its
            name); it raises (e.g. TypeError) to refuse an object, which is then not stored.
    """

    def __init__(self, group: str, on_load: Callable[[str, T], T] | None = None) -> None:
        self.group = group
        self._on_load = on_load
        self._by_name: dict[str, T] = {}
        self._broken: dict[str, str] = {}  # entry points that failed to load: name -> why

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` (replacing any earlier one); return what is stored (``on_load``'s answer)."""
        if self._on_load is not None:
            obj = self._on_load(name, obj)
        self._by_name[name] = obj
        return obj

    def names_of(self, obj: T) -> list[str]:
        """The names ``obj`` itself is registered under so far (entry points not read)."""
        return [name for name, known in self._by_name.items() if known is obj]

    def remove(self, name: str) -> None:
        """Forget ``name`` (no error if it is not registered)."""
        self._by_name.pop(name, None)

    def _load_entry_points(self) -> None:
        # one package's broken entry point must not break every lookup (the built-ins
        # included): it is left out, and a lookup of its name says why (:meth:`problem`)
        for ep in entry_points(group=self.group):
            if ep.name not in self._by_name:
                try:
                    self.add(ep.name, ep.load())  # on_load may refuse what it loads
                except KeyboardInterrupt:  # Ctrl-C (and SIGTERM) go on
                    raise
                except BaseException as exc:  # anything another package's import raises (sys.exit too)
                    self._broken[ep.name] = (f"its entry point {ep.value!r} (group {self.group}) cannot be "
                                             f"loaded: {type(exc).__name__}: {exc}")
                    continue
                self._broken.pop(ep.name, None)

    def names(self) -> list[str]:
        """Every registered name, entry points included, sorted."""
        self._load_entry_points()
        return sorted(self._by_name)

    def get(self, name: str) -> T | None:
        """The object registered under ``name``, or None (entry points read on a miss)."""
        if name not in self._by_name:
            self._load_entry_points()
        return self._by_name.get(name)

    def problem(self, name: str) -> str | None:
        """Why ``name``'s entry point could not be loaded at the last reading, or None."""
        return None if name in self._by_name else self._broken.get(name)
