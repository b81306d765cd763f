"""``market poa``: the price of anarchy of a strategic population, per mechanism."""

from __future__ import annotations

import re
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


def _argv(scenario: Path | str, out: str, *extra: str) -> list[str]:
    return ["poa", str(scenario), "--out", out, "--seeds", ",".join(map(str, SEEDS)), "--rounds", str(ROUNDS),
            "--mechanisms", ",".join(MECHANISMS), "--quiet", *extra]


@pytest.fixture(scope="module")
def strategic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Half the users shade at 0.5; the study written with 1 and with 2 workers (same command text)."""
    base = tmp_path_factory.mktemp("poa")
    path = _scenario_file(base, "mix = { truthful = 0.5, shading = 0.5 }\nshading_factor = 0.5")
    outs = {}
    with pytest.MonkeyPatch.context() as mp:
        for workers in (1, 2):
            where = base / f"w{workers}"
            where.mkdir()
            mp.chdir(where)  # the same relative --out: the report's command line is the same text
            assert main(_argv(path, "out", "--workers", str(workers))) == 0
            outs[workers] = where / "out"
    return {"path": path, "out": outs[1], "out2": outs[2], "base": base}


def test_the_scenario_file_is_the_intended_population(strategic):
    sc = load(strategic["path"])
    assert sc.users.mix == {"truthful": 0.5, "shading": 0.5} and sc.users.shading_factor == 0.5
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
            "rounds_truthful.parquet", "manifest.json", ".market-output"} <= set(names)
    for name in names:
        if name != "manifest.json":  # wall time and workers
            assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_regenerate_rebuilds_the_same_files_from_the_rounds_tables(strategic):
    again = strategic["base"] / "again"
    poa.regenerate(strategic["out"], again)
    for name in ("poa.csv", "poa_runs.csv", "poa.md", "poa.png", "welfare.png"):
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
    assert "already all truthful" in (tmp_path / "out" / "poa.md").read_text()


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
                             "bid_to_value": [1.0] * n})

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
    (["poa", "default", "--out", "{out}", "--seeds", "1,1"], "seed"),
    (["poa", "default", "--out", "{out}", "--workers", "0"], "workers"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main([a.format(out=out) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_bad_input_exits_2_through_argparse_too(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["poa", "default", "--out", str(tmp_path / "out"), "--seeds", "x"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []

