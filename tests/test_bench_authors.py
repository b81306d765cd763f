"""``market bench --authors``: our round beside the authors' own package, on the same market.

No network and no real ``mohaf``: the driver runs under this interpreter against a fake
``mohaf`` package (the same classes and ``MOHAFAuction().run_auction`` shape as 0.2.0)
put on a temporary ``PYTHONPATH``; it records what it was handed. If ``.venv-authors``
exists (``make bench-authors``), one small run against the real package is checked too.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from market.apps import cli
from market.studies.bench import AUTHORS_DRIVER, authors_instance, bench, run_authors
from scenarios.synthetic import generate

REPO = Path(__file__).resolve().parents[1]
AUTHORS_PYTHON = REPO / ".venv-authors" / "bin" / "python"

FAKE_CORE = """
from dataclasses import dataclass
from enum import Enum
from typing import Dict, Tuple


class ResourceType(Enum):
    COMPUTE = "compute"
    STORAGE = "storage"
    BANDWIDTH = "bandwidth"
    ENERGY = "energy"


@dataclass
class Resource:
    id: str
    type: ResourceType
    capacity: float
    cost_per_unit: float
    location: Tuple[float, float]
    availability: float
    reliability: float
    energy_efficiency: float
    owner_id: str


@dataclass
class Request:
    id: str
    requester_id: str
    resource_type: ResourceType
    amount: float
    max_price: float
    deadline: float
    priority: int
    location: Tuple[float, float]
    qos_requirements: Dict[str, float]
"""

FAKE_AUCTION = """
import dataclasses
import json
import os

from .core import Resource, Request


def _plain(obj):
    out = dataclasses.asdict(obj)
    for key, value in out.items():
        if hasattr(value, "value"):  # an enum
            out[key] = value.value
    return out


class MOHAFAuction:
    def __init__(self, alpha=0.3, beta=0.3, gamma=0.2, delta=0.2, learning_rate=0.01):
        self.name = "MOHAF"

    def run_auction(self, resources, requests):
        assert all(isinstance(r, Resource) for r in resources)
        assert all(isinstance(r, Request) for r in requests)
        print("Running MOHAF Auction...")
        calls = os.environ["FAKE_MOHAF_CALLS"]
        with open(calls, "a") as f:
            f.write("x")
        with open(calls) as f:
            k = len(f.read())
        times = [float(t) for t in os.environ["FAKE_MOHAF_TIMES"].split(",")]
        with open(os.environ["FAKE_MOHAF_DUMP"], "w") as f:
            json.dump({"resources": [_plain(r) for r in resources],
                       "requests": [_plain(r) for r in requests]}, f)
        print(f"Generated {len(resources) * len(requests)} multi-objective bids")
        allocations = [{"resource_id": r.id, "request_id": q.id} for r, q in zip(resources, requests)]
        print(f"Completed {len(allocations)} allocations")
        return {"allocations": allocations, "execution_time": times[(k - 1) % len(times)]}
