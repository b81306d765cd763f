"""Bad input through the command line: one line naming file, key or row, exit 2, no output.

Every case starts from a good tabular scenario in its own folder, breaks one thing, runs
``market run SCENARIO --out DIR`` and checks: exit code 2, exactly one line on stderr
(``error: ...``) that names the file, the key or column (and the row for tables) and the
bad value, nothing on stdout, and no ``DIR`` (nor any temporary of it) afterwards.

One case of each class of bad input (:data:`CLI_CLASSES`) runs through the real
``python -m market`` in a subprocess (two at a time, in one module fixture); every case,
those included, also runs in-process through :func:`market.apps.cli.main`, which is cheap.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main

REPO = Path(__file__).resolve().parents[1]

SCENARIO = textwrap.dedent(
    """
    name = "bad-input"
    rounds = 2
    seeds = [1]
    mechanisms = ["greedy", "second_price"]

    [market]
    source = "tabular"
    requests = "requests.csv"
    resources = "resources.csv"
    """
)


def requests_table() -> pd.DataFrame:
    return pd.DataFrame({
        "request_id": [10, 11, 12, 13], "user_id": [1, 1, 2, 3], "round": [0, 0, 1, 1],
        "cpu": [1.0, 2.0, 1.0, 0.5], "mem": [1.0, 1.0, 2.0, 0.5], "budget": [10.0, 12.0, 8.0, 5.0],
        "priority": [1, 5, 3, 10], "x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 0.0, 1.0, 1.0],
    })


def resources_table() -> pd.DataFrame:
    return pd.DataFrame({
        "resource_id": [100, 101, 102], "cpu": [4.0, 2.0, 8.0], "mem": [4.0, 4.0, 8.0],
        "unit_cost": [1.0, 0.5, 2.0], "reliability": [0.9, 0.95, 0.99], "availability": [0.9, 0.99, 0.999],
        "energy_efficiency": [0.5, 0.7, 0.9], "x": [0.0, 1.0, 5.0], "y": [0.0, 1.0, 5.0],
    })


@dataclass
class Case:
    """One broken input: what to change and what the error line must name."""

    name: str
    expect: tuple[str, ...]  # substrings of the error line (besides "error: ")
    scenario: Callable[[str], str] = lambda s: s
    requests: Callable[[pd.DataFrame], pd.DataFrame] = lambda d: d
    resources: Callable[[pd.DataFrame], pd.DataFrame] = lambda d: d
    files: dict[str, str | bytes] | None = None  # raw files written after the tables
    scenario_file: str = "scenario.toml"
    args: tuple[str, ...] = ()


def setcell(col: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df

    return change


def blank_lines(df: pd.DataFrame) -> str:
    """``df`` as CSV with blank and whitespace-only lines (pandas skips them): data row ``r`` >= 1 on line ``r + 5``."""
    header, first, *rest = df.to_csv(index=False).splitlines()
    return "\n".join([header, "", first, "   ", "\t", *rest]) + "\n"


def replace(old: str, new: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        assert old in text
        return text.replace(old, new)

    return change


def append(extra: str) -> Callable[[str], str]:
    return lambda text: text + textwrap.dedent(extra)


# fmt: off
CASES = [
    # --- scenario files ---------------------------------------------------------------
    Case("toml_syntax", ("scenario.toml", "not valid TOML", "line"), scenario=append("\n[pricing\n")),
    Case("toml_not_utf8", ("scenario.toml", "UTF-8"), files={"scenario.toml": b'name = "\xff\xfe"\n'}),
    Case("unknown_top_key", ("scenario.toml", "unknown key 'round'"), scenario=lambda s: "round = 3\n" + s),
    Case("unknown_table_key", ("scenario.toml", "pricing.step"), scenario=append("[pricing]\nstep = 0.1\n")),
    Case("unknown_market_key", ("scenario.toml", "market.requsts"), scenario=append('requsts = "x.csv"\n')),
    Case("missing_required_key", ("scenario.toml", "missing required key 'rounds'"), scenario=replace("rounds = 2\n", "")),
    Case("wrong_type", ("scenario.toml", "'rounds'", "must be int", "'two'"), scenario=replace("rounds = 2", 'rounds = "two"')),
    Case("bool_is_not_a_number", ("scenario.toml", "'pricing.eta'", "True"), scenario=append("[pricing]\neta = true\n")),
    Case("rounds_zero", ("scenario.toml", "'rounds'", "in [1, 1000000]", "got 0"), scenario=replace("rounds = 2", "rounds = 0")),
    Case("target_out_of_range", ("scenario.toml", "'pricing.target'", "(0, 1]", "1.5"), scenario=append("[pricing]\ntarget = 1.5\n")),
    Case("share_out_of_range", ("scenario.toml", "'users.shading_share'", "[0, 1]", "-0.1"), scenario=append("[users]\nshading_share = -0.1\n")),
    Case("mix_not_summing_to_one", ("scenario.toml", "'users.mix'", "sum to 1", "0.9"), scenario=append("[users]\nmix = { truthful = 0.5, learning = 0.4 }\n")),
    Case("unknown_strategy", ("scenario.toml", "users.mix.bogus", "unknown strategy 'bogus'"), scenario=append("[users]\nmix = { truthful = 0.5, bogus = 0.5 }\n")),
    Case("negative_pacing_budget", ("scenario.toml", "'users.pacing_budget_share'", ">= 0", "-0.5"), scenario=append("[users]\npacing_budget_share = -0.5\n")),
    Case("learning_rate_out_of_range", ("scenario.toml", "'users.learning_eta'", "(0, 10]", "20"), scenario=append("[users]\nlearning_eta = 20\n")),
    Case("learning_grid_out_of_range", ("scenario.toml", "'users.learning_grid'", "(0, 1.5]"), scenario=append("[users]\nlearning_grid = [0.5, 2.0]\n")),
    Case("unknown_owner_strategy", ("scenario.toml", "'owners.strategy'", "'auction'"), scenario=append('[owners]\nstrategy = "auction"\n')),
    Case("owner_grid_unsorted", ("scenario.toml", "'owners.grid'", "increasing"), scenario=append("[owners]\ngrid = [2.0, 1.0]\n")),
    Case("nan_in_scenario", ("scenario.toml", "'pricing.eta'", "finite", "nan"), scenario=append("[pricing]\neta = nan\n")),
    Case("inf_in_scenario", ("scenario.toml", "'utility.d_max'", "finite", "inf"), scenario=append("[utility]\nd_max = inf\n")),
    Case("weights_sum", ("scenario.toml", "'utility.weights'", "at most 1"), scenario=append("[utility]\nweights = [0.5, 0.5, 0.5, 0.0]\n")),
    Case("duplicate_seed", ("scenario.toml", "'seeds'", "seed 1 is listed twice"), scenario=replace("seeds = [1]", "seeds = [1, 2, 1]")),
    Case("negative_seed", ("scenario.toml", "'seeds'", "-3"), scenario=replace("seeds = [1]", "seeds = [-3]")),
    Case("duplicate_mechanism", ("scenario.toml", "'mechanisms'", "'greedy' is listed twice"), scenario=replace('["greedy", ', '["greedy", "greedy", ')),
    Case("unknown_mechanism", ("scenario.toml", "'mechanisms'", "unknown mechanism 'vickrey'"), scenario=replace('"second_price"]', '"vickrey"]')),
    Case("unknown_mechanism_params", ("scenario.toml", "mechanism_params.vickrey", "unknown mechanism"), scenario=append("[mechanism_params.vickrey]\nreserve = 1\n")),
    Case("bad_mechanism_param", ("scenario.toml", "mechanism_params.optimal", "budget"), scenario=append("[mechanism_params.optimal]\nbudget = 3\n")),
    Case("unknown_source", ("scenario.toml", "'market.source'", "'csv'"), scenario=replace('source = "tabular"', 'source = "csv"')),
    Case("synthetic_count_not_int", ("scenario.toml", "'market.requests'", "int", "2.5"),
         scenario=lambda s: s.split("[market]")[0] + '[market]\nsource = "synthetic"\nrequests = 2.5\n'),
    Case("path_escapes_folder", ("scenario.toml", "'market.requests'", "'../requests.csv'", "leaves the scenario's folder"),
         scenario=replace('"requests.csv"', '"../requests.csv"')),
    Case("absolute_path", ("scenario.toml", "'market.resources'", "leaves the scenario's folder"),
         scenario=replace('"resources.csv"', '"/etc/hostname.csv"')),
    Case("symlink_escapes_folder", ("scenario.toml", "'market.requests'", "leaves the scenario's folder"),
         scenario=replace('"requests.csv"', '"linked.csv"'), files={"linked.csv": "@symlink:../outside.csv"}),
    Case("missing_table_file", ("scenario.toml", "'market.requests'", "no such file 'reqs.csv'"), scenario=replace('"requests.csv"', '"reqs.csv"')),
    Case("not_a_table_file", ("scenario.toml", "'market.requests'", "'requests.txt'", "not a table file"),
         scenario=replace('"requests.csv"', '"requests.txt"'), files={"requests.txt": "a,b\n"}),
    Case("duplicate_seed_on_command_line", ("argument --seeds", "4 is listed twice"), args=("--seeds", "4,4")),
    # --- tables ------------------------------------------------------------------------
    Case("missing_column", ("requests.csv", "missing column(s) budget"), requests=lambda d: d.drop(columns="budget")),
    Case("non_numeric", ("requests.csv", "row 2 (line 3)", "'cpu'", "'two'"), requests=setcell("cpu", 1, "two")),
    Case("missing_value", ("resources.csv", "row 3 (line 4)", "'mem'", "missing"), resources=setcell("mem", 2, np.nan)),
    Case("infinite_value", ("requests.csv", "row 4 (line 5)", "'x'", "not finite", "inf"), requests=setcell("x", 3, np.inf)),
    Case("budget_not_positive", ("requests.csv", "row 1 (line 2)", "'budget'", "> 0", "0.0"), requests=setcell("budget", 0, 0.0)),
    Case("capacity_not_positive", ("resources.csv", "row 2 (line 3)", "'cpu'", "> 0", "-1.0"), resources=setcell("cpu", 1, -1.0)),
    Case("zero_memory_capacity", ("resources.csv", "row 1 (line 2)", "'mem'", "> 0"), resources=setcell("mem", 0, 0.0)),
    Case("reliability_above_one", ("resources.csv", "row 3 (line 4)", "'reliability'", "[0, 1]", "1.2"), resources=setcell("reliability", 2, 1.2)),
    Case("availability_below_zero", ("requests.csv", "row 2 (line 3)", "'min_availability'", "[0, 1]", "-0.5"),
         requests=lambda d: d.assign(min_availability=[0.0, -0.5, 0.0, 0.0])),
    Case("negative_latency", ("requests.csv", "row 1 (line 2)", "'max_latency'", ">= 0", "-2.0"),
         requests=lambda d: d.assign(max_latency=[-2.0, 1.0, 1.0, 1.0])),
    Case("fractional_round", ("requests.csv", "row 3 (line 4)", "'round'", "whole numbers", "0.5"), requests=setcell("round", 2, 0.5)),
    Case("duration_zero", ("requests.csv", "row 4 (line 5)", "'duration'", ">= 1"), requests=lambda d: d.assign(duration=[1, 2, 1, 0])),
    Case("duplicate_request_id", ("requests.csv", "row 3 (line 4)", "duplicate request_id 10"), requests=setcell("request_id", 2, 10)),
    Case("duplicate_resource_id", ("resources.csv", "row 2 (line 3)", "duplicate resource_id 100"), resources=setcell("resource_id", 1, 100)),
    Case("boolean_cells", ("requests.csv", "'priority'", "numeric", "True"), requests=lambda d: d.assign(priority=[True, False, True, True])),
    Case("no_resources", ("resources.csv", "no rows"), resources=lambda d: d.iloc[:0]),
    Case("unparsable_csv", ("requests.csv", "cannot read table"), files={"requests.csv": 'request_id,user_id\n1,"2\n'}),
    Case("parquet_bad_value", ("requests.parquet", "row 2:", "'mem'", ">= 0", "-1.0"),
         scenario=replace('"requests.csv"', '"requests.parquet"'), requests=setcell("mem", 1, -1.0)),
    # a cast to int64 wrapped these to -9.2e18, which the range check then quoted
    Case("huge_round", ("requests.csv", "row 2 (line 3)", "'round'", "2**53", "1e+300"), requests=setcell("round", 1, 1e300)),
    Case("huge_duration", ("requests.csv", "row 1 (line 2)", "'duration'", "2**53", "1e+20"),
         requests=lambda d: d.assign(duration=[1e20, 1, 1, 1])),
    Case("parquet_timestamp_round", ("requests.parquet", "row 1:", "'round'", "numeric", "Timestamp"),
         scenario=replace('"requests.csv"', '"requests.parquet"'),
         requests=lambda d: d.assign(round=pd.to_datetime(d["round"], unit="us"))),
    # sums of budgets near the float range's end were inf (welfare, surplus, revenue), so were
    # ratios by a number near 0 (energy per efficiency of 1e-308)
    Case("huge_budget", ("requests.csv", "row 1 (line 2)", "'budget'", "magnitude", "1e+308"),
         requests=setcell("budget", 0, 1e308)),
    Case("tiny_energy_efficiency", ("resources.csv", "row 3 (line 4)", "'energy_efficiency'", "magnitude", "1e-308"),
         resources=setcell("energy_efficiency", 2, 1e-308)),
    Case("huge_coordinate", ("resources.csv", "row 2 (line 3)", "'x'", "magnitude", "-1e+101"),
         resources=setcell("x", 1, -1e101)),
    Case("blank_lines_in_a_table", ("requests.csv", "row 2 (line 6)", "'cpu'", "'two'"),
         files={"requests.csv": blank_lines(setcell("cpu", 1, "two")(requests_table()))}),
    Case("blank_lines_in_a_compressed_table", ("resources.csv.gz", "row 3 (line 7)", "'cpu'", "> 0", "-1.0"),
         scenario=replace('"resources.csv"', '"resources.csv.gz"'),
         files={"resources.csv.gz": gzip.compress(blank_lines(setcell("cpu", 2, -1.0)(resources_table())).encode(),
                                                  mtime=0)}),
    # pandas renamed the second to budget.1, and the first was used without a word
    Case("duplicate_column", ("requests.csv", "column 'budget' appears twice in the header"),
         requests=lambda d: pd.concat([d, d[["budget"]].assign(budget=0.0)], axis=1)),
    # a word pandas reads as missing is a number's missing value, not a name's
    Case("na_word_in_a_number", ("requests.csv", "row 3 (line 4)", "'cpu'", "'NA'"), requests=setcell("cpu", 2, "NA")),
    Case("dimension_named_like_an_output_column", ("scenario.toml", "'market.dimensions'", "'seed'"),
         scenario=append('dimensions = ["cpu", "mem", "seed"]\n'),
         requests=lambda d: d.assign(seed=1.0), resources=lambda d: d.assign(seed=2.0)),
    # joined to the market tables by the feasibility check (which raised a false "capacity exceeded")
    Case("dimension_named_like_an_allocations_column", ("scenario.toml", "'market.dimensions'", "'payment'"),
         scenario=append('dimensions = ["cpu", "mem", "payment"]\n'),
         requests=lambda d: d.assign(payment=0.5), resources=lambda d: d.assign(payment=4.0)),
]
# fmt: on

#: one case per class of bad input, run through ``python -m market`` in a subprocess
CLI_CLASSES = ["toml_syntax", "unknown_top_key", "wrong_type", "target_out_of_range", "nan_in_scenario", "duplicate_seed", "unknown_mechanism", "path_escapes_folder", "missing_table_file", "missing_column", "non_numeric", "infinite_value", "budget_not_positive", "reliability_above_one", "duplicate_request_id", "no_resources", "parquet_bad_value"]


def write_case(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "scenario.toml").write_text(case.scenario(SCENARIO))
    req = case.requests(requests_table())
    if "requests.parquet" in (folder / "scenario.toml").read_text():
        req.astype({c: float for c in req.columns if req[c].dtype == object}).to_parquet(folder / "requests.parquet")
    req.to_csv(folder / "requests.csv", index=False)
    case.resources(resources_table()).to_csv(folder / "resources.csv", index=False)
    for name, content in (case.files or {}).items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content.startswith("@symlink:"):
            target = folder / content.removeprefix("@symlink:")
            requests_table().to_csv(target, index=False)
            path.symlink_to(target)
        else:
            path.write_text(content)
    return folder / case.scenario_file


def run_cli(case: Case, root: Path) -> tuple[int, str, str, Path]:
    """``python -m market run`` in a subprocess: (exit code, stdout, stderr, out dir)."""
    scenario = write_case(case, root / case.name / "scenario")
    out = root / case.name / "out" / "run"
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))}
    proc = subprocess.run(
        [sys.executable, "-m", "market", "run", str(scenario), "--out", str(out), "--quiet", *case.args],
        capture_output=True, text=True, check=False, cwd=REPO, env=env, timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr, out


def run_main(case: Case, root: Path, quiet: bool = True) -> tuple[int, str, str, Path]:
    """The same through :func:`market.apps.cli.main` in this process (``quiet``: with ``--quiet``)."""
    scenario = write_case(case, root / case.name / "scenario")
    out = root / case.name / "out" / "run"
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            code = main(["run", str(scenario), "--out", str(out), *(["--quiet"] if quiet else []), *case.args])
        except SystemExit as exc:  # a bad option: argparse's one line (market's wording), then exit 2
            code = int(exc.code)
    return code, std.getvalue(), err.getvalue(), out


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str, Path]]:
    root = tmp_path_factory.mktemp("bad_input_cli")
    cases = [c for c in CASES if c.name in CLI_CLASSES]
    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(lambda c: (c.name, run_cli(c, root)), cases))


def check_one_line_exit_2(case: Case, result: tuple[int, str, str, Path]) -> None:
    code, stdout, stderr, out = result
    assert code == 2, (code, stderr[-2000:])
    lines = stderr.splitlines()
    assert len(lines) == 1 and stderr.endswith("\n"), stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for part in case.expect:
        assert part in line, (part, line)
    assert "Traceback" not in stderr and stdout == ""
    assert not out.exists()
    leftovers = list(out.parent.iterdir()) if out.parent.exists() else []  # no temporaries either
    assert leftovers == []


def test_the_good_scenario_runs(tmp_path):
    code, _, stderr, out = run_cli(Case("good", ()), tmp_path)
    assert code == 0, stderr
    assert (out / "manifest.json").is_file()
    assert pd.read_parquet(out / "rounds.parquet")["n_requests"].sum() > 0


def test_every_class_of_bad_input_has_a_cli_case():
    assert set(CLI_CLASSES) <= {c.name for c in CASES}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name", CLI_CLASSES)
def test_bad_input_through_python_m_market(name: str, cli_results):
    check_one_line_exit_2(next(c for c in CASES if c.name == name), cli_results[name])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_through_main(case: Case, tmp_path):
    check_one_line_exit_2(case, run_main(case, tmp_path))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_with_the_progress_bar_on(case: Case, tmp_path):
    """Without ``--quiet`` too: inputs are checked before the bar starts, so no bar is drawn."""
    check_one_line_exit_2(case, run_main(case, tmp_path, quiet=False))


def test_an_optional_columns_empty_cell_takes_its_default(tmp_path):
    """`after_lag` written only where `after` is, `duration` on some rows: the others take the
    defaults, as an absent column does (empty cells were refused, `after` and `deadline`'s not)."""
    from scenarios.tables import REQUEST_OPTIONAL, read_table, validate

    text = ("request_id,user_id,round,cpu,mem,budget,priority,x,y,duration,min_reliability,min_availability,"
            "max_latency,after,after_lag,deadline\n"
            "1,1,0,1,1,5,1,0,0,2,0.5,,,,,\n"
            "2,1,0,1,1,5,1,0,0,,,0.9,3,1,2,7\n")
    path = tmp_path / "requests.csv"
    path.write_text(text)
    df = validate(read_table(path), "requests", str(path))
    assert df["duration"].tolist() == [2, 1] and df["after_lag"].tolist() == [1, 2]
    assert df["min_reliability"].tolist() == [0.5, REQUEST_OPTIONAL["min_reliability"]]
    assert df["min_availability"].tolist() == [0.0, 0.9]
    assert df["max_latency"].tolist() == [np.inf, 3.0] and df["deadline"].tolist() == [np.inf, 7.0]
    assert df["duration"].dtype == np.int64 and df["after_lag"].dtype == np.int64
    # a required column's empty cell is refused as such (not quoted as a value 'nan')
    path.write_text(text.replace("\n2,1,0,1,1,5,", "\n2,1,0,1,,5,"))
    with pytest.raises(Exception, match=r"row 2 \(line 3\): column 'mem' has a missing value \(an empty cell\)$"):
        validate(read_table(path), "requests", str(path))


@pytest.mark.parametrize("scale", [1e-100, 1e100], ids=["tiny", "huge"])
def test_numbers_at_the_magnitude_bounds_give_finite_metrics(tmp_path, scale):
    """Budgets, unit costs, demands and capacities at the largest magnitude a table takes (and
    energy efficiencies at the smallest), or all at the smallest: every mechanism and the oracle
    run, every number of every output table is finite, and numpy warns of nothing."""
    from scenarios.tables import MAGNITUDE_MAX

    assert scale in (MAGNITUDE_MAX, 1 / MAGNITUDE_MAX)
    data = REPO / "scenarios" / "data"
    req = pd.read_csv(data / "audit-unit-requests.csv")
    res = pd.read_csv(data / "audit-unit-resources.csv")
    for dim in ("cpu", "mem"):  # demands and capacities scaled together, the extreme one at the bound
        sizes = np.concatenate([req[dim], res[dim]])
        factor = scale / (sizes.max() if scale > 1 else sizes[sizes > 0].min())
        req[dim] *= factor
        res[dim] *= factor
    # budgets at the bound; huge: costs of the order of budgets, energy per efficiency 1e200;
    # tiny: costs 1e-200, energies 1e-200
    req = req.assign(budget=scale)
    res = res.assign(unit_cost=res["unit_cost"] if scale > 1 else scale, energy_efficiency=1 / scale)
    req.to_csv(tmp_path / "req.csv", index=False)
    res.to_csv(tmp_path / "res.csv", index=False)
    toml = (REPO / "scenarios" / "audit-unit.toml").read_text()
    toml = toml.replace("data/audit-unit-requests.csv", "req.csv").replace("data/audit-unit-resources.csv", "res.csv")
    toml = toml.replace('"random", "optimal"]', '"random", "optimal", "drf"]')
    (tmp_path / "s.toml").write_text(toml)
    out = tmp_path / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["run", str(tmp_path / "s.toml"), "--out", str(out), "--oracle", "--quiet"]) == 0, err.getvalue()
    assert err.getvalue() == ""
    for name in ("rounds", "users", "allocations"):
        table = pd.read_parquet(out / f"{name}.parquet").drop(columns=["run_budget"], errors="ignore")
        numbers = table.select_dtypes("number").to_numpy(dtype=float)
        assert np.isfinite(numbers).all(), (name, table.columns[~np.isfinite(numbers).all(axis=0)].tolist())
    rounds = pd.read_parquet(out / "rounds.parquet")
    assert (rounds["n_allocated"] > 0).all()


