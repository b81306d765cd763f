"""The one registry of plug-ins by name (mechanisms and strategies both use it)."""

from __future__ import annotations

from market.plugins import Registry
from tests.conftest import installed_distribution

SOURCE = "class FromPackage:\n    pass\n"
GROUP = "market.test_plugins"


def test_code_registration_wins_over_an_entry_point_and_removal_shows_it_again(tmp_path):
    loaded: list[tuple[str, type]] = []
    registry: Registry[type] = Registry(GROUP, lambda name, obj: loaded.append((name, obj)) or obj)

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


def test_a_broken_entry_point_is_left_out_and_named_when_asked_for(tmp_path):
    registry: Registry[type] = Registry(GROUP)
    with installed_distribution(tmp_path, "market_test_registry", SOURCE,
                                f"[{GROUP}]\nthing = market_test_registry:FromPackage\n"
                                "ghost = market_test_nowhere:Ghost\n"):
        assert registry.names() == ["thing"]  # the good one still loads
        assert registry.get("ghost") is None
        problem = registry.problem("ghost")
        assert "'market_test_nowhere:Ghost'" in problem and "ModuleNotFoundError" in problem, problem
        assert registry.problem("thing") is None and registry.problem("other") is None


def test_the_commands_run_beside_a_broken_plug_in_and_name_it_when_it_is_asked_for(tmp_path, capsys):
    from market.apps import cli

    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "s"\nrounds = 1\nmechanisms = ["greedy"]\n[market]\nsource = "synthetic"\n'
                        "resources = 4\nusers = 2\nrequests = 8\n")
    entry_points = ("[market.mechanisms]\nghost = market_test_nowhere:Ghost\n"
                    "[market.strategies]\nphantom = market_test_nowhere:Phantom\n")
    with installed_distribution(tmp_path, "market_test_broken", "", entry_points):
        assert cli.main(["run", str(scenario), "--out", str(tmp_path / "ok"), "--quiet"]) == 0
        capsys.readouterr()
        assert cli.main(["run", str(scenario), "--out", str(tmp_path / "bad"), "--mechanisms", "ghost"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "mechanism 'ghost': its entry point 'market_test_nowhere:Ghost'" in lines[0], lines
        scenario.write_text(scenario.read_text() + "[users]\nmix = { phantom = 1.0 }\n")
        assert cli.main(["run", str(scenario), "--out", str(tmp_path / "bad")]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "users.mix.phantom: strategy 'phantom': its entry point" in lines[0], lines
    assert not (tmp_path / "bad").exists()


def test_entry_points_that_load_but_are_no_plug_in_or_exit_are_left_out_too(tmp_path):
    """helper-53: a number where a class belongs broke every command (the mechanisms' on_load set
    its name outside the guard), and a module calling sys.exit at import ended every command."""
    from mechanisms import registry

    source = "import sys\nVALUE = 3.0\n"
    with installed_distribution(tmp_path, "market_test_odd", source,
                                "[market.mechanisms]\nnumber = market_test_odd:VALUE\nlength = builtins:len\n"
                                "[market.strategies]\nnumber = market_test_odd:VALUE\n"):
        assert "greedy" in registry.available() and not {"number", "length"} & set(registry.available())
        assert "TypeError: 3.0 is not a Mechanism class" in registry._REGISTRY.problem("number")
        assert "is not a Mechanism class" in registry._REGISTRY.problem("length")  # a function
        from agents.strategies import _STRATEGIES, available_strategies

        assert "number" not in available_strategies()
        assert "not a strategy class" in _STRATEGIES.problem("number")
    exits = tmp_path / "exits"
    exits.mkdir()
    with installed_distribution(exits, "market_test_exits", "import sys\nsys.exit('no GPU here')\n",
                                "[market.mechanisms]\nexits = market_test_exits:Nothing\n"):
        assert "greedy" in registry.available()
        assert "SystemExit: no GPU here" in registry._REGISTRY.problem("exits")
    odd = tmp_path / "odd"
    odd.mkdir()
    with installed_distribution(odd, "market_test_generator_exit", "raise GeneratorExit('boom')\n",
                                "[market.mechanisms]\ngenexit = market_test_generator_exit:Nothing\n"):
        assert "greedy" in registry.available()  # any BaseException but Ctrl-C (helper-54)
        assert "GeneratorExit: boom" in registry._REGISTRY.problem("genexit")


def test_a_class_registered_under_a_second_name_is_an_alias_and_keeps_its_first_name(tmp_path):
    """helper-54: `greedy_alias = mechanisms.greedy:Greedy` renamed the built-in greedy for everyone."""
    from mechanisms import create, registry

    with installed_distribution(tmp_path, "market_test_alias", "", "[market.mechanisms]\n"
                                "greedy_alias = mechanisms.greedy:Greedy\n"):
        try:
            assert "greedy_alias" in registry.available()
            alias = create("greedy_alias")
            assert create("greedy").name == "greedy" and alias.name == "greedy_alias"
            assert isinstance(alias, type(create("greedy")))  # the same mechanism under another name
        finally:
            registry.unregister("greedy_alias")
