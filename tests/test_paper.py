"""MOHAF ``paper`` mode reproduces Table 1 bit for bit (values recomputed from the authors' code)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from market.studies import paper


@pytest.fixture(scope="module")
def model() -> paper.PaperModel:
    return paper.run()


@pytest.fixture(scope="module")
def metrics(model) -> dict[str, dict]:
    return {name: r.metrics(model.instance) for name, r in model.results.items()}


def test_inputs_match_the_trace(model):
    inst = model.instance
    assert (inst.n, inst.m) == (3553, 888)
    assert np.bincount(inst.scheduling_class.astype(int)).tolist() == [747, 955, 1123, 728]
    assert np.unique(inst.job_id).size == 3553 and np.unique(inst.user).size == 453
    assert (inst.priority == 8).all()
    np.testing.assert_allclose(np.unique(inst.budget), [40, 46 + 2 / 3, 53 + 1 / 3, 60])


def test_resources_and_locations_follow_the_stream(model):
    inst = model.instance
    res0 = [inst.capacity[0], inst.cost[0], *inst.resource_xy[0], inst.availability[0], inst.reliability[0], inst.energy[0]]
    np.testing.assert_allclose(res0, [0.8197134, 0.3125054, -44.994136, -55.357852, 0.9868236, 0.9838350, 0.8676539], rtol=1e-6)
    np.testing.assert_allclose(inst.request_xy[0], [35.004916, 32.015718], rtol=1e-7)
    assert int((inst.capacity >= 2 / 3).sum()) == 585
    assert inst.cost.sum() == pytest.approx(488.75138, abs=5e-6)
    assert inst.energy.mean() == pytest.approx(0.752934, rel=1e-6)
    assert inst.owner[51] == 1


# the exact stream (seed 42), 1e-6 relative
EXACT = {
    "mohaf": (0.2625074, 56.66452, 0.9997249),
    "first_price": (0.1380833, 161.55576, 0.9354266),
    "greedy": (0.1849479, 161.55576, 1.0),
    "random": (0.1009427, 105.21633, 0.9231591),
}


@pytest.mark.parametrize("mech", list(EXACT))
def test_exact_stream_values(metrics, mech):
    eff, rev, jw = EXACT[mech]
    m = metrics[mech]
    assert m["allocated"] == 888
    assert m["efficiency"] == pytest.approx(eff, rel=1e-6)
    assert m["revenue"] == pytest.approx(rev, rel=1e-6)
    assert m["jain_winners"] == pytest.approx(jw, rel=1e-6, abs=1e-12)
    assert m["satisfaction"] == pytest.approx(888 / 3553, rel=1e-12)
    assert m["utilization"] == 1.0


def test_published_table1_rounds_out(metrics):
    m = metrics
    assert 0.262 <= m["mohaf"]["efficiency"] <= 0.264
    assert m["greedy"]["efficiency"] == pytest.approx(0.185, abs=0.001)
    assert m["first_price"]["efficiency"] == pytest.approx(0.138, abs=0.003)
    assert m["random"]["efficiency"] == pytest.approx(0.101, abs=0.003)
    for mech in EXACT:
        assert round(m[mech]["satisfaction"], 3) == 0.250
    assert m["greedy"]["revenue"] == pytest.approx(161.56, abs=0.01)
    assert m["first_price"]["revenue"] == pytest.approx(161.56, abs=0.01)
    assert m["mohaf"]["revenue"] == pytest.approx(56.66, abs=0.01)
    assert m["random"]["revenue"] == pytest.approx(105.22, abs=0.01)
    assert round(m["mohaf"]["jain_winners"], 3) == 1.000
    assert round(m["greedy"]["jain_winners"], 3) == 1.000
    assert m["first_price"]["jain_winners"] == pytest.approx(0.935, abs=0.005)
    assert m["random"]["jain_winners"] == pytest.approx(0.923, abs=0.005)


def test_mohaf_diagnostics(model):
    inst = model.instance
    r = model.results["mohaf"]
    assert r.info["bids"] == 2_168_331 == 888 * (747 + 955) + 585 * 1123
    assert model.results["first_price"].info["draws"] == 2_168_331
    assert np.bincount(inst.scheduling_class[r.accepted].astype(int), minlength=4).tolist() == [446, 319, 123, 0]
    u = r.utility[r.accepted]
    assert u.mean() == pytest.approx(1.05033, rel=1e-5)
    assert u.min() == pytest.approx(1.01208, rel=1e-5) and u.max() == pytest.approx(1.08629, rel=1e-5)
    # revenue identity for the cost-priced baselines: (4/9) sum_{C>=2/3} cost + (1/9) sum_{C<2/3} cost
    big = inst.capacity >= 2 / 3
    expected = 4 / 9 * inst.cost[big].sum() + 1 / 9 * inst.cost[~big].sum()
    assert model.results["greedy"].metrics(inst)["revenue"] == pytest.approx(expected, rel=1e-12)


def test_common_utility_exposes_the_real_margin(model):
    inst = model.instance
    scores = paper.common_scores(inst, model.results, paper.pair_utility(inst)).set_index("mechanism")
    assert scores.loc["mohaf", "efficiency_common"] == pytest.approx(0.262507, abs=1e-6)
    for mech in ("first_price", "greedy", "random"):
        assert 0.24306 <= scores.loc[mech, "efficiency_common"] <= 0.24310
    for mech in EXACT:
        assert 0.2495 <= round(scores.loc[mech, "jain_all_common"], 4) <= 0.2499
        assert scores.loc[mech, "energy_eff"] == pytest.approx(0.752934, rel=1e-6)
    assert scores.loc["hungarian_opt", "welfare_common"] == pytest.approx(932.83789, rel=1e-8)
    assert scores.loc["mohaf", "common_over_opt"] >= 0.9998


def test_ablation_full_and_cost_only_on_the_google_instance(model):
    inst = model.instance
    assert paper.mohaf(inst, paper.TEXT_WEIGHTS).metrics(inst)["efficiency"] == pytest.approx(0.268620, abs=1e-6)
    assert paper.mohaf(inst, (1.0, 0.0, 0.0, 0.0)).metrics(inst)["efficiency"] == pytest.approx(0.249775, abs=1e-6)


@pytest.mark.parametrize("seed", [1, 7])
def test_other_streams_stay_in_the_bands(seed):
    inst = paper.build_instance(paper.load_jobs(), random.Random(seed))
    rng = random.Random(seed + 1000)
    m = {r.mechanism: r.metrics(inst) for r in (paper.mohaf(inst), paper.first_price(inst, rng), paper.random_allocation(inst, rng))}
    assert 0.262 <= m["mohaf"]["efficiency"] <= 0.2635
    assert m["first_price"]["efficiency"] == pytest.approx(0.1375, abs=0.004)
    assert m["first_price"]["jain_winners"] == pytest.approx(0.9356, abs=0.007)
    assert m["random"]["efficiency"] == pytest.approx(0.1000, abs=0.003)
    assert m["random"]["jain_winners"] == pytest.approx(0.923, abs=0.007)
    assert 95 <= m["random"]["revenue"] <= 110


# --- market reproduce mohaf-table1 ---------------------------------------------------


def test_lp_bound_is_above_the_proven_optimum():
    from market.core.model import MarketModel
    from market.studies.reproduce import round_bound
    from scenarios.config import load
    from tests.conftest import DATA

    for seed in (1, 2):
        model = MarketModel(load(DATA / "small.toml"), "optimal", rng=seed)
        model.step()
        bound = round_bound(model, model.record)
        assert model.record.outcome.proven_optimal
        opt = model.record.outcome.welfare
        assert bound.value >= opt - 1e-7
        assert bound.lp <= bound.value + 1e-9
        assert bound.value <= 1.25 * opt  # the LP relaxation is not vacuous


def test_reproduce_writes_table1_report_and_plots(tmp_path):
    import pandas as pd

    from market.core.io import sha256_file
    from market.studies.reproduce import TABLE1_COLUMNS, reproduce_table1

    out = tmp_path / "t1"
    manifest = reproduce_table1(out, seeds=[0, 1], rounds=1, mechanisms=["mohaf", "random"], bounds="first")
    t1 = pd.read_csv(out / "table1.csv")
    assert list(t1.columns) == TABLE1_COLUMNS
    assert t1["source"].tolist() == ["published"] * 4 + ["paper"] * 4 + ["consistent"] * 3
    paper_rows = t1[t1["source"] == "paper"].set_index("mechanism")
    for mech, (eff, rev, jw) in EXACT.items():
        assert paper_rows.loc[mech, "efficiency"] == pytest.approx(eff, rel=1e-6)
        assert paper_rows.loc[mech, "revenue"] == pytest.approx(rev, rel=1e-6)
        assert paper_rows.loc[mech, "jain_winners"] == pytest.approx(jw, rel=1e-6)
    assert t1[t1["source"] == "published"]["jain_all"].isna().all()
    cons = t1[t1["source"] == "consistent"].set_index("mechanism")
    assert cons.index.tolist() == ["mohaf", "random", "optimal"]
    # every mechanism is below the upper bound, and jain_all is over all requests
    assert (cons.loc[["mohaf", "random"], "efficiency"] < cons.loc["optimal", "efficiency"]).all()
    assert (cons.loc[["mohaf", "random"], "jain_all"] < cons.loc[["mohaf", "random"], "jain_winners"]).all()
    assert cons.loc["optimal", ["revenue", "satisfaction", "jain_winners", "jain_all"]].isna().all()
    ci = pd.read_csv(out / "table1_ci.csv")
    eff = ci[(ci["metric"] == "efficiency")].set_index("mechanism")
    assert (eff["ci_low"] <= eff["mean"]).all() and (eff["mean"] <= eff["ci_high"]).all() and (eff["n"] == 2).all()
    assert {"mohaf_margin", "paired_p"} <= set(ci.columns)
    text = (out / "report.md").read_text()
    for needle in ("| MOHAF | efficiency | 0.2630 | 0.2625 |", "ALG/UB", "Jain over winners only", "CC-BY 4.0"):
        assert needle in text
    for png in ("efficiency.png", "jain.png", "rounds.png"):
        assert (out / png).stat().st_size > 10_000
    for name, digest in manifest["sha256"].items():
        assert sha256_file(out / name) == digest
    assert not list(tmp_path.glob(".t1*"))  # nothing left behind by the atomic write
