"""``market poa``: the price of anarchy of a strategic population, per mechanism."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main
from market.core.runner import run_scenario
from market.studies import poa
from scenarios.config import load

ROOT = Path(__file__).resolve().parents[1]
MECHANISMS = ["first_price", "mohaf"]
SEEDS = [1, 2]
ROUNDS = 3


def _scenario_file(tmp: Path, users: str) -> Path:
    """``default`` with its ``[users]`` table replaced by ``users`` (TOML lines)."""
    text = (ROOT / "scenarios" / "default.toml").read_text()
    text = re.sub(r"^(shading_share|shading_factor|mix)\s*=.*\n", "", text, flags=re.MULTILINE)
    text = text.replace("[users]\n", f"[users]\n{users}\n")
    path = tmp / "market.toml"
    path.write_text(text)
    return path


STATIONARY_MECHANISMS = ["mohaf", "second_price"]
STATIONARY_ROUNDS = 12


def _stationary_file(tmp: Path, clearing: bool = True) -> Path:
    """The shipped ``stationary`` scenario cut to 12 rounds and two mechanisms (its data files copied beside it)."""
    text = (ROOT / "scenarios" / "stationary.toml").read_text()
    text = re.sub(r"^rounds\s*=.*$", f"rounds = {STATIONARY_ROUNDS}", text, count=1, flags=re.MULTILINE)
    text = re.sub(r"^mechanisms\s*=.*$", f"mechanisms = {STATIONARY_MECHANISMS!r}".replace("'", '"'), text, count=1,
                  flags=re.MULTILINE)
    (tmp / "data").mkdir(exist_ok=True)
    for name in ("stationary-requests.csv", "stationary-resources.csv"):
        shutil.copyfile(ROOT / "scenarios" / "data" / name, tmp / "data" / name)
    if not clearing:
        text = text.replace("clearing = true", "clearing = false")
    path = tmp / ("stationary.toml" if clearing else "no-clearing.toml")
    path.write_text(text)
    return path


def _argv(scenario: Path | str, out: str, *extra: str) -> list[str]:
    return ["poa", str(scenario), "--out", out, "--seeds", ",".join(map(str, SEEDS)), "--rounds", str(ROUNDS),
            "--mechanisms", ",".join(MECHANISMS), "--quiet", *extra]


@pytest.fixture(scope="module")
def strategic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Half the users shade at 0.5, a fifth pace; with a short stationary market; written with 1 and with 2 workers."""
    base = tmp_path_factory.mktemp("poa")
    path = _scenario_file(base, "mix = { truthful = 0.3, shading = 0.5, pacing = 0.2 }\nshading_factor = 0.5")
    stationary = _stationary_file(base)
    outs = {}
    with pytest.MonkeyPatch.context() as mp:
        for workers in (1, 2):
            where = base / f"w{workers}"
            where.mkdir()
            mp.chdir(where)  # the same relative --out: the report's command line is the same text
            assert main(_argv(path, "out", "--workers", str(workers), "--stationary", str(stationary))) == 0
            outs[workers] = where / "out"
    return {"path": path, "out": outs[1], "out2": outs[2], "base": base, "stationary": stationary}


def test_the_scenario_file_is_the_intended_population(strategic):
    sc = load(strategic["path"])
    assert sc.users.mix == {"truthful": 0.3, "shading": 0.5, "pacing": 0.2} and sc.users.shading_factor == 0.5
    assert not poa.is_truthful(sc)


