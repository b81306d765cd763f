"""Ids of a tabular market (README contract 2): whole numbers or strings, back exactly as given.

``request_id, user_id, resource_id, owner_id`` are int64 when every id is a whole number
within int64, else strings (text as written; integers beyond int64 as their exact digits).
Every output table of ``market run`` carries them unchanged, and the written tables pass
the independent feasibility check.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main
from market.core.feasibility import check_run_tables
from mechanisms.registry import available, mechanism_class
from scenarios.tables import read_table, validate

MECHANISMS = [n for n in available() if mechanism_class(n).__module__.startswith("mechanisms.")]  # the built-ins


def scenario_text(requests: str, resources: str, mechanisms: list[str], oracle: bool = True) -> str:
    return textwrap.dedent(
        f"""
        name = "ids"
        rounds = 3
        seeds = [1, 2]
        mechanisms = {mechanisms!r}
        oracle = {"true" if oracle else "false"}

        [market]
        source = "tabular"
        requests = "{requests}"
        resources = "{resources}"

        [oracle_params]
        time_limit = 20.0
        node_limit = 1
        """
    ).replace("'", '"')


def requests_table(ids: list[object] | None = None, users: list[object] | None = None) -> pd.DataFrame:
    n = 24 if ids is None else len(ids)
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "request_id": [f"openb-pod-{i:04d}" for i in range(5, 5 + n)] if ids is None else ids,
        "user_id": [f"user-{'abc'[i % 3]}" for i in range(n)] if users is None else users,
        "round": np.arange(n) % 3, "cpu": rng.uniform(0.2, 1.5, n), "mem": rng.uniform(0.2, 1.5, n),
        "budget": rng.uniform(5.0, 20.0, n), "priority": rng.integers(1, 10, n),
        "x": rng.uniform(0, 3, n), "y": rng.uniform(0, 3, n),
    })


def resources_table() -> pd.DataFrame:
    m = 6
    return pd.DataFrame({
        "resource_id": [f"node-{c}" for c in "abcdef"], "cpu": np.full(m, 3.0), "mem": np.full(m, 3.0),
        "unit_cost": np.linspace(0.2, 1.0, m), "reliability": np.full(m, 0.99), "availability": np.full(m, 0.99),
        "energy_efficiency": np.linspace(0.5, 0.9, m), "x": np.arange(m, dtype=float) / 2, "y": np.zeros(m),
        "owner_id": ["acme", "acme", "globex", "globex", "initech", "initech"],
    })


def run(folder: Path, requests: pd.DataFrame, resources: pd.DataFrame, req_name: str = "requests.csv",
        mechanisms: list[str] = MECHANISMS, oracle: bool = True, fmt: str = "parquet",
        raw_requests: str | None = None) -> tuple[int, str, Path]:
    """``market run`` in this process on the two tables; (exit code, stderr, out dir)."""
    folder.mkdir(parents=True)
    (folder / "scenario.toml").write_text(scenario_text(req_name, "resources.csv", mechanisms, oracle))
    if raw_requests is not None:
        (folder / req_name).write_text(raw_requests)
    elif req_name.endswith(".parquet"):
        requests.to_parquet(folder / req_name, index=False)
    else:
        requests.to_csv(folder / req_name, index=False)
    resources.to_csv(folder / "resources.csv", index=False)
    out = folder / "out" / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", str(folder / "scenario.toml"), "--out", str(out), "--quiet", "--format", fmt])
    return code, err.getvalue(), out


def read_out(out: Path, fmt: str) -> dict[str, pd.DataFrame]:
    if fmt == "parquet":
        return {p.stem: pd.read_parquet(p) for p in out.glob("*.parquet")}
    return {p.stem: pd.read_csv(p) for p in out.glob("*.csv")}


def check_feasible(t: dict[str, pd.DataFrame]) -> int:
    checked = 0
    for seed, alloc in t["allocations"].groupby("seed"):
        req = t["requests"][t["requests"]["seed"] == seed].drop(columns="seed")
        res = t["resources"][t["resources"]["seed"] == seed].drop(columns="seed")
        checked += check_run_tables(req, res, alloc)
    return checked


def assert_refused(code: int, stderr: str, out: Path, *parts: str) -> None:
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert not out.exists() and not out.parent.exists()


# --- string ids through every mechanism -------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_string_ids_come_back_exactly_from_every_mechanism(tmp_path, fmt):
    assert set(MECHANISMS) <= set(available())
    req, res = requests_table(), resources_table()
    code, stderr, out = run(tmp_path / "s", req, res, fmt=fmt)
    assert code == 0, stderr
    t = read_out(out, fmt)
    alloc = t["allocations"]
    assert set(alloc["mechanism"]) == set(MECHANISMS)  # every mechanism served someone
    assert set(alloc["request_id"]) <= set(req["request_id"])
    assert set(alloc["resource_id"]) <= set(res["resource_id"])
    for seed in (1, 2):
        got = t["requests"][t["requests"]["seed"] == seed]
        assert got["request_id"].tolist() == req["request_id"].tolist()
        assert got["user_id"].tolist() == req["user_id"].tolist()
        got = t["resources"][t["resources"]["seed"] == seed]
        assert got["resource_id"].tolist() == res["resource_id"].tolist()
        assert got["owner_id"].tolist() == res["owner_id"].tolist()
    if fmt == "parquet":  # strings stay strings
        for name, col in [("allocations", "request_id"), ("allocations", "resource_id"), ("requests", "request_id"),
                          ("requests", "user_id"), ("resources", "resource_id"), ("resources", "owner_id")]:
            assert pd.api.types.is_string_dtype(t[name][col]), (name, col, t[name][col].dtype)
    assert check_feasible(t) == len(alloc) > 0
    assert "opt_welfare" in t["rounds"].columns


def test_empty_allocations_keep_the_id_dtype(tmp_path):
    # budgets too small to pay anything: nobody is served, the columns are still strings
    req = requests_table().assign(budget=1e-9)
    code, stderr, out = run(tmp_path / "s", req, resources_table(), mechanisms=["greedy"], oracle=False)
    assert code == 0, stderr
    alloc = pd.read_parquet(out / "allocations.parquet")
    assert len(alloc) == 0
    assert pd.api.types.is_string_dtype(alloc["request_id"]) and pd.api.types.is_string_dtype(alloc["resource_id"])


def test_feasibility_check_compares_ids_across_dtypes():
    # a CSV read back without dtype=str: ids that look like numbers parse in one table only
    req = validate(requests_table(ids=["7", "x-1"], users=[1, 2]).assign(round=0), "requests", "requests")
    res = validate(resources_table(), "resources", "resources")
    alloc = pd.DataFrame({"mechanism": "greedy", "seed": 1, "round": [0], "request_id": [7],
                          "resource_id": ["node-a"], "payment": [0.0], "utility": [0.0]})
    assert check_run_tables(req, res, alloc) == 1
    with pytest.raises(AssertionError, match="not in the tables"):
        check_run_tables(req, res, alloc.assign(request_id=["openb-pod-9999"]))


# --- the rule, one table at a time ------------------------------------------------------


def validated_csv(tmp_path: Path, text: str) -> pd.DataFrame:
    path = tmp_path / "requests.csv"
    path.write_text(text)
    return validate(read_table(path), "requests", str(path))


def csv_with_ids(ids: list[str]) -> str:
    rows = "".join(f"{i},u,0,1,1,5,1,0,0\n" for i in ids)
    return "request_id,user_id,round,cpu,mem,budget,priority,x,y\n" + rows


@pytest.mark.parametrize(("ids", "expect"), [
    (["1", "2", "-3", "0"], [1, 2, -3, 0]),                                    # plain integers: int64
    (["9223372036854775807", "-9223372036854775808"], [2**63 - 1, -(2**63)]),  # int64 limits
    (["7", "node-a"], ["7", "node-a"]),                                        # mixed: strings as written
    (["007", "8"], ["007", "8"]),                                              # a leading zero is text
    (["1.0", "2"], ["1.0", "2"]),                                              # so is a decimal point
    (["+5", "6"], ["+5", "6"]),
    (["-0", "0"], ["-0", "0"]),                                                # -0 is not 0 (was: a duplicate 0)
    (["18446744073709551615", "18446744073709551616"], ["18446744073709551615", "18446744073709551616"]),
    (["1", "9223372036854775808"], ["1", "9223372036854775808"]),              # beyond int64: exact digits
    (["NA", "null", "None", "nan", "N/A", "NULL"], ["NA", "null", "None", "nan", "N/A", "NULL"]),  # names, not missing
])
def test_csv_id_rule(tmp_path, ids, expect):
    df = validated_csv(tmp_path, csv_with_ids(ids))
    assert df["request_id"].tolist() == expect
    if all(isinstance(v, int) for v in expect):
        assert df["request_id"].dtype == np.int64
    else:
        assert pd.api.types.is_string_dtype(df["request_id"])
    assert df["user_id"].tolist() == ["u"] * len(ids)


def test_parquet_ids_keep_their_type(tmp_path):
    req = requests_table(ids=["5", "6"], users=np.array([2**63 + 5, 3], dtype=np.uint64))
    path = tmp_path / "requests.parquet"
    req.to_parquet(path, index=False)
    df = validate(read_table(path), "requests", str(path))
    assert df["request_id"].tolist() == ["5", "6"]  # Parquet strings stay strings
    assert df["user_id"].tolist() == [str(2**63 + 5), "3"]
    small = requests_table(ids=np.array([1, 2], dtype=np.uint64), users=np.array([1.0, 2.0]))
    small.to_parquet(path, index=False)
    df = validate(read_table(path), "requests", str(path))
    assert df["request_id"].dtype == np.int64 and df["user_id"].dtype == np.int64
    assert df["request_id"].tolist() == [1, 2] and df["user_id"].tolist() == [1, 2]


# --- integers beyond int64 through market run ------------------------------------------


def test_uint64_parquet_ids_are_kept_exact(tmp_path):
    ids = np.array([2**63 + 5, 2**64 - 1, 1, 2], dtype=np.uint64)
    req = requests_table(ids=ids, users=[1, 1, 2, 3]).assign(round=0)
    code, stderr, out = run(tmp_path / "s", req, resources_table(), req_name="requests.parquet",
                            mechanisms=["greedy", "optimal"])
    assert code == 0, stderr
    t = read_out(out, "parquet")
    want = ["9223372036854775813", "18446744073709551615", "1", "2"]
    assert t["requests"].loc[t["requests"]["seed"] == 1, "request_id"].tolist() == want
    assert set(t["allocations"]["request_id"]) == set(want)  # plenty of room: everyone is served
    assert t["requests"]["user_id"].dtype == np.int64
    assert check_feasible(t) == len(t["allocations"])


def test_csv_ids_beyond_uint64_are_kept_exact(tmp_path):
    text = csv_with_ids(["18446744073709551615", "18446744073709551616"])
    code, stderr, out = run(tmp_path / "s", None, resources_table(), mechanisms=["greedy"], oracle=False,
                            raw_requests=text, fmt="csv")
    assert code == 0, stderr
    written = (out / "allocations.csv").read_text()
    assert "18446744073709551615" in written and "18446744073709551616" in written
    req = pd.read_csv(out / "requests.csv", dtype={"request_id": str})
    assert req["request_id"].tolist() == ["18446744073709551615", "18446744073709551616"] * 2


# --- refusals: one line, exit 2, nothing written ----------------------------------------


def test_duplicate_string_id_is_reported_as_written(tmp_path):
    req = requests_table()
    req.loc[3, "request_id"] = "openb-pod-0005"
    code, stderr, out = run(tmp_path / "s", req, resources_table())
    assert_refused(code, stderr, out, "requests.csv", "row 4 (line 5)", "duplicate request_id 'openb-pod-0005'")


def test_duplicate_id_beyond_int64_is_reported_as_written(tmp_path):
    text = csv_with_ids(["18446744073709551615", "3", "18446744073709551615"])
    code, stderr, out = run(tmp_path / "s", None, resources_table(), raw_requests=text)
    assert_refused(code, stderr, out, "requests.csv", "row 3 (line 4)", "duplicate request_id '18446744073709551615'")
    assert "-9223372036854775808" not in stderr


@pytest.mark.parametrize(("ids", "parts"), [
    (np.array([1.0, 2.0**64]), ("row 2:", "'request_id'", "outside int64")),
    (np.array([1.0, 2.5]), ("row 2:", "'request_id'", "whole numbers or strings", "2.5")),
    (np.array([True, False]), ("row 1:", "'request_id'", "whole numbers or strings", "True")),
    (["a", ""], ("row 2:", "'request_id'", "empty id")),
    (["a", "  "], ("row 2:", "'request_id'", "empty id")),
    (["a", None], ("row 2:", "'request_id'", "missing")),
])
def test_bad_parquet_ids_are_refused_in_one_line(tmp_path, ids, parts):
    req = requests_table(ids=ids, users=[1, 2])
    code, stderr, out = run(tmp_path / "s", req, resources_table(), req_name="requests.parquet")
    assert_refused(code, stderr, out, "requests.parquet", *parts)


def test_missing_csv_id_is_refused(tmp_path):
    text = csv_with_ids(["a", ""])
    code, stderr, out = run(tmp_path / "s", None, resources_table(), raw_requests=text)
    assert_refused(code, stderr, out, "requests.csv", "row 2 (line 3)", "'request_id'", "missing")


def test_type_names_that_look_missing_are_names(tmp_path):
    """``resource_type = NA`` is a type called NA (before, pandas read it as missing: untyped)."""
    resources = "resource_id,cpu,mem,unit_cost,reliability,availability,energy_efficiency,x,y,resource_type\n"
    resources += "0,4,4,1,0.9,0.9,0.5,0,0,NA\n1,4,4,1,0.9,0.9,0.5,0,0,T4\n"
    path = tmp_path / "resources.csv"
    path.write_text(resources)
    df = validate(read_table(path), "resources", str(path))
    assert df["resource_type"].tolist() == ["NA", "T4"]


def test_zstandard_compressed_tables_are_read(tmp_path):
    """``.csv.zst`` is one of the accepted suffixes; its reader (zstandard) is a dependency."""
    import zstandard

    text = csv_with_ids(["a", "b"])
    path = tmp_path / "requests.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    assert validate(read_table(path), "requests", str(path))["request_id"].tolist() == ["a", "b"]
