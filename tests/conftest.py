"""Shared fixtures: small scenarios and a finished run of them."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from market.core.runner import run_scenario
from scenarios.config import load

DATA = Path(__file__).parent / "data"
os.environ.setdefault("MARKET_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


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