def test_truthful_welfare_is_that_of_a_direct_run_of_the_truthful_population(strategic, tmp_path):
    table = pd.read_csv(strategic["out"] / "poa.csv")
    assert table["mechanism"].tolist() == MECHANISMS and (table["seeds"] == len(SEEDS)).all()
    sc = load(strategic["path"]).replace(rounds=ROUNDS, seeds=SEEDS, mechanisms=MECHANISMS, oracle=False)
    for population, users in (("truthful", sc.users.replace(mix={"truthful": 1.0})), ("strategic", sc.users)):
        run_scenario(sc.replace(users=users), tmp_path / population)
        rounds = pd.read_parquet(tmp_path / population / "rounds.parquet")
        per_run = rounds.groupby(["mechanism", "seed"], sort=False)["welfare"].sum()
        expected = per_run.groupby("mechanism", sort=False).mean()
        for _, row in table.iterrows():
            assert row[f"welfare_{population}"] == pytest.approx(expected[row["mechanism"]], rel=1e-12, abs=1e-12)
        # the raw rounds tables are the runs' own rounds tables
        raw = pd.read_parquet(strategic["out"] / f"rounds_{population}.parquet")
        pd.testing.assert_frame_equal(raw.reset_index(drop=True), rounds[raw.columns].reset_index(drop=True))


def test_poa_is_the_mean_of_the_paired_ratios_and_its_interval_contains_it(strategic):
    table = pd.read_csv(strategic["out"] / "poa.csv").set_index("mechanism")
    runs = pd.read_csv(strategic["out"] / "poa_runs.csv")
    assert not table.isna().any().any()  # two seeds: every cell filled
    for mech, g in runs.groupby("mechanism"):
        ratio = g["welfare_strategic"] / g["welfare_truthful"]
        np.testing.assert_allclose(g["poa"], ratio, rtol=1e-15)
        row = table.loc[mech]
        assert row["poa"] == pytest.approx(ratio.mean(), rel=1e-15)
        assert row["poa_of_means"] == pytest.approx(g["welfare_strategic"].sum() / g["welfare_truthful"].sum(), rel=1e-15)
        for key in ("poa", "value_poa"):
            assert row[f"{key}_low"] <= row[key] <= row[f"{key}_high"]
    # pay-your-bid with half the users bidding half their value loses welfare
    assert table.loc["first_price", "poa"] < 1
    assert table.loc["first_price", "bid_to_value_strategic"] < 1


def test_output_is_byte_identical_for_one_and_two_workers(strategic):
    one, two = strategic["out"], strategic["out2"]
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir())
    assert {"poa.csv", "poa_runs.csv", "poa.md", "poa.png", "welfare.png", "rounds_strategic.parquet",
            "rounds_truthful.parquet", "manifest.json", ".market-output", "learning.png", "trajectories.png",
            "users_strategic.parquet", "pacing.csv", "stationary.csv", "stationary.png",
            "rounds_stationary.parquet"} <= set(names)
    for name in names:
        if name != "manifest.json":  # wall time and workers
            assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_regenerate_rebuilds_the_same_files_from_the_rounds_tables(strategic):
    again = strategic["base"] / "again"
    poa.regenerate(strategic["out"], again)
    names = sorted(p.name for p in strategic["out"].iterdir() if p.name != "manifest.json")
    assert "stationary.png" in names and "pacing.csv" in names
    for name in names:
        assert (again / name).read_bytes() == (strategic["out"] / name).read_bytes(), name


def test_an_all_truthful_population_has_a_poa_of_exactly_one(tmp_path, capsys):
    path = _scenario_file(tmp_path, "shading_share = 0")
    assert poa.is_truthful(load(path))
    mechanisms = "first_price,random,second_price"  # random: its own draws must pair up too
    assert main(["poa", str(path), "--out", str(tmp_path / "out"), "--seeds", "1,2", "--rounds", "2",
                 "--mechanisms", mechanisms, "--quiet"]) == 0
    assert "all truthful: every ratio is 1" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "poa.csv")
    assert table["mechanism"].tolist() == mechanisms.split(",")
    for key in ("poa", "poa_low", "poa_high", "poa_of_means", "value_poa", "value_poa_low", "value_poa_high"):
        assert (table[key] == 1.0).all(), key
    assert (table["welfare_strategic"] == table["welfare_truthful"]).all()
    assert (table["welfare_truthful"] > 0).all()
    report = (tmp_path / "out" / "poa.md").read_text()
    assert "already all truthful" in report and "has no pacing users" in report
    assert "Tatonnement on a stationary market" not in report and not (tmp_path / "out" / "stationary.csv").exists()


