"""Alibaba GPU trace (cluster-trace-gpu-v2023): the loader, the alibaba-gpu market, data fetch/verify.

The real files come from ``$MARKET_DATA_DIR`` (tests/conftest.py); the record rules and the
one-line errors run on small hand-written files in ``tmp_path``. Nothing here plays
rounds (the engine's third dimension is separate work).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from market.errors import MarketInputError
from scenarios import alibaba_gpu as ali
from scenarios.config import Scenario

NODES = ali.NODE_FILE
PODS = ali.POD_FILE


def _scenario(rounds: int = 4, **market) -> Scenario:
    return Scenario(name="ali", rounds=rounds, seeds=[1], mechanisms=["greedy"],
                    market={"source": "alibaba_gpu", **market}, path="ali.toml")


def _build(scenario: Scenario, seed: int = 1):
    return ali.build(scenario, np.random.default_rng(seed))


# --- the real files -------------------------------------------------------------------------


def test_reader_keeps_the_trace_as_published():
    nodes, pods = ali.nodes(), ali.pods()
    assert len(nodes) == 1213 and len(pods) == 8152
    assert nodes["resource_id"].iat[0] == "openb-node-0000" and pods["name"].iat[5] == "openb-pod-0005"
    assert nodes.groupby("model")["gpu"].sum().to_dict() == {
        "A10": 2.0, "G2": 4392.0, "G3": 312.0, "P100": 265.0, "T4": 842.0, "V100M16": 195.0, "V100M32": 204.0}
    # pod 1: 6000 milli-cores, 12288 MiB, one GPU shared at 460 milli
    one = pods.set_index("name").loc["openb-pod-0001"]
    assert (one["cpu"], one["mem"], one["gpu"], one["qos"]) == (6.0, 12.0, 0.46, "LS")
    assert (pods["gpu"] == 0).sum() == 1088  # CPU-only pods
    assert pods["gpu"].max() == 8.0 and not pods[["cpu", "mem", "gpu", "created", "deleted"]].isna().any().any()


def test_alibaba_market_on_the_real_trace():
    sc = _scenario(rounds=20, step_seconds=28_800)
    market = _build(sc)
    req, res = market.requests, market.resources
    assert market.dimensions == ("cpu", "mem", "gpu") and market.priority_max == 3.0
    assert (len(req), len(res)) == (1571, 9)
    # ids are the trace's strings, exactly
    assert pd.api.types.is_string_dtype(req["request_id"]) and req["request_id"].iat[0] == "openb-pod-0946"
    assert res["resource_id"].str.fullmatch(r"openb-node-\d{4}").all()
    # demands as in the pod file: a 460-milli GPU share is 0.46 GPU; eligibility is gpu_spec
    pods = ali.pods().set_index("name").loc[req["request_id"]]
    np.testing.assert_allclose(req[["cpu", "mem", "gpu"]].to_numpy(), pods[["cpu", "mem", "gpu"]].to_numpy())
    shared = req[np.isclose(req["gpu"], 0.46)]
    assert len(shared) > 0 and (pods.loc[shared["request_id"], "gpu"] == 0.46).all()
    assert req["allowed_types"].tolist() == pods["gpu_spec"].tolist()
    assert (req["allowed_types"] == "V100M16|V100M32").sum() > 0
    # capacities and types as in the node file
    nodes = ali.nodes().set_index("resource_id").loc[res["resource_id"]]
    np.testing.assert_allclose(res[["cpu", "mem", "gpu"]].to_numpy(), nodes[["cpu", "mem", "gpu"]].to_numpy())
    assert res["resource_type"].tolist() == nodes["model"].tolist()
    assert res["resource_type"].value_counts().to_dict() == {"G2": 4, "T4": 3, "P100": 1, "V100M16": 1}
    # rounds from creation times (day 120, 8-hour rounds), durations >= 1, no NaN
    assert ((req["created_s"] - 10_368_000) // 28_800).tolist() == req["round"].tolist()
    assert req["round"].between(0, 19).all() and (req["duration"] >= 1).all()
    assert not req.drop(columns="max_latency").isna().any().any() and not res.isna().any().any()
    assert np.isinf(req["max_latency"]).all()
    # QoS gives priority; tenants are a balanced seeded split
    assert dict(zip(req["qos"], req["priority"])) == {"LS": 3, "BE": 1, "Burstable": 2, "Guaranteed": 3}
    assert set(req["user_id"]) == set(range(20)) and np.ptp(req["user_id"].value_counts().to_numpy()) <= 1
    # contended on the GPU dimension: held GPU demand per round is 1.3x the sampled GPUs or more
    inside = np.minimum(req["duration"], 20 - req["round"])
    assert (req["gpu"] * inside).sum() / 20 >= 1.3 * res["gpu"].sum() * 0.9
    # budgets cover the base price of the priced quantity (unit costs U(0.3, 0.8))
    q = 0.05 * req["cpu"] + 0.005 * req["mem"] + 1.0 * req["gpu"]
    assert (req["budget"] >= 0.8 * 0.75 * q.clip(lower=0.01) * req["duration"] - 1e-9).all()
    # pods whose only models are absent from the sample are kept and counted
    assert ali.unservable_spec(market) == 16 == ali.dropped_records(sc)["unservable_spec"]


def test_same_seed_same_tables_other_seed_differs():
    sc = _scenario(rounds=6)
    a, b, c = _build(sc, 1), _build(sc, 1), _build(sc, 2)
    for x, y in ((a.requests, b.requests), (a.resources, b.resources)):
        assert pd.util.hash_pandas_object(x).to_numpy().tobytes() == pd.util.hash_pandas_object(y).to_numpy().tobytes()
        assert x.equals(y)
    assert a.requests["request_id"].tolist() == c.requests["request_id"].tolist()  # same pods...
    assert not a.requests["user_id"].equals(c.requests["user_id"])  # ...other tenants, budgets, nodes
    assert not a.requests["budget"].equals(c.requests["budget"])
    assert not a.resources["resource_id"].equals(c.resources["resource_id"])


def test_shipped_scenario_builds_through_build_market():
    from scenarios.config import load
    from scenarios.sources import build_market, market_notes

    sc = load("alibaba-gpu")
    assert sc.market["source"] == "alibaba_gpu" and sc.oracle is False and sc.seeds == [1, 2, 3]
    market = build_market(sc, 1)
    assert market.dimensions == ("cpu", "mem", "gpu") and len(market.requests) == 1571
    assert market_notes(sc) == {"trace_drops": {"deletion_before_creation": 0, "no_deletion": 0, "unservable_spec": 16}}


def test_bad_market_keys_are_one_line():
    with pytest.raises(MarketInputError, match=r"ali.toml: key 'market.step_seconds' must be >= 1, got 0"):
        _build(_scenario(step_seconds=0))
    with pytest.raises(MarketInputError, match=r"ali.toml: unknown key market.sample for source 'alibaba_gpu'"):
        _build(_scenario(sample=0.5))
    with pytest.raises(MarketInputError, match=r"key 'market.dimensions' must be \['cpu', 'mem', 'gpu'\]"):
        _build(_scenario(dimensions=["cpu", "mem"]))
    with pytest.raises(MarketInputError, match=r"key 'market.users' must be int, got 2.5"):
        _build(_scenario(users=2.5))
    with pytest.raises(MarketInputError, match="ends after the trace"):
        _build(_scenario(rounds=200, step_seconds=86_400))
    with pytest.raises(MarketInputError, match="holds no pods"):
        _build(_scenario(rounds=2, start_seconds=100, step_seconds=3600))


# --- hand-written files: rules and errors ------------------------------------------------------

NODE_CSV = """\
sn,cpu_milli,memory_mib,gpu,model
node-a,64000,262144,2,P100
node-b,96000,393216,8,G2
node-c,32000,131072,0,
"""
POD_CSV = """\
name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
pod-0,4000,8192,1,460,,LS,Running,0,100,0
pod-1,2000,4096,0,0,,BE,Succeeded,50,7300,50
pod-2,8000,16384,2,1000,V100M16|V100M32,Burstable,Pending,3600,3700,
pod-3,1000,1024,1,1000,P100,LS,Running,3700,,3700
pod-4,1000,1024,1,500,,BE,Failed,4000,3000,4000
pod-5,1000,0,8,1000,G2,Guaranteed,Running,7100,7199,7100
"""


def _write(root, nodes: str = NODE_CSV, pods: str = POD_CSV) -> None:
    folder = root / ali.TRACE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NODES).write_text(textwrap.dedent(nodes))
    (folder / PODS).write_text(textwrap.dedent(pods))


@pytest.fixture
def small(tmp_path, monkeypatch):
    monkeypatch.setenv("MARKET_DATA_DIR", str(tmp_path))
    _write(tmp_path)
    return tmp_path


def test_small_trace_rules(small):
    sc = _scenario(rounds=2, start_seconds=0, step_seconds=3600, users=2, machines=3)
    market = _build(sc)
    req, res = market.requests, market.resources
    # pod-4 (deleted before created) is dropped; pod-3 (no deletion) holds to the window's end
    assert req["request_id"].tolist() == ["pod-0", "pod-1", "pod-2", "pod-3", "pod-5"]
    assert req["round"].tolist() == [0, 0, 1, 1, 1]
    assert req["duration"].tolist() == [1, 3, 1, 1, 1]  # ceil(7250 / 3600) = 3; open-ended: 2 - 1
    assert req["gpu"].tolist() == [0.46, 0.0, 2.0, 1.0, 8.0]
    assert req["cpu"].tolist() == [4.0, 2.0, 8.0, 1.0, 1.0] and req["mem"].tolist() == [8.0, 4.0, 16.0, 1.0, 0.0]
    assert req["allowed_types"].tolist() == ["", "", "V100M16|V100M32", "P100", "G2"]
    assert req["priority"].tolist() == [3, 1, 2, 3, 3] and req["open_ended"].tolist() == [False] * 3 + [True, False]
    # the CPU-only node is an untyped resource with no GPU
    assert res.set_index("resource_id").loc["node-c", ["gpu", "resource_type"]].tolist() == [0.0, ""]
    assert sorted(res["resource_type"]) == ["", "G2", "P100"]
    assert ali.dropped_records(sc) == {"deletion_before_creation": 1, "no_deletion": 1, "unservable_spec": 1}
    assert ali.unservable(req, res).tolist() == [False, False, True, False, False]


@pytest.mark.parametrize(("which", "old", "new", "expected"), [
    ("pods", "pod-1,2000,", "pod-1,,", f"{PODS}: line 3: field 'cpu_milli' is empty"),
    ("pods", "pod-2,8000,16384,2,", "pod-2,8000,16384,two,", f"{PODS}: line 4: field 'num_gpu' is not a number: 'two'"),
    ("pods", "pod-2,8000,16384,2,", "pod-2,8000,16384,1.5,", f"{PODS}: line 4: field 'num_gpu' must be a whole number"),
    ("pods", "pod-0,4000,8192,1,460,", "pod-0,4000,8192,1,0,", f"{PODS}: line 2: field 'gpu_milli' must be in 1..1000"),
    ("pods", "Burstable", "Gold", f"{PODS}: line 4: field 'qos' is 'Gold', not one of LS"),
    ("pods", "V100M16|V100M32", "V100M16||V100M32", f"{PODS}: line 4: field 'gpu_spec' has an empty model"),
    ("pods", "pod-5,", "pod-0,", f"{PODS}: line 7: field 'name': 'pod-0' is a duplicate"),
    ("pods", ",7100,7199,", ",,7199,", f"{PODS}: line 7: field 'creation_time' is empty"),
    ("pods", ",qos,", ",class,", f"{PODS}: line 1: missing column(s) qos"),
    ("nodes", "node-b,96000,", "node-b,-96000,", f"{NODES}: line 3: field 'cpu_milli' must be >= 0"),
    ("nodes", "node-a,64000,262144,", "node-a,64000,0,", f"{NODES}: line 2: field 'memory_mib' must be > 0"),
    ("nodes", "node-c,", "node-a,", f"{NODES}: line 4: field 'sn': 'node-a' is a duplicate"),
])
@pytest.mark.parametrize("blank", [False, True], ids=["", "blank-lines"])
def test_bad_fields_are_one_line(tmp_path, monkeypatch, which, old, new, expected, blank):
    monkeypatch.setenv("MARKET_DATA_DIR", str(tmp_path))
    text = {"nodes": NODE_CSV, "pods": POD_CSV}
    assert old in text[which]
    text[which] = text[which].replace(old, new, 1)
    if blank:  # a blank line after every line (pandas skips them): file line n becomes 2n - 1
        text[which] = text[which].replace("\n", "\n\n")
        expected = re.sub(r"line (\d+)", lambda m: f"line {2 * int(m.group(1)) - 1}", expected)
    _write(tmp_path, text["nodes"], text["pods"])
    with pytest.raises(MarketInputError) as err:
        _build(_scenario(rounds=2, start_seconds=0, step_seconds=3600, machines=3))
    msg = str(err.value)
    assert "\n" not in msg and expected in msg and str(tmp_path / ali.TRACE) in msg


def test_missing_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MARKET_DATA_DIR", str(tmp_path))
    with pytest.raises(MarketInputError, match=r"missing trace file .*alibaba-gpu-2023/openb_pod_list_gpuspec33.csv "
                       r"\(run: market data fetch alibaba-gpu-2023\)"):
        _build(_scenario())


# --- market data fetch / verify (file:// mirrors only) -----------------------------------------


def test_verify_every_dataset(tmp_path):
    from market.apps.data import verify, verify_all

    assert [s.status for s in verify(data="alibaba-gpu-2023")] == ["ok", "ok"]
    # google2011 5 files, alibaba-gpu-2023 2, azure-llm-2023 2
    assert len(verify_all()) == 9 and {s.status for s in verify_all()} == {"ok"}
    _write(tmp_path)  # right names, wrong content
    status = {s.name: s.status for s in verify_all(tmp_path)}
    assert status[NODES] == status[PODS] == "mismatch"
    proc = subprocess.run([sys.executable, "-m", "market", "data", "verify", "--dir", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 9
    assert f"mismatch  {tmp_path / ali.TRACE / PODS} (content sha256" in proc.stdout
    assert "market data fetch google2011" in proc.stderr and "market data fetch alibaba-gpu-2023" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "market", "data", "verify", "--dataset", "alibaba-gpu-2023"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1].startswith("all 2 files verified")


def test_fetch_alibaba_from_a_mirror(tmp_path):
    from market.apps.data import fetch

    real = ali.trace_path(NODES).parent
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in (NODES, PODS):
        (mirror / name).write_bytes((real / name).read_bytes())
    dest = tmp_path / "data"
    lines: list[str] = []
    out = fetch(dest, base_url=mirror.as_uri(), log=lines.append, data="alibaba-gpu-2023")
    assert [s.status for s in out] == ["ok", "ok"] and all(line.startswith("fetched") for line in lines)
    assert (dest / ali.TRACE / PODS).read_bytes() == (real / PODS).read_bytes()
    fetch(dest, base_url=mirror.as_uri(), log=lines.append, data="alibaba-gpu-2023")
    assert lines[-1].startswith("ok")
    # a corrupted mirror: one line, the verified copy stays, no temporaries
    (mirror / PODS).write_bytes((real / PODS).read_bytes()[:-10])
    with pytest.raises(MarketInputError, match="does not match"):
        fetch(dest, [PODS], base_url=mirror.as_uri(), force=True, log=lines.append, data="alibaba-gpu-2023")
    assert sorted(p.name for p in (dest / ali.TRACE).iterdir()) == [NODES, PODS]
    assert (dest / ali.TRACE / PODS).read_bytes() == (real / PODS).read_bytes()
    # through the command line, with --dataset
    (mirror / PODS).write_bytes((real / PODS).read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "market", "data", "fetch", "--dataset", "alibaba-gpu-2023", "--quiet",
         "--dir", str(tmp_path / "cli"), "--mirror", mirror.as_uri()],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "cli" / ali.TRACE).iterdir()) == [NODES, PODS]
