"""Acceptance checks of issue 12 (any number of resource dimensions, eligibility), as a new user tries them.

1. A GPU-cluster market in the tabular format (string ids, ``cpu, mem, gpu``, fractional
   and whole GPUs, CPU-only pods and nodes, typed nodes and ``allowed_types``, contended,
   durations > 1), CSV and Parquet, run with ``market run --oracle`` for every registered
   mechanism and two seeds; everything re-checked from the written tables, and the gpu
   capacity and eligibility re-checked here by strings.
2. Brute force on tiny markets (3 x 3, D in 1..4, random eligibility): the kernel's
   feasible pairs, the ``optimal`` mechanism and the oracle's ``opt_welfare`` against an
   enumeration that checks eligibility (by type names) and capacity itself.
3. Bad input: one line on stderr, exit 2, nothing written.
4. Default markets unchanged (no ``dimensions`` = ``["cpu", "mem"]``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.apps.cli import main
from market.core.feasibility import check_run_tables
from market.core.model import MarketModel
from market.core.oracle import RoundMarket
from market.errors import MarketInputError
from mechanisms import available
from mechanisms.welfare_program import fairness_gain
from scenarios.config import load

DIMS = ("cpu", "mem", "gpu")
#: (type, gpus, cpus, mem GiB) of the node pools, 3 nodes each; "" = CPU-only, untyped
POOLS = [("V100M16", 4, 32, 128), ("V100M32", 8, 64, 256), ("T4", 2, 16, 64), ("", 0, 48, 192)]
GPU_DEMANDS = [0.25, 0.46, 0.5, 1, 2, 4, 0, 0]
ALLOWED = ["V100M16|V100M32", "T4", "", "V100M32", ""]
ROUNDS = 4
SHARES = ["utilization_cpu", "utilization_mem", "utilization_gpu", "dominant_share_jain", "envy_share",
          "unallocated_gpu", "gpu_fragmentation"]


def cli(*argv: str) -> tuple[int, str]:
    """``market ...`` in this process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


def gpu_market(seed: int = 3, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small GPU cluster (12 nodes) and 60 pods over 4 rounds, GPUs over-asked."""
    rng = np.random.default_rng(seed)
    nodes = []
    for k, (kind, gpu, cpu, mem) in enumerate(p for p in POOLS for _ in range(3)):
        nodes.append({
            "resource_id": f"node-{'abcdefghjkmn'[k]}{k + 3}", "cpu": float(cpu), "mem": float(mem), "gpu": float(gpu),
            "unit_cost": rng.uniform(0.2, 1.0), "reliability": 0.99, "availability": 0.99,
            "energy_efficiency": rng.uniform(0.4, 0.9), "x": rng.uniform(0, 3), "y": rng.uniform(0, 3),
            "owner_id": "acme" if k % 2 else "globex", "resource_type": kind,
        })
    pods = []
    for i in range(n):
        gpu = float(GPU_DEMANDS[i % len(GPU_DEMANDS)])
        pods.append({
            "request_id": f"pod-{i + 5:04d}", "user_id": f"user-{'xyzw'[i % 4]}{i % 7}", "round": i % ROUNDS,
            "cpu": rng.uniform(1, 12), "mem": rng.uniform(4, 48), "gpu": gpu, "budget": rng.uniform(10, 60),
            "priority": int(rng.integers(1, 10)), "x": rng.uniform(0, 3), "y": rng.uniform(0, 3),
            "duration": int(rng.integers(1, 4)), "allowed_types": "" if gpu == 0 else ALLOWED[i % len(ALLOWED)],
        })
    return pd.DataFrame(pods), pd.DataFrame(nodes)


def scenario_toml(requests: str, resources: str, market_extra: str = "", top_extra: str = "",
                  mechanisms: list[str] | None = None, rounds: int = ROUNDS) -> str:
    mechs = json.dumps(mechanisms if mechanisms is not None else list(available()))
    return textwrap.dedent(f"""\
        name = "gpu-cluster"
        rounds = {rounds}
        seeds = [1, 2]
        mechanisms = {mechs}
        {top_extra}
        [market]
        source = "tabular"
        requests = "{requests}"
        resources = "{resources}"
        {market_extra}

        [oracle_params]
        time_limit = 20.0
        node_limit = 200
        """)


GPU_MARKET_KEYS = 'dimensions = ["cpu", "mem", "gpu"]\nprice_weights = { gpu = 1.0, cpu = 0.05 }'


def write_market(folder: Path, requests: pd.DataFrame, resources: pd.DataFrame, fmt: str = "csv",
                 market_extra: str = GPU_MARKET_KEYS, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = {"requests": f"requests.{fmt}", "resources": f"resources.{fmt}"}
    for table, name in ((requests, names["requests"]), (resources, names["resources"])):
        if fmt == "parquet":
            table.to_parquet(folder / name, index=False)
        else:
            table.to_csv(folder / name, index=False)
    toml = folder / "scenario.toml"
    toml.write_text(scenario_toml(names["requests"], names["resources"], market_extra, **kw))
    return toml


def tables(out: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in out.glob("*.parquet")}


# --- 1. the GPU market through every mechanism ------------------------------------------


@pytest.fixture(scope="module", params=["csv", "parquet"])
def gpu_run(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"gpu-{request.param}")
    requests, resources = gpu_market()
    toml = write_market(folder, requests, resources, request.param)
    out = folder / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--oracle", "--quiet")
    assert code == 0, err
    return requests, resources, tables(out), json.loads((out / "manifest.json").read_text())


def test_the_market_is_what_the_issue_asks_for():
    """The fixture itself: contended GPUs, fractions, CPU-only both sides, typed nodes, long pods."""
    req, res = gpu_market()
    assert {0.25, 0.46, 0.5, 1.0, 2.0, 4.0, 0.0} <= set(req["gpu"])
    assert (res["gpu"] == 0).any() and (res.loc[res["gpu"] == 0, "resource_type"] == "").all()
    assert set(res["resource_type"]) == {"V100M16", "V100M32", "T4", ""}
    assert {"V100M16|V100M32", "T4", ""} <= set(req["allowed_types"])
    assert req["gpu"].sum() > res["gpu"].sum()  # more GPU asked than the cluster has
    assert (req["duration"] > 1).any() and set(req["round"]) == set(range(ROUNDS))


def test_every_mechanism_ran_every_round(gpu_run):
    _, _, t, manifest = gpu_run
    rounds = t["rounds"]
    assert set(rounds["mechanism"]) == set(available())
    assert len(rounds) == len(available()) * 2 * ROUNDS
    assert list(manifest["scenario"]["market"]["dimensions"]) == list(DIMS)
    assert not rounds["mechanism_failed"].any()
    assert (rounds.groupby("mechanism")["n_allocated"].sum() > 0).all()


def test_written_tables_pass_the_independent_check(gpu_run):
    _, _, t, _ = gpu_run
    checked = 0
    for seed, alloc in t["allocations"].groupby("seed"):
        req = t["requests"][t["requests"]["seed"] == seed].drop(columns="seed")
        res = t["resources"][t["resources"]["seed"] == seed].drop(columns="seed")
        for _, per_round in alloc.groupby(["mechanism", "round"]):  # every round on its own too
            check_run_tables(req, res, per_round, dimensions=DIMS)
        checked += check_run_tables(req, res, alloc, dimensions=DIMS)
    assert checked == len(t["allocations"]) > 0


def test_written_market_is_the_input(gpu_run):
    requests, resources, t, _ = gpu_run
    for given, written, key in ((requests, t["requests"], "request_id"), (resources, t["resources"], "resource_id")):
        for _seed, part in written.groupby("seed"):
            part = part.drop(columns="seed").set_index(key).loc[given[key]]
            for col in given.columns.drop(key):
                if not pd.api.types.is_numeric_dtype(given[col]):
                    assert part[col].astype(str).tolist() == given[col].tolist(), col
                else:
                    np.testing.assert_allclose(part[col].to_numpy(float), given[col].to_numpy(float), rtol=1e-12)


def joined(requests: pd.DataFrame, resources: pd.DataFrame, alloc: pd.DataFrame) -> pd.DataFrame:
    a = alloc.merge(requests, on="request_id", how="left", suffixes=("", "_req"), validate="many_to_one")
    return a.merge(resources, on="resource_id", how="left", suffixes=("", "_res"), validate="many_to_one")


def test_no_pod_on_a_node_type_it_excludes(gpu_run):
    requests, resources, t, _ = gpu_run
    a = joined(requests, resources, t["allocations"])
    assert a["resource_type"].notna().all() and a["allowed_types"].notna().all()
    listed = a[a["allowed_types"] != ""]
    assert len(listed) > 0  # pods with a list were served at all
    ok = [kind in allowed.split("|") for kind, allowed in zip(listed["resource_type"], listed["allowed_types"])]
    assert all(ok), listed.loc[~np.array(ok), ["mechanism", "request_id", "resource_id", "resource_type", "allowed_types"]]
    # every typed request placed on a typed node; T4-only pods only on T4s
    assert (listed["resource_type"] != "").all()
    assert (a.loc[a["allowed_types"] == "T4", "resource_type"] == "T4").all()
    # GPU pods only on nodes with enough GPU for one of them
    assert (a["gpu"] <= a["gpu_res"] + 1e-12).all()


def test_no_node_over_its_gpus_in_any_round(gpu_run):
    requests, resources, t, _ = gpu_run
    a = joined(requests, resources, t["allocations"])
    held = a.loc[a.index.repeat(a["duration"])].copy()
    held["held"] = held["round"] + held.groupby(level=0).cumcount()
    load = held.groupby(["mechanism", "seed", "resource_id", "held"])[list(DIMS)].sum()
    cap = resources.set_index("resource_id").loc[load.index.get_level_values("resource_id"), list(DIMS)]
    over = load.to_numpy() > cap.to_numpy() + 1e-9
    assert not over.any(), load[over.any(axis=1)]
    assert (held["duration"] > 1).any()  # long pods were placed and held


def test_utilization_per_dimension_is_the_load_of_the_allocations(gpu_run):
    """utilization_<dim> = used / total in the round, running pods included (computed here)."""
    requests, resources, t, _ = gpu_run
    a = joined(requests, resources, t["allocations"])
    rounds = t["rounds"].set_index(["mechanism", "seed", "round"])
    for (mech, seed, rnd), row in rounds.iterrows():
        live = a[(a["mechanism"] == mech) & (a["seed"] == seed) & (a["round"] <= rnd) & (a["round"] + a["duration"] > rnd)]
        for d in DIMS:
            expected = live[d].sum() / resources[d].sum()
            assert row[f"utilization_{d}"] == pytest.approx(expected, abs=1e-9), (mech, seed, rnd, d)
        # nodes without GPUs hold no GPU capacity: free GPU share = 1 - GPU utilisation
        assert row["unallocated_gpu"] == pytest.approx(1 - row["utilization_gpu"], abs=1e-9), (mech, seed, rnd)


def test_ids_come_back_as_the_input_strings(gpu_run):
    requests, resources, t, _ = gpu_run
    for table in ("allocations", "requests"):
        assert not pd.api.types.is_numeric_dtype(t[table]["request_id"])
        assert all(isinstance(v, str) for v in t[table]["request_id"])
    for table in ("allocations", "resources"):
        assert not pd.api.types.is_numeric_dtype(t[table]["resource_id"])
        assert all(isinstance(v, str) for v in t[table]["resource_id"])
    alloc = t["allocations"]
    assert set(alloc["request_id"]) <= set(requests["request_id"])
    assert set(alloc["resource_id"]) <= set(resources["resource_id"])
    assert set(t["requests"]["user_id"]) == set(requests["user_id"])
    assert not alloc.duplicated(["mechanism", "seed", "request_id"]).any()


def test_no_dimension_may_take_an_output_columns_name(gpu_run):
    """RESULT_COLUMNS is every column of the run's allocations and users tables (which the
    feasibility check joins to the market tables), and each is refused as a dimension."""
    from scenarios.tables import RESULT_COLUMNS, check_dimensions

    _, _, t, _ = gpu_run
    assert set(t["allocations"].columns) | set(t["users"].columns) == set(RESULT_COLUMNS)
    for name in RESULT_COLUMNS:
        with pytest.raises(MarketInputError, match="is another column of the tables"):
            check_dimensions(["cpu", name])


def test_round_columns_finite_and_shares_in_unit_interval(gpu_run):
    _, _, t, _ = gpu_run
    rounds = t["rounds"]
    for col in SHARES:
        assert col in rounds.columns, col
        v = rounds[col].to_numpy(float)
        assert np.isfinite(v).all(), col
        assert ((v >= -1e-12) & (v <= 1 + 1e-12)).all(), (col, v.min(), v.max())
    assert (rounds["gpu_fragmentation"] <= rounds["unallocated_gpu"] + 1e-12).all()
    assert (rounds["utilization_gpu"] > 0).all()


def test_oracle_columns(gpu_run):
    _, _, t, _ = gpu_run
    r = t["rounds"]
    for col in ("opt_welfare", "bound_welfare", "alg_opt", "alg_bound", "bound_value_welfare", "alg_value_bound"):
        assert np.isfinite(r[col].to_numpy(float)).all(), col
    assert (r["bound_welfare"] >= r["welfare"] - 1e-9).all()
    assert (r["opt_welfare"] >= r["welfare"] - 1e-9).all()
    assert (r["bound_welfare"] >= r["opt_welfare"] - 1e-9).all()
    assert (r["bound_value_welfare"] >= r["value_welfare"] - 1e-9).all()
    assert set(r["opt_status"]) <= {"optimal", "feasible", "bound_only", "failed"}


def test_csv_and_parquet_inputs_give_the_same_run(tmp_path):
    requests, resources = gpu_market()
    outs = {}
    for fmt in ("csv", "parquet"):
        toml = write_market(tmp_path / fmt, requests[requests["round"] < 2], resources, fmt, mechanisms=["greedy", "drf"],
                            rounds=2)
        code, err = cli("run", str(toml), "--out", str(tmp_path / fmt / "out"), "--quiet")
        assert code == 0, err
        outs[fmt] = tables(tmp_path / fmt / "out")
    pd.testing.assert_frame_equal(outs["csv"]["allocations"], outs["parquet"]["allocations"])
    pd.testing.assert_frame_equal(outs["csv"]["rounds"], outs["parquet"]["rounds"])


# --- 2. brute force on tiny markets -------------------------------------------------------

TINY_DIMS = {1: ["cpu"], 2: ["cpu", "gpu"], 3: ["cpu", "mem", "gpu"], 4: ["cpu", "mem", "gpu", "disk"]}


def tiny_market(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """3 requests x 3 resources, one round, D in 1..4, random types and lists; budgets never bind."""
    rng = np.random.default_rng(1000 + seed)
    dims = TINY_DIMS[int(rng.integers(1, 5))]
    kinds = ["A", "B", ""]
    res = pd.DataFrame({
        "resource_id": [f"node-{k}" for k in "xyz"],
        **{d: (rng.uniform(1, 3, 3) if d == "cpu" or d == "mem" else rng.choice([0.0, 0.5, 1.0, 2.0], 3)) for d in dims},
        "unit_cost": rng.uniform(0.1, 1.0, 3), "reliability": 0.99, "availability": 0.99,
        "energy_efficiency": rng.uniform(0.3, 0.9, 3), "x": rng.uniform(0, 2, 3), "y": rng.uniform(0, 2, 3),
        "resource_type": rng.choice(kinds, 3),
    })
    lists = ["", "A", "B", "A|B", "C", "B|C"]
    req = pd.DataFrame({
        "request_id": [f"pod-{i}" for i in range(3)], "user_id": [f"u{int(u)}" for u in rng.integers(0, 2, 3)],
        "round": 0,
        **{d: (rng.uniform(0.3, 2.0, 3) if d in ("cpu", "mem") else rng.choice([0.0, 0.25, 0.5, 1.0, 2.0], 3))
           for d in dims},
        "budget": 1000.0, "priority": rng.integers(1, 10, 3), "x": rng.uniform(0, 2, 3), "y": rng.uniform(0, 2, 3),
        "allowed_types": rng.choice(lists, 3),
    })
    return req, res, dims


def eligible_by_name(allowed: str, kind: str) -> bool:
    return allowed == "" or (kind != "" and kind in allowed.split("|"))


@pytest.mark.parametrize("seed", range(40))
def test_tiny_markets_against_brute_force(tmp_path, seed):
    """Feasible pairs = eligible by name and fitting; optimal and the oracle within them; opt = brute force."""
    req, res, dims = tiny_market(seed)
    toml = write_market(tmp_path, req, res, "csv", market_extra=f"dimensions = {json.dumps(dims)}",
                        mechanisms=["optimal"], rounds=1, top_extra="oracle = true")
    toml.write_text(toml.read_text().replace("node_limit = 200", "node_limit = 100000"))
    model = MarketModel(load(toml), "optimal", 1)
    model.step()
    record = model.record
    market = RoundMarket.of_book(record.book, record.resource_matrix, record.free, record.start_won, model.round_params)
    # the book's rows and the market's resources, by id, in the input tables
    book_ids = model.market.requests["request_id"].to_numpy()[record.book.keys].tolist()
    res_ids = model.market.resources["resource_id"].tolist()
    assert sorted(book_ids) == sorted(req["request_id"]) and sorted(res_ids) == sorted(res["resource_id"])
    r = req.set_index("request_id").loc[book_ids]
    s = res.set_index("resource_id").loc[res_ids]
    n, m = len(r), len(s)
    demand, cap = r[dims].to_numpy(float), s[dims].to_numpy(float)
    ok = np.array([[eligible_by_name(r["allowed_types"].iloc[i], s["resource_type"].iloc[j])
                    and bool(np.all(demand[i] <= cap[j])) for j in range(m)] for i in range(n)])
    # the framework's own per-pair utilities b_ij over every pair it calls feasible
    kres, _, gain, *_ = market.price(np.ones(n), np.zeros(n), np.zeros((m, len(dims))), -np.inf, m)
    offered = np.zeros((n, m), dtype=bool)
    utility = np.full((n, m), np.nan)
    for i, k in zip(*np.nonzero(kres >= 0)):
        offered[i, kres[i, k]] = True
        utility[i, kres[i, k]] = gain[i, k]
    # budgets never bind and there are no QoS thresholds: feasible = eligible by name and fits
    np.testing.assert_array_equal(offered, ok, err_msg=f"dims {dims}\n{r}\n{s}")
    best = 0.0
    for choice in itertools.product(*[[-1, *np.flatnonzero(ok[i]).tolist()] for i in range(n)]):
        used = np.zeros_like(cap)
        for i, j in enumerate(choice):
            if j >= 0:
                used[j] += demand[i]
        if np.any(used > cap + 1e-9):
            continue
        won = np.array([i for i, j in enumerate(choice) if j >= 0], dtype=np.int64)
        f = sum(utility[i, j] for i, j in enumerate(choice) if j >= 0)
        f += fairness_gain(market.user[won], market.priority[won], market.start_won, market.weights[3])
        best = max(best, f)
    # the optimal mechanism's allocation: eligible, within capacity, at most the brute-force best
    alloc = model.allocations_table()
    used = np.zeros_like(cap)
    for rid, sid in zip(alloc["request_id"], alloc["resource_id"]):
        i, j = book_ids.index(rid), res_ids.index(sid)
        assert ok[i, j], (rid, sid)
        used[j] += demand[i]
    assert np.all(used <= cap + 1e-9)
    check_run_tables(model.market.requests, model.market.resources, alloc, dimensions=tuple(dims))
    metrics = model.rounds_table().iloc[0]
    assert metrics["welfare"] <= best + 1e-9
    assert metrics["opt_welfare"] <= best + 1e-9
    assert metrics["bound_welfare"] >= best - 1e-9
    # a 3 x 3 market with 100,000 nodes is always proven, over the whole market
    assert metrics["opt_status"] == "optimal" and metrics["opt_scope"] == "all", metrics[["opt_status", "opt_scope"]]
    assert metrics["opt_welfare"] == pytest.approx(best, abs=1e-7)
    assert metrics["welfare"] == pytest.approx(best, abs=1e-7)  # optimal sees every pair of a 3 x 3 market


def test_tiny_markets_cover_every_dimension_count_and_eligibility_case():
    markets = [tiny_market(s) for s in range(40)]
    assert {len(d) for _, _, d in markets} == {1, 2, 3, 4}
    cases = set()
    for req, res, _ in markets:
        for a in req["allowed_types"]:
            for k in res["resource_type"]:
                cases.add((a == "", eligible_by_name(a, k), k == ""))
    assert cases >= {(True, True, True), (True, True, False), (False, True, False), (False, False, False),
                     (False, False, True)}


# --- 3. bad input: one line, exit 2, nothing written -------------------------------------


def refused(tmp_path: Path, requests: pd.DataFrame, resources: pd.DataFrame, market_extra: str = GPU_MARKET_KEYS,
            raw_requests: str | None = None, toml_text: str | None = None) -> str:
    """Run the market and assert the one-line refusal; returns the line."""
    toml = write_market(tmp_path, requests, resources, "csv", market_extra=market_extra, mechanisms=["greedy"])
    if raw_requests is not None:
        (tmp_path / "requests.csv").write_text(raw_requests)
    if toml_text is not None:
        toml.write_text(toml_text)
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--oracle", "--quiet")
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.csv", "resources.csv", "scenario.toml"]
    return lines[0]


@pytest.mark.parametrize("table", ["requests", "resources"])
def test_a_dimension_column_missing(tmp_path, table):
    req, res = gpu_market()
    line = refused(tmp_path, req.drop(columns="gpu") if table == "requests" else req,
                   res.drop(columns="gpu") if table == "resources" else res)
    assert f"{table}.csv" in line and "gpu" in line and "missing column" in line, line


def test_a_negative_gpu_demand(tmp_path):
    req, res = gpu_market()
    req.loc[6, "gpu"] = -0.5
    line = refused(tmp_path, req, res)
    assert "requests.csv" in line and "row 7" in line and "line 8" in line and "'gpu'" in line and "-0.5" in line, line


def test_a_non_numeric_gpu_capacity(tmp_path):
    req, res = gpu_market()
    res["gpu"] = res["gpu"].astype(object)
    res.loc[4, "gpu"] = "eight"
    line = refused(tmp_path, req, res)
    assert "resources.csv" in line and "row 5" in line and "'gpu'" in line and "eight" in line, line


@pytest.mark.parametrize(("value", "expect"), [
    ('["cpu", "mem", "gpu", "gpu"]', "twice"),
    ('["cpu", "mem", "gpu-mem"]', "gpu-mem"),
    ('["cpu", "mem", "1gpu"]', "1gpu"),
    ("[]", "non-empty list"),
    ('"cpu,mem,gpu"', "non-empty list"),
    ("{ cpu = 1 }", "non-empty list"),
    ('["cpu", "mem", 3]', "3"),
    ('["cpu", "mem", "budget"]', "budget"),
])
def test_bad_dimensions(tmp_path, value, expect):
    req, res = gpu_market()
    line = refused(tmp_path, req, res, market_extra=f"dimensions = {value}")
    assert "scenario.toml" in line and "market.dimensions" in line and expect in line, line


@pytest.mark.parametrize(("weights", "expect"), [
    ("{ tpu = 1.0 }", "market.price_weights.tpu"),
    ("{ gpu = -1.0, cpu = 0.05 }", "market.price_weights.gpu"),
    ("{ gpu = 0.0, cpu = 0 }", "market.price_weights"),
    ("{ gpu = true }", "market.price_weights.gpu"),
    ("{}", "market.price_weights"),
    ("[1.0, 0.05]", "market.price_weights"),
    ('{ gpu = "1" }', "market.price_weights.gpu"),
])
def test_bad_price_weights(tmp_path, weights, expect):
    req, res = gpu_market()
    line = refused(tmp_path, req, res, market_extra=f'dimensions = ["cpu", "mem", "gpu"]\nprice_weights = {weights}')
    assert "scenario.toml" in line and expect in line, line


def test_price_weights_name_a_default_dimension_only(tmp_path):
    """Without ``dimensions`` the market is cpu, mem: a gpu weight names no dimension."""
    req, res = gpu_market()
    line = refused(tmp_path, req, res, market_extra="price_weights = { gpu = 1.0 }")
    assert "market.price_weights.gpu" in line and "cpu, mem" in line, line


@pytest.mark.parametrize("bad", ["V100M16||T4", "|T4", "T4|", "T4| "])
def test_allowed_types_with_an_empty_entry(tmp_path, bad):
    req, res = gpu_market()
    req.loc[9, "allowed_types"] = bad
    line = refused(tmp_path, req, res)
    assert "requests.csv" in line and "row 10" in line and "allowed_types" in line and "empty type" in line, line


def test_a_synthetic_market_without_cpu(tmp_path):
    toml = tmp_path / "synthetic.toml"
    toml.write_text(textwrap.dedent("""\
        name = "no-cpu"
        rounds = 2
        mechanisms = ["greedy"]
        [market]
        source = "synthetic"
        dimensions = ["mem", "gpu"]
        """))
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet")
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "market.dimensions" in lines[0] and "cpu" in lines[0], err
    assert str(toml) in lines[0], err
    assert not out.exists()
    # refused on load, as every other scenario key (market scenarios lists it as invalid)
    with pytest.raises(MarketInputError, match=r"market\.dimensions"):
        load(toml)


# --- 4. default markets unchanged ----------------------------------------------------------


def test_default_scenario_is_cpu_and_mem(tmp_path):
    out = tmp_path / "out"
    code, err = cli("run", "default", "--out", str(out), "--rounds", "2", "--seeds", "0", "--mechanisms",
                    "mohaf,greedy,drf", "--quiet")
    assert code == 0, err
    rounds = tables(out)["rounds"]
    assert len(rounds) == 3 * 2
    np.testing.assert_array_equal(rounds["utilization"].to_numpy(), rounds["utilization_cpu"].to_numpy())
    assert {"utilization_cpu", "utilization_mem", "dominant_share_jain", "envy_share"} <= set(rounds.columns)
    assert not any(c.endswith("_gpu") or c.startswith("gpu_") for c in rounds.columns)
    assert load("default").dimensions == ("cpu", "mem")


def test_no_dimensions_key_is_cpu_mem_exactly(tmp_path):
    """A tabular market without ``dimensions`` runs exactly as one that names ``["cpu", "mem"]``."""
    req, res = gpu_market()
    req, res = req.drop(columns=["gpu", "allowed_types"]), res.drop(columns=["gpu", "resource_type"])
    req = req[req["round"] < 2]
    outs = {}
    for name, extra in (("implicit", ""), ("explicit", 'dimensions = ["cpu", "mem"]')):
        toml = write_market(tmp_path / name, req, res, "csv", market_extra=extra, mechanisms=["mohaf", "greedy"], rounds=2)
        code, err = cli("run", str(toml), "--out", str(tmp_path / name / "out"), "--quiet")
        assert code == 0, err
        outs[name] = tables(tmp_path / name / "out")
    for table in ("rounds", "allocations"):
        pd.testing.assert_frame_equal(outs["implicit"][table], outs["explicit"][table])
    np.testing.assert_array_equal(outs["implicit"]["rounds"]["utilization"], outs["implicit"]["rounds"]["utilization_cpu"])


# --- regressions ---------------------------------------------------------------------------


def test_a_round_with_no_requests_in_the_book(tmp_path):
    """Rounds after every request has left the book run (crashed in round_multiresource before 04ef456)."""
    req, res = gpu_market()
    toml = write_market(tmp_path, req.head(4).assign(round=0), res, "csv", mechanisms=["greedy"], rounds=ROUNDS + 3)
    code, err = cli("run", str(toml), "--out", str(tmp_path / "out"), "--oracle", "--quiet")
    assert code == 0, err
    rounds = tables(tmp_path / "out")["rounds"]
    empty = rounds[rounds["n_requests"] == 0]
    assert len(empty) > 0
    for col in SHARES:
        assert np.isfinite(empty[col].to_numpy(float)).all(), col


# --- 5. type names as a user writes them ----------------------------------------------------


def test_number_like_type_names_in_csv_are_text(tmp_path):
    """GPU models called 3090 and 4090: in CSV a type is the text written, as ids are."""
    req, res = gpu_market()
    res["resource_type"] = ["4090", "4090", "3090", "3090", "", "", "4090", "3090", "", "", "4090", "3090"][: len(res)]
    req["allowed_types"] = np.where(req["gpu"] > 0, "3090", "")
    toml = write_market(tmp_path / "m", req, res, mechanisms=["greedy"])
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet", "--no-oracle")
    assert code == 0, err
    t = tables(out)
    assert t["resources"]["resource_type"].tolist()[:4] == ["4090", "4090", "3090", "3090"]
    one = {k: v[v["seed"] == 1] for k, v in t.items() if "seed" in v}
    a = joined(one["requests"], one["resources"], one["allocations"])
    gpu_pods = a[a["gpu"] > 0]
    assert len(gpu_pods) and (gpu_pods["resource_type"] == "3090").all()


def test_pods_allowing_only_types_nobody_has_are_warned_about(tmp_path):
    req, res = gpu_market()
    req.loc[req["gpu"] > 0, "allowed_types"] = "A100,T4"  # a comma, not |: one type no node has
    toml = write_market(tmp_path / "m", req, res, mechanisms=["greedy"])
    out = tmp_path / "out"
    code, err = cli("run", str(toml), "--out", str(out), "--quiet", "--no-oracle")  # a MarketWarning: printed
    assert code == 0, err
    assert err.count("warning: gpu-cluster (seed ") == 2, err
    assert "46 requests allow only resource types no resource has ('A100,T4'); nobody can serve them" in err, err
    t = tables(out)
    served = t["allocations"]["request_id"]
    assert not req.loc[req["gpu"] > 0, "request_id"].isin(served).any()