def test_settled_bids_revenue_and_fairness_are_the_runs_values(strategic):
    table = pd.read_csv(strategic["out"] / "poa.csv").set_index("mechanism")
    rounds = {p: pd.read_parquet(strategic["out"] / f"rounds_{p}.parquet") for p in poa.POPULATIONS}
    for mech, row in table.iterrows():
        s, t = (rounds[p][rounds[p]["mechanism"] == mech] for p in poa.POPULATIONS)
        last = s[s["round"] >= s["round"].max() - 9].groupby("seed")["bid_to_value"].mean()  # 3 rounds: all of them
        assert row["bid_to_value_last10"] == pytest.approx(last.mean(), rel=1e-12)
        rev_s, rev_t = s.groupby("seed")["revenue"].sum(), t.groupby("seed")["revenue"].sum()
        assert row["revenue_strategic"] == pytest.approx(rev_s.mean(), rel=1e-12)
        assert row["revenue_ratio"] == pytest.approx((rev_s / rev_t).mean(), rel=1e-12)
        assert row["jain_users_truthful"] == pytest.approx(t.groupby("seed")["jain_users"].mean().mean(), rel=1e-12)
        for key in ("revenue_strategic", "revenue_truthful", "revenue_ratio", "jain_users_ratio", "bid_to_value_last10"):
            assert row[f"{key}_low"] <= row[key] <= row[f"{key}_high"], key
    assert table.loc["first_price", "bid_to_value_last10"] < 1  # the shaders bid half their value
    report = (strategic["out"] / "poa.md").read_text()
    assert "## Learning: bids, revenue and fairness" in report and "![trajectories](trajectories.png)" in report


def test_pacing_summary_of_a_hand_made_users_table():
    # run (m, 1): pacer 1 spends 3 of 4, pacer 2 spends 5 of 4 (over from round 1), user 3 learns (no budget);
    # run (m, 2): no pacer (left out of the pacing table)
    rows = [("m", 1, 0, 1, "pacing", 1.0, 4.0), ("m", 1, 1, 1, "pacing", 2.0, 4.0),
            ("m", 1, 0, 2, "pacing", 3.0, 4.0), ("m", 1, 1, 2, "pacing", 2.0, 4.0),
            ("m", 1, 0, 3, "learning", 7.0, None), ("m", 1, 1, 3, "learning", 1.0, None),
            ("m", 2, 0, 3, "learning", 1.0, None)]
    users = pd.DataFrame(rows, columns=["mechanism", "seed", "round", "user_id", "strategy", "spend", "run_budget"])
    users = users.sort_values(["mechanism", "seed", "round", "user_id"], kind="stable", ignore_index=True)
    users["spend_total"] = users.groupby(["mechanism", "seed", "user_id"])["spend"].cumsum()
    users["run_budget"] = users["run_budget"].astype("Float64")
    users = users.assign(requests=1, wins=1, utility=0.5, bid_scale=1.0)
    summary = poa.user_summary(users).set_index(["seed", "user_id"])
    assert summary.loc[(1, 1), "spend_total"] == 3.0 and summary.loc[(1, 2), "spend_total"] == 5.0
    assert summary["over_budget"].tolist() == [False, True, False, False]
    assert summary.loc[(1, 3), "spend"] == 8.0 and summary.loc[(1, 3), "requests"] == 2
    assert pd.isna(summary.loc[(1, 3), "run_budget"]) and summary.loc[(1, 1), "run_budget"] == 4.0
    pacing = poa.pacing_table(poa.user_summary(users))
    assert pacing.columns.tolist() == poa.PACING_COLUMNS and len(pacing) == 1
    row = pacing.iloc[0]
    assert row["pacing_users"] == 2 and row["over_budget_users"] == 1 and bool(row["over_budget"])
    assert row["spend_share_min"] == 0.75 and row["spend_share_max"] == 1.25
    assert row["spend_share_aggregate"] == 8.0 / 8.0
    assert poa.pacing_table(poa.user_summary(users[users["strategy"] != "pacing"])).empty


