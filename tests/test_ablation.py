"""``market ablation``: exact rescoring, configurations, simplex grid, Pareto front, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main
from market.core.candidates import (
    find_candidates,
    pair_terms,
    pair_utility,
    request_rows,
    resource_rows,
)
from market.core.model import MarketModel
from market.core.runner import run_one
from market.errors import MarketInputError
from market.studies import ablation
from market.studies.ablation import configurations, pareto_front, run_weights, simplex_grid
from scenarios.config import load

DATA = Path(__file__).parent / "data"

#: the small market with state carried across rounds: patience, fairness memory, shading
MEMORY_SCENARIO = (DATA / "small.toml").read_text().replace(
    "[users]", "[settlement]\npatience = 2\nfairness_memory = 0.5\n\n[users]"
).replace("oracle = true", "oracle = false").replace("rounds = 6", "rounds = 4")


@pytest.fixture(scope="module")
def memory_scenario(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("abl") / "memory.toml"
    path.write_text(MEMORY_SCENARIO)
    scenario = load(path)
    assert scenario.settlement.fairness_memory == 0.5
    return scenario


def test_pair_terms_are_the_kernels_utilities():
    """The shared component function gives the candidate kernel's b_ij bit for bit."""
    rng = np.random.default_rng(7)
    n, m = 300, 40
    demand = np.column_stack([rng.uniform(0.01, 0.4, n), rng.uniform(0, 0.4, n)])
    rq = request_rows(
        rng.uniform(-100, 100, n), rng.uniform(-100, 100, n), demand[:, 0], rng.integers(1, 4, n),
        rng.uniform(0.05, 3, n), np.zeros(n), np.zeros(n), np.full(n, np.inf), demand,
    )
    capacity = np.column_stack([rng.uniform(0.5, 1, m), rng.uniform(0.5, 1, m)])
    rs = resource_rows(
        rng.uniform(-100, 100, m), rng.uniform(-100, 100, m), rng.uniform(0.3, 0.8, m), rng.uniform(0.9, 1, m),
        rng.uniform(0.9, 1, m), rng.uniform(0, 1, m), np.zeros(m), capacity,
    )
    weights = (0.37, 0.21, 0.29, 0.13)
    cand = find_candidates(rq, demand, rs, capacity, np.arange(m), np.array([0, m]),
                           np.zeros((n, 1), dtype=np.int64), 6, weights, 150.0)
    i, k = np.nonzero(cand.resource >= 0)
    assert i.size > 100
    terms = pair_terms(rq, rs, i, cand.resource[i, k], 150.0)
    assert np.array_equal(pair_utility(terms, *weights[:3]), cand.utility[i, k])
    assert np.all((terms >= 0) & (terms <= 1))


@pytest.mark.parametrize("weights", [(0.4, 0.3, 0.1, 0.2), (0.0, 0.5, 1 / 6, 1 / 3), (1.0, 0.0, 0.0, 0.0)])
def test_rescoring_under_own_weights_reproduces_the_recorded_run(memory_scenario, weights):
    """Own-weight rescoring = the plain run's recorded welfare, efficiency and Jain, exactly."""
    seed = 1
    rows = pd.DataFrame(run_weights(memory_scenario, weights, memory_scenario.weights, seed))
    if weights == memory_scenario.weights:  # the runner's own path
        plain_rounds = run_one(memory_scenario, "mohaf", seed).rounds
    else:
        model = MarketModel(memory_scenario.replace(utility=memory_scenario.utility.replace(weights=weights)), rng=seed)
        model.run_for(memory_scenario.rounds)
        plain_rounds = pd.DataFrame(model.round_records)
    assert len(rows) == memory_scenario.rounds
    assert rows["n_allocated"].sum() > 0
    assert rows["welfare_own"].tolist() == plain_rounds["welfare"].tolist()
    assert rows["efficiency_own"].tolist() == plain_rounds["efficiency"].tolist()
    assert rows["jain_own"].tolist() == plain_rounds["jain"].tolist()
    assert rows["jain_winners_own"].tolist() == plain_rounds["jain_winners"].tolist()
    assert rows["revenue"].tolist() == plain_rounds["revenue"].tolist()
    if weights == memory_scenario.weights:
        assert rows["welfare_common"].tolist() == rows["welfare_own"].tolist()
    else:
        assert not np.allclose(rows["welfare_common"], rows["welfare_own"])


