"""``--rounds R`` plays the first R rounds of the scenario's market; the market spans the horizon."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main
from market.core.runner import market_tables, run_scenario
from scenarios.config import load
from scenarios.sources import build_market
from tests.conftest import read_run

KEYS = ["mechanism", "seed", "round"]


def _run(tmp_path: Path, name: str, rounds: int) -> tuple[dict[str, pd.DataFrame], dict]:
    out = tmp_path / name
    args = ["run", "tight", "--out", str(out), "--mechanisms", "mohaf,greedy,second_price", "--seeds", "1,2",
            "--rounds", str(rounds), "--no-oracle", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no request of the market is reported as late
        assert main(args) == 0
    return read_run(out), json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[dict[str, pd.DataFrame], dict]]:
    tmp = tmp_path_factory.mktemp("horizon")
    return {r: _run(tmp, f"r{r}", r) for r in (5, 30, 34)}


def test_fewer_rounds_are_the_first_rounds_of_the_full_run(runs):
    short, manifest = runs[5]
    full, _ = runs[30]
    assert manifest["rounds"] == 5 and manifest["scenario"]["rounds"] == 5
    assert manifest["scenario"]["horizon"] == 30  # the scenario file's rounds
    assert len(short["rounds"]) == 3 * 2 * 5
    head = full["rounds"].groupby(["mechanism", "seed"], sort=False).head(5).reset_index(drop=True)
    pd.testing.assert_frame_equal(short["rounds"], head)
    first = full["allocations"][full["allocations"]["round"] < 5].reset_index(drop=True)
    pd.testing.assert_frame_equal(short["allocations"], first)
    # the same market: every request of the 30 rounds, arrivals over all of them
    pd.testing.assert_frame_equal(short["requests"], full["requests"])
    pd.testing.assert_frame_equal(short["resources"], full["resources"])
    assert full["requests"]["round"].max() == 29


def test_more_rounds_than_the_horizon_play_on_past_the_last_arrival(runs):
    longer, manifest = runs[34]
    full, _ = runs[30]
    assert (manifest["scenario"]["rounds"], manifest["scenario"]["horizon"]) == (34, 30)
    head = longer["rounds"].groupby(["mechanism", "seed"], sort=False).head(30).reset_index(drop=True)
    pd.testing.assert_frame_equal(head, full["rounds"])
    pd.testing.assert_frame_equal(longer["requests"], full["requests"])
    after = longer["rounds"][longer["rounds"]["round"] >= 30]
    assert len(after) == 3 * 2 * 4
    patience = load("tight").settlement.patience
    # no arrivals: only requests still within their patience are in the book, then none
    waiting = after[after["round"] < 30 + patience]
    assert (waiting["n_requests"] > 0).all()
    assert (after[after["round"] >= 30 + patience]["n_requests"] == 0).all()
    assert (after[after["round"] >= 30 + patience]["n_allocated"] == 0).all()


def test_the_market_depends_on_the_horizon_not_on_the_rounds_played():
    sc = load("tight")
    market = build_market(sc, 1)
    for rounds in (1, 5, 60):
        other = build_market(sc.replace(rounds=rounds), 1)
        pd.testing.assert_frame_equal(other.requests, market.requests)
        pd.testing.assert_frame_equal(other.resources, market.resources)
    squeezed = build_market(sc.replace(rounds=5, horizon=5), 1)  # asked for: a market over 5 rounds
    assert squeezed.requests["round"].max() == 4 and len(squeezed.requests) == len(market.requests)
    # capacity is sized for the demand held per round, so 6x the arrivals per round, 6x capacity
    ratio = squeezed.resources["cpu"].sum() / market.resources["cpu"].sum()
    assert 4 < ratio < 8


def test_only_requests_past_the_horizon_and_the_rounds_played_are_late(tmp_path: Path, monkeypatch):
    reqs = pd.read_csv(Path(load("audit-unit").market["requests"]))
    assert reqs["round"].max() < 3
    reqs.loc[reqs.index[:4], "round"] = [3, 3, 5, 9]  # beyond the scenario's 3 rounds
    folder = tmp_path / "sc"
    folder.mkdir()
    reqs.to_csv(folder / "requests.csv", index=False)
    res = Path(load("audit-unit").market["resources"])
    (folder / "resources.csv").write_bytes(res.read_bytes())
    text = Path(load("audit-unit").path).read_text()
    text = text.replace("data/audit-unit-requests.csv", "requests.csv").replace("data/audit-unit-resources.csv", "resources.csv")
    (folder / "s.toml").write_text(text)
    sc = load(folder / "s.toml")

    def late(scenario, seeds=(1,)) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            market_tables(scenario, seeds)
        return [str(w.message) for w in caught]

    assert late(sc) == [f"{sc.name}: 4 requests arrive after the last round (2) and are ignored"]
    # fewer rounds played: the requests of rounds 1-2 are not reached, but they are no error
    assert late(sc.replace(rounds=1)) == [f"{sc.name}: 4 requests arrive after the last round (2) and are ignored"]
    # more rounds played than the horizon: requests of rounds 3-5 are played, 9 is still late
    assert late(sc.replace(rounds=6)) == [f"{sc.name}: 1 requests arrive after the last round (5) and are ignored"]
    assert late(sc.replace(rounds=10)) == []
    # one warning for every seed of a run (it was repeated per seed, without naming it)
    assert late(sc, (1, 2, 3)) == [f"{sc.name}: 4 requests arrive after the last round (2) and are ignored"]
    import market.core.runner as runner

    kept = iter([2, 0, 5])  # seeds 1, 2, 3 with 2, none and all 4 of the late requests
    real = runner.late_requests
    monkeypatch.setattr(runner, "late_requests", lambda market, scenario: real(market, scenario)[: next(kept)])
    expected = f"{sc.name}: requests (2 in seed 1, 4 in seed 3) arrive after the last round (2) and are ignored"
    assert late(sc, (1, 2, 3)) == [expected]


def test_mohaf_reauction_covers_the_horizon_or_the_rounds_played():
    sc = load("google2011-mohaf")
    n = 3553
    assert sc.horizon == 10
    assert len(build_market(sc.replace(rounds=2), 0).requests) == 10 * n  # the horizon's copies
    longer = build_market(sc.replace(rounds=12), 0).requests  # the instance arrives in every round played
    assert len(longer) == 12 * n and np.array_equal(np.unique(longer["round"]), np.arange(12))


def test_a_sweeps_rounds_keep_each_scenarios_horizon(tmp_path: Path):
    from market.studies.sweep import load_sweep

    (tmp_path / "s.toml").write_text('scenarios = ["tight", "default"]\nrounds = 3\n')
    sweep = load_sweep(tmp_path / "s.toml")
    assert [(sc.rounds, sc.horizon) for sc in sweep.scenarios] == [(3, 30), (3, 20)]


def test_bid_prices_count_the_rounds_left_in_the_market_not_in_the_run(tmp_path: Path):
    """MOHAF's bid prices cut durations at the horizon, so ``--rounds 2`` is still the full run's prefix.

    ``audit-unit`` turns them on (``hold = 0.5``) and its requests hold 1-6 rounds of a
    3-round market: cut at the rounds played, round 1 would see 1 round left, not 2.
    """
    sc = load("audit-unit").replace(mechanisms=["mohaf"], oracle=False)
    assert sc.mechanism_params["mohaf"]["hold"] > 0
    run_scenario(sc, tmp_path / "full")
    run_scenario(sc.replace(rounds=2), tmp_path / "short")
    full, short = read_run(tmp_path / "full"), read_run(tmp_path / "short")
    pd.testing.assert_frame_equal(short["rounds"], full["rounds"][full["rounds"]["round"] < 2].reset_index(drop=True))
    pd.testing.assert_frame_equal(short["allocations"],
                                  full["allocations"][full["allocations"]["round"] < 2].reset_index(drop=True))
