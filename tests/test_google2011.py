"""Google 2011 trace: loaders, data fetch/verify, trace markets, feasibility."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys

import numpy as np
import pytest

from market.errors import MarketInputError
from scenarios import google2011


def test_loaders_read_the_official_schema():
    jobs = google2011.first_submits("job_events", (0, 1), 2500)
    assert list(jobs.columns) == [*google2011.SCHEMAS["job_events"], "part"]
    assert len(jobs) == 3553 and jobs.groupby("part").size().tolist() == [2500, 1053]
    assert (jobs.loc[jobs["part"] == 0, "timestamp"] == 0).all()
    tasks = google2011.read_events("task_events", (0, 1), columns=["job_id", "task_index", "event_type", "cpu_request"])
    assert len(tasks) == 450_146 + 77_776
    assert tasks["cpu_request"].dtype == np.float64 and tasks["cpu_request"].isna().any()
    machines = google2011.machines_at(0)
    assert len(machines) == 12_477
    assert machines["cpu"].sum() == pytest.approx(6603.25)
    classes = machines.groupby(["cpu", "mem"]).size()
    assert classes[(0.5, 0.4995)] == 6672 and classes[(1.0, 1.0)] == 788


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(MarketInputError) as err:
        google2011.read_events("job_events", (0,), root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "job_events/part-00000-of-00500.csv.gz" in msg and "market data fetch google2011" in msg


def test_missing_file_on_the_command_line(tmp_path):
    env = {"MARKET_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "market", "run", "google2011-mohaf", "--out", str(tmp_path / "out"), "--rounds", "1", "--quiet"],
        check=False, capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: missing trace file")
    assert "market data fetch google2011" in lines[0]
    assert not (tmp_path / "out").exists()


def test_gzip_and_plain_copies_read_the_same(tmp_path):
    src = google2011.find_part("job_events", 1)
    dest = tmp_path / google2011.TRACE / "job_events"
    dest.mkdir(parents=True)
    with gzip.open(src, "rb") as fin, open(dest / "part-00001-of-00500.csv", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    a = google2011.read_events("job_events", (1,))
    b = google2011.read_events("job_events", (1,), root=tmp_path)
    assert a.equals(b)


# --- market data fetch / verify (never the network: file:// mirrors and local copies) ---

JOB1 = "job_events/part-00001-of-00500.csv"


def _stage(root, name, content: bytes):
    path = root / google2011.TRACE / f"{name}.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content, mtime=0))
    return path


def _content(name) -> bytes:
    with gzip.open(google2011.find_part(*_table_part(name)), "rb") as fh:
        return fh.read()


def _table_part(name):
    table, part = name.split("/")
    return table, int(part.split("-")[1])


def test_verify_accepts_the_shared_copy_and_rejects_a_corrupted_one(tmp_path):
    from market.apps.data import verify

    assert [s.status for s in verify()] == ["ok"] * len(google2011.CONTENT_SHA256)
    good = _content(JOB1)
    _stage(tmp_path, JOB1, good.replace(b",0,", b",1,", 1))
    status = {s.name: s for s in verify(tmp_path)}
    assert status[JOB1].status == "mismatch"
    assert all(s.status == "missing" for n, s in status.items() if n != JOB1)
    proc = subprocess.run(
        [sys.executable, "-m", "market", "data", "verify", "--dir", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "mismatch" in proc.stdout and "market data fetch google2011" in proc.stderr
    _stage(tmp_path, JOB1, good)
    assert {s.name: s.status for s in verify(tmp_path)}[JOB1] == "ok"


def test_fetch_from_a_mirror_verifies_and_writes_atomically(tmp_path):
    from market.apps.data import fetch

    mirror = tmp_path / "mirror"
    good = _content(JOB1)
    _stage(mirror, JOB1, good)
    dest = tmp_path / "data"
    lines = []
    out = fetch(dest, [JOB1], base_url=(mirror / google2011.TRACE).as_uri(), log=lines.append)
    assert [s.status for s in out] == ["ok"] and "fetched" in lines[0]
    assert google2011.read_events("job_events", (1,), root=dest).equals(google2011.read_events("job_events", (1,)))
    # present and verified: skipped
    fetch(dest, [JOB1], base_url=(mirror / google2011.TRACE).as_uri(), log=lines.append)
    assert lines[-1].startswith("ok")
    # a corrupted mirror: error in one line, the verified copy stays, no temporaries left
    _stage(mirror, JOB1, good[:-10])
    with pytest.raises(MarketInputError, match="does not match"):
        fetch(dest, [JOB1], base_url=(mirror / google2011.TRACE).as_uri(), force=True, log=lines.append)
    folder = dest / google2011.TRACE / "job_events"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00001-of-00500.csv.gz"]
    assert google2011.read_events("job_events", (1,), root=dest).equals(google2011.read_events("job_events", (1,)))
    with pytest.raises(MarketInputError, match="cannot download"):
        fetch(tmp_path / "other", [JOB1], base_url=(tmp_path / "nowhere").as_uri(), log=lines.append)


# --- trace markets -------------------------------------------------------------------


def _scenario(name, **changes):
    from scenarios.config import load

    return load(name).replace(**changes)


def test_mohaf_market_is_the_papers_instance_reauctioned():
    from scenarios.sources import build_market

    sc = _scenario("google2011-mohaf", rounds=2, horizon=2)  # a market of two rounds
    market = build_market(sc, 0)
    req, res = market.requests, market.resources
    assert len(res) == 888 and len(req) == 2 * 3553
    first = req[req["round"] == 0]
    assert np.bincount(first["scheduling_class"].astype(int)).tolist() == [747, 955, 1123, 728]
    assert first["cpu"].min() == pytest.approx(0.05) and (first["mem"] == 0).all()
    np.testing.assert_allclose(sorted(first["budget"].unique()), [40, 46 + 2 / 3, 53 + 1 / 3, 60])
    again = req[req["round"] == 1]
    assert (again["request_id"].to_numpy() == first["request_id"].to_numpy() + 3553).all()
    np.testing.assert_array_equal(again[["cpu", "x", "y", "user_id"]].to_numpy(), first[["cpu", "x", "y", "user_id"]].to_numpy())
    assert res["cpu"].between(0.5, 1).all() and res["unit_cost"].between(0.3, 0.8).all()
    assert first["user_id"].nunique() == 453 and market.priority_max == 10
    # the seed changes the synthetic parts, never the trace parts
    other = build_market(sc, 1)
    assert not np.allclose(other.resources["cpu"], res["cpu"])
    np.testing.assert_array_equal(other.requests["cpu"], req["cpu"])


def test_real_market_uses_real_requests_and_machines():
    from scenarios import google2011 as g
    from scenarios.sources import build_market

    sc = _scenario("google2011-real", rounds=6, horizon=6)  # a window of six rounds
    a, b = build_market(sc, 1), build_market(sc, 1)
    pd_equal = a.requests.equals(b.requests) and a.resources.equals(b.resources)
    assert pd_equal  # same seed, same market
    req, res = a.requests, a.resources
    assert req["round"].between(0, 5).all() and (req["submitted_s"] >= 600).all() and (req["submitted_s"] < 600 + 6 * 300).all()
    assert (np.diff(req["submitted_s"].to_numpy()) >= 0).all()
    assert (req["cpu"] > 0).all() and req["priority"].isin(range(12)).all() and a.priority_max == 11
    assert (req["duration"] >= 1).all() and (req["round"] + req["duration"] <= 6 + req["duration"].max()).all()
    # requests are real task rows: cpu and memory as in task_events
    tasks = g.read_events("task_events", (0, 1), columns=["job_id", "task_index", "event_type", "cpu_request", "memory_request"])
    first = tasks[tasks["event_type"] == 0].drop_duplicates(["job_id", "task_index"]).set_index(["job_id", "task_index"])
    look = first.loc[list(zip(req["job_id"], req["task_index"]))]
    np.testing.assert_allclose(look["cpu_request"].to_numpy(), req["cpu"].to_numpy())
    np.testing.assert_allclose(np.nan_to_num(look["memory_request"].to_numpy()), req["mem"].to_numpy())
    # machines are real: ids and capacities of machines alive at the window start
    alive = g.machines_at(600 * 1_000_000).set_index("machine_id")
    np.testing.assert_allclose(alive.loc[res["resource_id"], ["cpu", "mem"]].to_numpy(), res[["cpu", "mem"]].to_numpy())
    # sized so the market is contended: held cpu demand per round exceeds capacity
    held = float((req["cpu"] * req["duration"]).sum()) / 6
    assert held > 1.2 * res["cpu"].sum()


def test_bad_market_keys_are_one_line(tmp_path):
    from scenarios.config import load
    from scenarios.sources import build_market

    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nrounds = 2\nmechanisms = ["mohaf"]\n[market]\nsource = "google2011"\nvariant = "real"\nsample = 2.0\n')
    with pytest.raises(MarketInputError, match=r"bad.toml: key 'market.sample' must be in \(0, 1\]"):
        build_market(load(path), 0)
    path.write_text('name = "x"\nrounds = 2\nmechanisms = ["mohaf"]\n[market]\nsource = "google2011"\nvariant = "mohaf"\nsample = 0.1\n')
    with pytest.raises(MarketInputError, match=r"unknown key market\.sample for google2011 variant 'mohaf'"):
        build_market(load(path), 0)
    path.write_text('name = "x"\nrounds = 200\nmechanisms = ["mohaf"]\n[market]\nsource = "google2011"\nvariant = "real"\n')
    with pytest.raises(MarketInputError, match="ends after the loaded task_events parts"):
        build_market(load(path), 0)


def test_real_market_passes_the_independent_feasibility_check(tmp_path):
    from market.core.feasibility import check_run_tables
    from market.core.runner import run_scenario
    from tests.conftest import read_run

    sc = _scenario("google2011-real", rounds=4, seeds=[1])
    manifest = run_scenario(sc, tmp_path / "run")
    t = read_run(tmp_path / "run")
    assert set(t["allocations"]["mechanism"]) == set(sc.mechanisms)
    for seed, alloc in t["allocations"].groupby("seed"):
        req = t["requests"][t["requests"]["seed"] == seed].drop(columns="seed")
        res = t["resources"][t["resources"]["seed"] == seed].drop(columns="seed")
        assert check_run_tables(req, res, alloc, manifest["scenario"]["capacity"]["mode"]) == len(alloc)
    rounds = t["rounds"]
    assert (rounds.groupby("mechanism")["n_allocated"].sum() > 0).all()
    # contended: some round leaves requests unserved for every mechanism
    assert (rounds.groupby("mechanism")["satisfaction"].min() < 1).all()


def test_mohaf_market_runs_feasibly_with_reauction(tmp_path):
    from market.core.feasibility import check_run_tables
    from market.core.runner import run_scenario
    from tests.conftest import read_run

    sc = _scenario("google2011-mohaf", rounds=2, seeds=[0], mechanisms=["mohaf", "greedy", "random"])
    run_scenario(sc, tmp_path / "run")
    t = read_run(tmp_path / "run")
    req, res = t["requests"].drop(columns="seed"), t["resources"].drop(columns="seed")
    assert check_run_tables(req, res, t["allocations"]) == len(t["allocations"])
    r = t["rounds"]
    assert (r["n_requests"] == 3553).all()
    # cpu is enforced: more than one request per machine, never over capacity (checked above)
    assert (r["n_allocated"] > 888).all()