def test_a_wrong_rescoring_is_caught(memory_scenario, monkeypatch):
    """The in-run check is live: a perturbed b_ij makes the run raise, not report."""
    real = ablation.pair_utility
    monkeypatch.setattr(ablation, "pair_utility", lambda terms, a, b, g: real(terms, a, b, g) * (1 + 1e-15) + 1e-15)
    with pytest.raises(RuntimeError, match="rescoring"):
        run_weights(memory_scenario, memory_scenario.weights, memory_scenario.weights, 1)


def test_configurations_are_the_papers_variants():
    confs = {c.name: c.weights for c in configurations((0.4, 0.3, 0.1, 0.2))}
    assert list(confs) == ["Full", "NoCost", "NoQoS", "NoEnergy", "NoFairness", "CostOnly", "FullRun"]
    assert confs["Full"] == (0.4, 0.3, 0.1, 0.2)
    assert confs["CostOnly"] == (1.0, 0.0, 0.0, 0.0)
    assert confs["FullRun"] == (0.3, 0.3, 0.2, 0.2)
    assert np.allclose(confs["NoCost"], (0, 0.5, 1 / 6, 1 / 3))
    assert np.allclose(confs["NoQoS"], (4 / 7, 0, 1 / 7, 2 / 7))
    assert np.allclose(confs["NoEnergy"], (4 / 9, 3 / 9, 0, 2 / 9))
    assert np.allclose(confs["NoFairness"], (0.5, 0.375, 0.125, 0))
    for w in confs.values():
        assert sum(w) == pytest.approx(1.0, abs=1e-12)
    # a term the Full weights already drop: its variant would be Full again
    assert "NoFairness" in {c.name for c in configurations((0.5, 0.5, 0.0, 0.0))}
    assert {c.name for c in configurations((1.0, 0.0, 0.0, 0.0))} == {"Full", "NoQoS", "NoEnergy", "NoFairness",
                                                                     "CostOnly", "FullRun"}


def test_simplex_grid():
    g = simplex_grid(0.1)
    assert g.shape == (286, 4)  # C(13, 3)
    assert np.allclose(g.sum(axis=1), 1.0)
    assert (g >= 0).all()
    assert len({tuple(r) for r in g}) == 286
    assert (0.4, 0.3, 0.1, 0.2) in {tuple(r) for r in g}  # the Full weights are grid points, as floats
    assert (0.3, 0.3, 0.2, 0.2) in {tuple(r) for r in g}
    assert simplex_grid(1.0).shape == (4, 4)
    assert simplex_grid(0.5).shape == (10, 4)
    for bad in (0.3, 0.0, -0.1, 1.5):
        with pytest.raises(MarketInputError, match="grid-step"):
            simplex_grid(bad)


def test_pareto_front_on_a_hand_made_table():
    #             a    b    c    d    e    f    g
    eff = np.array([1.0, 2.0, 0.5, 0.9, 2.0, 1.0, 0.2])
    rev = np.array([1.0, 0.5, 2.0, 0.9, 0.5, 0.8, 2.0])
    # d is dominated by a; f by a (same eff, less revenue); g by c; b and e tie (both stay)
    assert pareto_front(eff, rev).tolist() == [True, True, True, False, True, False, False]
    assert pareto_front(np.array([1.0]), np.array([1.0])).tolist() == [True]
    # a chain: only the top-right corner survives
    assert pareto_front(np.arange(5.0), np.arange(5.0)).tolist() == [False] * 4 + [True]