def test_pacing_table_of_the_study_matches_its_users(strategic):
    users = pd.read_parquet(strategic["out"] / "users_strategic.parquet")
    pacing = pd.read_csv(strategic["out"] / "pacing.csv")
    assert len(users) == users[["mechanism", "seed", "user_id"]].drop_duplicates().shape[0]
    pacers = users[users["run_budget"].notna()]
    assert (pacers["strategy"] == "pacing").all() and len(pacers) > 0
    assert len(pacing) == len(MECHANISMS) * len(SEEDS)
    for _, row in pacing.iterrows():
        g = pacers[(pacers["mechanism"] == row["mechanism"]) & (pacers["seed"] == row["seed"])]
        share = g["spend_total"] / g["run_budget"].astype(float)
        assert row["pacing_users"] == len(g) and row["spend_share_min"] == pytest.approx(share.min(), rel=1e-12)
        assert row["spend_share_aggregate"] == pytest.approx(g["spend_total"].sum() / g["run_budget"].sum(), rel=1e-12)
    assert not pacing["over_budget"].any()  # a pacer never pays more than its run budget
    assert "## Pacing" in (strategic["out"] / "poa.md").read_text()


def test_stationary_market_price_gap_first_and_last_rounds(strategic):
    table = pd.read_csv(strategic["out"] / "stationary.csv")
    rounds = pd.read_parquet(strategic["out"] / "rounds_stationary.parquet")
    assert table["mechanism"].tolist() == STATIONARY_MECHANISMS and rounds["round"].nunique() == STATIONARY_ROUNDS
    assert (table["window"] == STATIONARY_ROUNDS // 2).all()  # 12 rounds: two windows of 6 that do not overlap
    for _, row in table.iterrows():
        gap = rounds[rounds["mechanism"] == row["mechanism"]].sort_values("round")["price_gap"].to_numpy()
        assert row["price_gap_first"] == pytest.approx(gap[:6].mean(), rel=1e-12)
        assert row["price_gap_last"] == pytest.approx(gap[-6:].mean(), rel=1e-12)
        assert row["ratio"] == pytest.approx(gap[-6:].mean() / gap[:6].mean(), rel=1e-12)
        assert row["ratio"] < 1 and row["halved"] == (row["ratio"] <= 0.5)  # the gap falls from the start
    report = (strategic["out"] / "poa.md").read_text()
    assert "## Tatonnement on a stationary market" in report and "![price gap" in report
    manifest = (strategic["out"] / "manifest.json").read_text()
    assert f"--stationary {strategic['stationary']}" in manifest


def test_stationary_table_edge_cases():
    rounds = pd.DataFrame({"mechanism": "m", "seed": np.repeat([1, 2], 4), "round": np.tile(np.arange(4), 2),
                           "price_gap": [0.0, 0.0, 1.0, 1.0, 4.0, 4.0, 1.0, 1.0]})
    row = poa.stationary_table(rounds).iloc[0]
    assert row["window"] == 2 and row["seeds"] == 2  # 4 rounds: windows of 2
    assert row["price_gap_first"] == 2.0 and row["price_gap_last"] == 1.0
    assert row["ratio"] == pytest.approx((1.0 + 0.25) / 2)  # seed 1's first window is 0: ratio 1 by convention
    assert row["ratio_low"] <= row["ratio"] <= row["ratio_high"] and not row["halved"]


@pytest.mark.parametrize("stationary", ["no-clearing", "no-such-scenario"])
def test_a_bad_stationary_scenario_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, stationary):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    arg = str(_stationary_file(scenarios, clearing=False)) if stationary == "no-clearing" else stationary
    out = tmp_path / "out"
    assert main(["poa", "default", "--out", str(out), "--seeds", "1", "--rounds", "2", "--mechanisms", "first_price",
                 "--stationary", arg, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert ("clearing = false" if stationary == "no-clearing" else stationary) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenarios"]


def test_truthful_population_changes_only_the_users_strategies():
    sc = load("default").replace(users=load("default").users.replace(mix={"learning": 0.5, "pacing": 0.5},
                                                                          shading_share=0))
    t = poa.truthful_population(sc)
    assert t.users.mix == {"truthful": 1.0} and t.users.shading_share == 0
    assert poa.is_truthful(t) and not poa.is_truthful(sc)
    assert poa.population_mix(load("default")) == {"shading": 0.2, "truthful": 0.8}
    a, b = sc.to_dict(), t.to_dict()
    a.pop("users"), b.pop("users")
    a.pop("owners", None), b.pop("owners", None)
    assert a == b
    assert poa.truthful_population(t) == t


def test_the_truthful_counterpart_of_a_plug_in_population_drops_its_parameters():
    """[users.params.<plug-in>] named a strategy the truthful mix no longer has: refused as a typo (helper-52)."""
    from agents.strategies import register_strategy, unregister_strategy
    from market.core.model import user_population

    @register_strategy("poa_plug_in")
    class PlugIn:
        name = "poa_plug_in"

        def __init__(self, factor: float = 1.0) -> None:
            self.factor = factor

        def bid_scale(self, history):
            return np.full(history.users.size, self.factor)

    try:
        sc = load("default")
        sc = sc.replace(users=sc.users.replace(mix={"truthful": 0.5, "poa_plug_in": 0.5}, shading_share=0,
                                               params={"poa_plug_in": {"factor": 0.5}}))
        assert dict(user_population(sc)[1]["poa_plug_in"]) == {"factor": 0.5}
        t = poa.truthful_population(sc)
        assert t.users.params is None and t.users.mix == {"truthful": 1.0}
        assert [name for name, _ in user_population(t)[0]] == ["truthful"]
    finally:
        unregister_strategy("poa_plug_in")


@pytest.mark.skipif(not hasattr(load("default"), "owners"), reason="scenarios have no [owners] table yet")
def test_truthful_population_fixes_the_owners_reserves():
    sc = load("default")
    sc = sc.replace(owners=sc.owners.replace(strategy="learning"))
    assert not poa.is_truthful(sc.replace(users=sc.users.replace(shading_share=0)))
    assert poa.truthful_population(sc).owners.strategy == "fixed"


def test_a_truthful_welfare_of_zero_gives_a_ratio_of_one_never_nan():
    np.testing.assert_array_equal(poa.paired_ratios([0.0, 2.0, 3.0], [0.0, 0.0, 2.0]), [1.0, 1.0, 1.5])
    assert poa.ratio_of_means([0.0, 0.0], [0.0, 0.0]) == 1.0

    def rounds(welfare: list[float]) -> pd.DataFrame:
        n = len(welfare)
        return pd.DataFrame({"mechanism": ["m"] * n, "seed": [1, 1, 2, 2][:n], "round": [0, 1, 0, 1][:n],
                             "welfare": welfare, "value_welfare": welfare, "revenue": [1.0] * n, "jain": [0.5] * n,
                             "bid_to_value": [1.0] * n, "jain_users": [0.5] * n})

    runs = poa.runs_table({"strategic": rounds([0.0, 1.0, 3.0, 3.0]), "truthful": rounds([0.0, 0.0, 2.0, 2.0])})
    assert runs["poa"].tolist() == [1.0, 1.5]
    table = poa.poa_table(runs)
    assert not table.isna().any().any()
    row = table.iloc[0]
    assert row["poa"] == 1.25 and row["poa_of_means"] == 7.0 / 4.0 and row["zero_truthful_seeds"] == 1
    assert row["poa_low"] <= row["poa"] <= row["poa_high"]


@pytest.mark.parametrize(("argv", "message"), [
    (["poa", "no-such-scenario", "--out", "{out}"], "no-such-scenario"),
    (["poa", "default", "--out", "{out}", "--mechanisms", "first_price,nope"], "nope"),
    (["poa", "default", "--out", "{out}", "--rounds", "0"], "rounds"),
    (["poa", "default", "--out", "{out}", "--workers", "0"], "workers"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main([a.format(out=out) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds", ["x", "1,1"])
def test_bad_input_exits_2_through_argparse_too(tmp_path, capsys, seeds):
    with pytest.raises(SystemExit) as exc:
        main(["poa", "default", "--out", str(tmp_path / "out"), "--seeds", seeds])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--seeds" in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
    assert list(tmp_path.iterdir()) == []