def test_both_magnitude_bounds_in_one_market(tmp_path):
    """Demands, capacities, budgets and costs of 1e-100 beside 1e100 in one market (helper-51):
    the oracle's programs lost their pairs (HiGHS refuses matrix values above 1e15) and it
    crashed with a shape mismatch; its value LP (costs of 1e100, beyond HiGHS's infinity) gave
    up and the oracle ran to its time limit. Now every mechanism and the oracle run, the bounds
    hold (ALG / bound <= 1), every number is finite and no round is time-limited."""
    (tmp_path / "requests.csv").write_text(
        "request_id,user_id,round,cpu,mem,budget,priority,x,y\n1,1,0,1e-100,1e-100,1e100,1,0,0\n"
        "2,2,0,1e50,1e50,1e100,10,100,100\n3,3,0,1e-50,1e-50,1e-100,1,0,0\n4,4,0,1,1,1e-100,1,0,0\n")
    (tmp_path / "resources.csv").write_text(
        "resource_id,cpu,mem,unit_cost,reliability,availability,energy_efficiency,x,y\n"
        "a,1e100,1e100,1e-100,1,1,1e100,0,0\nb,1e-100,1e-100,1e100,0,0,1e-100,100,100\nc,1,1,1,0.5,0.5,1,50,50\n")
    (tmp_path / "s.toml").write_text(
        'name = "bounds"\nrounds = 2\nseeds = [1]\noracle = true\n'
        'mechanisms = ["mohaf", "greedy", "first_price", "second_price", "random", "optimal", "drf"]\n'
        '[market]\nsource = "tabular"\nrequests = "requests.csv"\nresources = "resources.csv"\n')
    out = tmp_path / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["run", str(tmp_path / "s.toml"), "--out", str(out), "--quiet"]) == 0, err.getvalue()
    assert err.getvalue() == ""
    rounds = pd.read_parquet(out / "rounds.parquet")
    numbers = rounds.select_dtypes("number").to_numpy(dtype=float)
    assert np.isfinite(numbers).all(), rounds.columns[~np.isfinite(numbers).all(axis=0)].tolist()
    assert not rounds["opt_time_limited"].any() and (rounds["opt_status"] == "optimal").all()
    assert (rounds["alg_bound"] <= 1 + 1e-9).all() and (rounds["alg_value_bound"] <= 1 + 1e-9).all()
    assert (rounds["n_allocated"] > 0).any()


def test_trailing_empty_columns_and_parquet_nulls_and_nans(tmp_path):
    """A spreadsheet's trailing ",," is not a repeated column; in Parquet a null is an empty cell
    (an optional column's default) and a NaN is refused, as the text nan is in CSV."""
    from scenarios.tables import read_table, validate

    path = tmp_path / "resources.csv"
    path.write_text("".join(line + ",,\n" for line in resources_table().to_csv(index=False).splitlines()))
    assert validate(read_table(path), "resources", str(path))["resource_id"].tolist() == [100, 101, 102]
    req = requests_table().assign(min_reliability=[0.5, None, 0.2, None])
    req.to_parquet(tmp_path / "nulls.parquet")
    df = validate(read_table(tmp_path / "nulls.parquet"), "requests", "nulls.parquet")
    assert df["min_reliability"].tolist() == [0.5, 0.0, 0.2, 0.0]
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({**{c: requests_table()[c] for c in requests_table()},
                      "min_reliability": pa.array([0.5, None, float("nan"), 0.1])})
    pq.write_table(table, tmp_path / "nan.parquet")
    with pytest.raises(Exception, match=r"nan\.parquet: row 3: column 'min_reliability' is NaN"):
        read_table(tmp_path / "nan.parquet")