def test_cli_writes_tables_report_and_plots(tmp_path: Path, capsys):
    out = tmp_path / "abl"
    args = ["ablation", str(DATA / "small.toml"), "--out", str(out), "--seeds", "1,2", "--rounds", "2",
            "--grid-step", "0.5", "--quiet"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert {"ablation.csv", "ablation_runs.csv", "ablation_rounds.csv", "sweep.csv", "sweep_runs.csv",
            "report.md", "ablation.png", "pareto.png", "manifest.json"} <= files
    summary = pd.read_csv(out / "ablation.csv")
    assert summary["config"].tolist()[0] == "Full"
    full = summary.iloc[0]
    assert full["efficiency_own"] == full["efficiency_common"]
    assert full["d_efficiency_common"] == 0.0
    runs = pd.read_csv(out / "ablation_runs.csv")
    assert len(runs) == 7 * 2
    sweep = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    # 10 grid points plus the named configurations not on the grid (CostOnly is)
    assert len(sweep) == 10 + 6
    assert set(sweep["config"]) >= {"Full", "FullRun", "CostOnly"}
    assert sweep["pareto"].tolist() == pareto_front(sweep["efficiency_common"].to_numpy(),
                                                    sweep["revenue"].to_numpy()).tolist()
    assert np.allclose(sweep[["alpha", "beta", "gamma", "delta"]].sum(axis=1), 1.0)
    # the sweep reuses the ablation's runs: same weights, seeds and rounds give the same numbers
    swept_full = sweep[sweep["config"] == "Full"].iloc[0]
    assert swept_full["efficiency_common"] == pytest.approx(full["efficiency_common"], rel=1e-12)
    report = (out / "report.md").read_text()
    assert "Full weights" in report and "Pareto front" in report
    # same arguments, any number of workers: byte-identical tables (ablation only, to keep it quick)
    again = tmp_path / "again"
    assert main([*args[:3], str(again), *args[4:], "--no-sweep", "--workers", "2"]) == 0
    assert not (again / "sweep.csv").exists()
    for name in ("ablation.csv", "ablation_runs.csv", "ablation_rounds.csv"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_cli_with_one_seed(tmp_path: Path, capsys):
    """One seed: no interval and no test, said so; the figure is drawn (it raised on NaN whisker ends)."""
    out = tmp_path / "abl"
    args = ["ablation", str(DATA / "small.toml"), "--out", str(out), "--seeds", "1", "--rounds", "2", "--no-sweep",
            "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    assert (out / "ablation.png").stat().st_size > 0
    summary = pd.read_csv(out / "ablation.csv")
    assert summary["n_seeds"].eq(1).all() and summary["efficiency_common"].notna().all()
    assert "No paired test" in (out / "report.md").read_text()


@pytest.mark.parametrize("extra", [["nope.toml"], [str(DATA / "small.toml"), "--grid-step", "0.3"],
                                   [str(DATA / "small.toml"), "--rounds", "0"]])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, extra):
    out = tmp_path / "abl"
    assert main(["ablation", *extra, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert not out.exists()


def test_a_configuration_equal_to_full_runs_once_as_full(tmp_path: Path):
    """delta = 0 in the scenario: NoFairness is Full itself, so it is run and reported once."""
    scenario = load(DATA / "unit_demand.toml").replace(rounds=1)
    manifest = ablation.run_ablation(scenario, tmp_path / "u", [3, 4], grid_step=None)
    summary = pd.read_csv(tmp_path / "u" / "ablation.csv")
    assert summary["config"].tolist() == ["Full", "NoCost", "NoQoS", "NoEnergy", "CostOnly", "FullRun"]
    assert manifest["runs"] == 6 * 2
    assert not (tmp_path / "u" / "sweep.csv").exists()
