"""The one registry of plug-ins by name (mechanisms and strategies both use it)."""

from __future__ import annotations

from market.plugins import Registry
from tests.conftest import installed_distribution

SOURCE = "class FromPackage:\n    pass\n"
GROUP = "market.test_plugins"


def test_code_registration_wins_over_an_entry_point_and_removal_shows_it_again(tmp_path):
    loaded: list[tuple[str, type]] = []
    registry: Registry[type] = Registry(GROUP, lambda name, obj: loaded.append((name, obj)))

    class InCode:
        pass

    assert registry.get("thing") is None and registry.names() == []
    with installed_distribution(tmp_path, "market_test_registry", SOURCE,
                                f"[{GROUP}]\nthing = market_test_registry:FromPackage\n"):
        assert registry.add("thing", InCode) is InCode
        assert registry.get("thing") is InCode and registry.names() == ["thing"]
        registry.remove("thing")
        from_package = registry.get("thing")  # a miss reads the entry points again
        assert from_package.__name__ == "FromPackage"
        assert registry.names() == ["thing"]
        registry.remove("missing")  # no error
    # on_load saw both, in order, each with its name
    assert [(name, obj.__name__) for name, obj in loaded] == [("thing", "InCode"), ("thing", "FromPackage")]
    registry.remove("thing")
    assert registry.get("thing") is None  # the package is gone: nothing to read again