"""


@pytest.fixture
def fake_mohaf(tmp_path, monkeypatch):
    """A fake ``mohaf`` 0.2.0 on PYTHONPATH; the path its auction dumps what it got to."""
    pkg = tmp_path / "fake" / "mohaf"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "0.2.0"\n')
    (pkg / "core.py").write_text(FAKE_CORE)
    (pkg / "auction_mechanisms.py").write_text(FAKE_AUCTION)
    dump = tmp_path / "received.json"
    monkeypatch.setenv("PYTHONPATH", str(pkg.parent))
    monkeypatch.setenv("FAKE_MOHAF_DUMP", str(dump))
    monkeypatch.setenv("FAKE_MOHAF_CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("FAKE_MOHAF_TIMES", "1.5")
    return dump


def _market(requests: int = 40, resources: int = 12):
    market = {"resources": resources, "users": 8, "requests": requests, "qos_share": 0.5}
    return generate(market, 1, np.random.default_rng(3))


def test_the_market_arrives_intact_in_the_authors_classes(fake_mohaf, monkeypatch):
    monkeypatch.setenv("FAKE_MOHAF_TIMES", "1.0,4.0,2.0")
    market = _market()
    out = run_authors(sys.executable, market, runs=3)
    got = json.loads(fake_mohaf.read_text())
    req, res = market.requests, market.resources
    assert len(got["requests"]) == len(req) == out["authors_requests"] == 40
    assert len(got["resources"]) == len(res) == out["authors_resources"] == 12
    for r, row in zip(got["resources"], res.itertuples(index=False)):
        assert r["id"] == f"resource_{row.resource_id}" and r["type"] == "compute"
        assert r["owner_id"] == f"owner_{row.owner_id}"
        assert r["capacity"] == row.cpu and r["cost_per_unit"] == row.unit_cost
        assert r["location"] == [row.x, row.y]
        assert (r["availability"], r["reliability"], r["energy_efficiency"]) == (
            row.availability,
            row.reliability,
            row.energy_efficiency,
        )
    for q, row in zip(got["requests"], req.itertuples(index=False)):
        assert (
            q["id"] == f"request_{row.request_id}"
            and q["requester_id"] == f"requester_{row.user_id}"
        )
        assert q["resource_type"] == "compute"
        assert q["amount"] == row.cpu and q["max_price"] == row.budget
        assert q["priority"] == int(row.priority) and isinstance(q["priority"], int)
        assert q["location"] == [row.x, row.y] and math.isinf(q["deadline"])
        assert q["qos_requirements"] == {
            "min_reliability": row.min_reliability,
            "min_availability": row.min_availability,
            "max_latency": row.max_latency,
        }
    assert any(math.isinf(q["qos_requirements"]["max_latency"]) for q in got["requests"])
    assert any(not math.isinf(q["qos_requirements"]["max_latency"]) for q in got["requests"])
    # three fresh processes, the median of their execution_time; their prints are the log
    assert out["authors_runs"] == 3 and out["authors_execution_time_s_all"] == [1.0, 4.0, 2.0]
    assert out["authors_execution_time_s"] == 2.0
    assert len(out["authors_wall_s_all"]) == len(out["authors_process_s_all"]) == 3
    assert out["authors_bids"] == 40 * 12 and out["authors_allocated"] == 12
    assert out["authors_dropped"] == ["mem", "duration"]
    assert out["authors_versions"]["mohaf"] == "0.2.0"


def test_memory_and_the_duration_travel_along_but_are_not_the_authors():
    market = _market()
    instance = authors_instance(market)
    assert [r["mem"] for r in instance["resources"]] == market.resources["mem"].tolist()
    assert [q["mem"] for q in instance["requests"]] == market.requests["mem"].tolist()
    assert [q["duration"] for q in instance["requests"]] == market.requests["duration"].tolist()


def test_the_driver_prints_one_json_line(fake_mohaf, tmp_path):
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(authors_instance(_market(10, 4))))
    proc = subprocess.run(
        [sys.executable, str(AUTHORS_DRIVER), str(path)], capture_output=True, text=True, check=True
    )
    (line,) = proc.stdout.splitlines()
    out = json.loads(line)
    assert out["execution_time_s"] == 1.5 and out["requests"] == 10
    assert out["wall_s"] >= 0 and out["cpu_s"] >= 0
    assert out["log"][0] == "Running MOHAF Auction..."


def test_bench_carries_both_times_and_the_ratio(fake_mohaf):
    out = bench(requests=60, resources=15, rounds=2, authors=sys.executable)
    assert out["requests"] == out["authors_requests"] == 60
    assert out["resources"] == out["authors_resources"] == 15
    assert out["authors_execution_time_s"] == 1.5 and out["authors_runs"] == 1
    assert out["round_s"] > 0 and "allocated" in out and "welfare" in out
    # the ratios are rounded to 0.1 and the times to 1e-6 s: the ratio of the shown times
    # lies within these bounds
    for ratio, ours in [
        ("speedup", out["round_s"]),
        ("speedup_with_clustering", out["round_s"] + out["clustering_s"]),
    ]:
        assert 1.5 / (ours + 1e-6) - 0.051 <= out[ratio] <= 1.5 / (ours - 1e-6) + 0.051, ratio
    assert out["round_cpu_s"] > 0 and out["authors_cpu_s"] >= 0 and "speedup_cpu" in out


def _main(capsys, *argv: str) -> tuple[int, list[str]]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code)
    shown = [line.split("\r")[-1] for line in capsys.readouterr().err.split("\n")]
    return code, [line for line in shown if line.strip()]


SMALL = ("bench", "--requests", "30", "--resources", "8", "--rounds", "1")


def test_a_missing_interpreter_is_one_line(capsys, tmp_path):
    missing = str(tmp_path / "no-venv" / "bin" / "python")
    code, lines = _main(capsys, *SMALL, "--authors", missing)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: bench: --authors {missing}: no such Python interpreter"), (
        lines
    )


def test_an_interpreter_without_mohaf_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # nothing there
    code, lines = _main(capsys, *SMALL, "--authors", sys.executable)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(
        f"error: bench: --authors {sys.executable}: mohaf is not importable there"
    ), lines
    assert "No module named 'mohaf'" in lines[0] and "make bench-authors" in lines[0]


def test_something_else_than_python_is_one_line(capsys, tmp_path):
    script = tmp_path / "not-python"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    code, lines = _main(capsys, *SMALL, "--authors", str(script))
    assert (
        code == 2 and len(lines) == 1 and f"--authors {script}: mohaf is not importable" in lines[0]
    ), lines


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--mechanism", "greedy"), "it compares with --mechanism mohaf, got 'greedy'"),
        (("--authors-runs", "0"), "--authors-runs must be at least 1, got 0"),
        (("--scenario", "default"), "it does not take --scenario"),
    ],
)
def test_authors_refuses_what_it_cannot_compare(capsys, fake_mohaf, extra, expected):
    code, lines = _main(capsys, *SMALL, "--authors", sys.executable, *extra)
    assert code == 2 and len(lines) == 1 and expected in lines[0], lines


def _real_package() -> bool:
    if not AUTHORS_PYTHON.exists():
        return False
    probe = subprocess.run(
        [str(AUTHORS_PYTHON), str(AUTHORS_DRIVER), "--probe"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _real_package(), reason="no .venv-authors with mohaf (make bench-authors creates it)"
)
def test_the_real_package_runs_on_a_small_market():
    out = run_authors(str(AUTHORS_PYTHON), _market(60, 15))
    assert out["authors_versions"]["mohaf"] == "0.2.0"
    assert out["authors_requests"] == 60 and out["authors_resources"] == 15
    assert (
        out["authors_execution_time_s"] > 0
        and out["authors_wall_s"] >= out["authors_execution_time_s"] * 0.5
    )
    assert 0 < out["authors_allocated"] <= 15  # one request per resource in their allocation
    assert out["authors_bids"] is not None and out["authors_bids"] >= out["authors_allocated"]
