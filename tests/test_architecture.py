"""The layers point one way: the import-linter contract in pyproject.toml holds, and it
catches a forbidden import when one is added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("market", "agents", "mechanisms", "scenarios")


def _lint(repo: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([str(LINT), "--no-cache"], check=False, cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, repo / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.toml", "data"))
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    return repo


def test_the_layer_contract_holds():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_every_market_module_sits_in_a_layer():
    """New modules go into core, studies or apps (else the contract would not see them); the two leaves import nothing of the project."""
    loose = sorted(p.name for p in (ROOT / "market").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py", "plugins.py"]
    assert "import" not in (ROOT / "market" / "errors.py").read_text().replace("from __future__ import annotations", "")
    # the plug-in registry, the other leaf, imports only the standard library
    imports = [line for line in (ROOT / "market" / "plugins.py").read_text().splitlines()
               if line.startswith(("import ", "from "))]
    assert imports and not [line for line in imports if line.split()[1].split(".")[0] in PACKAGES], imports


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("market/core/engine.py", "from market.apps import cli", "market.core is not allowed to import market.apps"),
        ("market/core/metrics.py", "import market.studies.bench", "market.core is not allowed to import market.studies"),
        ("market/studies/bench.py", "from market.apps.commands import run", "market.studies is not allowed to import market.apps"),
        ("mechanisms/greedy.py", "from market.core import engine", "mechanisms is not allowed to import market.core"),
        ("scenarios/synthetic.py", "import agents", "scenarios is not allowed to import agents"),
        ("agents/user.py", "from market.studies import audit", "agents is not allowed to import market.studies"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(tmp_path, module, line, expected):
    repo = _copy(tmp_path)
    path = repo / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(repo)
    assert result.returncode != 0
    assert expected in result.stdout, result.stdout
