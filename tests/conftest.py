"""Shared fixtures: small scenarios and a finished run of them."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from market.core.runner import run_scenario
from scenarios.config import load

DATA = Path(__file__).parent / "data"
os.environ.setdefault("MARKET_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


@contextmanager
def installed_distribution(folder: Path, module: str, source: str, entry_points: str) -> Iterator[Path]:
    """A distribution installed for the block: ``module`` (its ``source``) and a ``.dist-info``
    with ``entry_points`` (the text of an ``entry_points.txt``), on ``sys.path`` meanwhile.

    Afterwards the path and the module are gone again (the caller forgets its registrations).
    """
    (folder / f"{module}.py").write_text(source)
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(module, None)
        importlib.invalidate_caches()


def read_run(out: Path) -> dict[str, pd.DataFrame]:
    """All tables of a run directory."""
    return {p.stem: pd.read_parquet(p) for p in out.glob("*.parquet")}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The small scenario, all mechanisms, oracle on, written to disk once."""
    out = tmp_path_factory.mktemp("small") / "run"
    manifest = run_scenario(load(DATA / "small.toml"), out)
    return out, manifest


@pytest.fixture(scope="session")
def unit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The unit-demand slot scenario with the oracle, written once."""
    out = tmp_path_factory.mktemp("unit") / "run"
    manifest = run_scenario(load(DATA / "unit_demand.toml"), out)
    return out, manifest
