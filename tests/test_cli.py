"""The ``market`` command line: one way to register a command, and a fast ``--help``.

``market --help`` and ``market run --help`` run in a subprocess under ``python -X
importtime``; none of the heavy libraries may appear among the imports (command modules
import them when they run). Every other command's ``--help`` is checked the same way,
except those listed in :data:`HEAVY_HELP` with the reason.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from market.apps import cli

REPO = Path(__file__).resolve().parents[1]
#: libraries ``market --help`` must not import
HEAVY = ("numba", "scipy", "matplotlib", "mesa")
#: commands whose ``--help`` still imports a heavy library, and why
HEAVY_HELP = {
    "report": "its --band choices are market.studies.plots.BANDS; plots imports matplotlib at module level",
}
COMMAND_NAMES = [importlib.import_module(f"{cli.PACKAGE}.{m}").NAME for m in cli.COMMANDS]


def imported(*args: str) -> set[str]:
    """Top-level packages imported by ``python -X importtime -m market ARGS`` (which must exit 0)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "market", *args],
        capture_output=True, text=True, check=False, cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: market" in proc.stdout
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", proc.stderr, flags=re.M)
    assert names, proc.stderr[-2000:]
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("args", [("--help",), ("run", "--help")], ids=["market", "run"])
def test_help_imports_no_heavy_library(args: tuple[str, ...]):
    loaded = imported(*args)
    assert "market" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("name", [n for n in COMMAND_NAMES if n not in ("run", *HEAVY_HELP)])
def test_every_command_help_is_light(name: str):
    loaded = imported(name, "--help")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_every_command_module_has_the_interface():
    assert len(set(COMMAND_NAMES)) == len(COMMAND_NAMES)
    for module_name in cli.COMMANDS:
        module = importlib.import_module(f"{cli.PACKAGE}.{module_name}")
        assert module.NAME.replace("-", "_") == module_name
        assert isinstance(module.HELP, str) and module.HELP
        assert module.DESCRIPTION is None or isinstance(module.DESCRIPTION, str)
        assert callable(module.add_arguments) and callable(module.run)


def test_help_lists_every_registered_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    listed = re.findall(r"^    (\S+)", capsys.readouterr().out, flags=re.M)
    assert listed == COMMAND_NAMES


def test_the_full_parser_knows_every_command():
    parser = cli.build_parser()  # every command's arguments, as a documentation tool would see them
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == COMMAND_NAMES
    assert "--out" in sub.choices["run"].format_help()


def test_only_the_apps_parse_arguments():
    """Studies and the core are libraries: no argparse, no sub-command registration."""
    for folder in ("market/core", "market/studies"):
        for path in sorted((REPO / folder).glob("*.py")):
            text = path.read_text()
            assert "argparse" not in text and "add_parser" not in text, path


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err
