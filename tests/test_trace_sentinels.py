"""Google 2011 loaders on small fake traces: sentinel times (0, 2**63 - 1) and bad fields."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from market.errors import MarketInputError
from scenarios import google2011 as g
from scenarios import trace_markets

AFTER = 2**63 - 1
S = 1_000_000  # us per second
PRIO = 9  # column of the priority field in a task_events row


def _task(t, job, idx, event, prio="2", cpu="0.1", mem="0.05"):
    return f"{t},,{job},{idx},,{event},user{job},1,{prio},{cpu},{mem},0,0"


#: window [600 s, 1800 s) at 300 s a round: task A (job 1) runs from 710 s without an end in
#: the trace; task B (job 2) runs 800-1000 s; job 3 is submitted at 2000 s, the last real event
BASE = [
    _task(0, 9, 0, g.SUBMIT), _task(0, 9, 0, g.SCHEDULE),
    _task(700 * S, 1, 0, g.SUBMIT), _task(710 * S, 1, 0, g.SCHEDULE),
    _task(800 * S, 2, 0, g.SUBMIT), _task(800 * S, 2, 0, g.SCHEDULE), _task(1000 * S, 2, 0, g.FINISH),
    _task(2000 * S, 3, 0, g.SUBMIT),
]
MACHINES = [f"0,{m},{g.ADD},plat,0.5,0.5" for m in range(1, 5)]


def _write(root, table, part, lines):
    path = root / g.TRACE / table / f"{g.part_name(table, part)}.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    return path


def _trace(root, tasks, machines=MACHINES):
    first = _write(root, "task_events", 0, tasks)
    _write(root, "task_events", 1, [_task(2000 * S, 4, 0, g.SUBMIT)])
    _write(root, "machine_events", 0, machines)
    return first


def _scenario(rounds=4, **market):
    from scenarios.config import load

    sc = load("google2011-real")
    opt = {"source": "google2011", "variant": "real", "sample": 1.0, "start_seconds": 600, "step_seconds": 300, **market}
    return sc.replace(rounds=rounds, horizon=rounds, market=opt)


def _build(tmp_path, monkeypatch, tasks, name, **kw):
    from scenarios.sources import build_market

    root = tmp_path / name
    _trace(root, tasks)
    monkeypatch.setenv("MARKET_DATA_DIR", str(root))
    return build_market(_scenario(**kw), 0)


def test_finish_at_the_after_sentinel_is_open_ended(tmp_path, monkeypatch):
    plain = _build(tmp_path, monkeypatch, BASE, "plain")
    late = _build(tmp_path, monkeypatch, [*BASE, _task(AFTER, 1, 0, g.FINISH)], "late")
    for market in (plain, late):
        req = market.requests.set_index("job_id")
        assert req.loc[1, "duration"] == 4 and bool(req.loc[1, "open_ended"])  # rounds - arrival, not 30 billion
        assert req.loc[2, "duration"] == 1 and not bool(req.loc[2, "open_ended"])
        assert len(market.resources) == 1  # sized from the open-ended duration
    assert plain.requests.equals(late.requests) and plain.resources.equals(late.resources)


def test_the_trace_end_is_the_last_real_event(tmp_path, monkeypatch):
    tasks = [*BASE, _task(AFTER, 1, 0, g.FINISH), _task(AFTER, 5, 0, g.SUBMIT)]
    root = tmp_path / "t"
    _trace(root, tasks)
    assert g.trace_end(g.read_events("task_events", (0, 1), root=root)["timestamp"]) == 2000 * S
    ok = _build(tmp_path, monkeypatch, tasks, "ok", rounds=5).requests  # ends 2100 s <= 2000 s + a step
    assert ok["job_id"].tolist() == [1, 2, 3, 4]  # job 5, submitted after the trace, in no window
    for name, lines in (("plain", BASE), ("late", tasks)):
        with pytest.raises(MarketInputError, match=r"ends after the loaded task_events parts \(2000 s\)"):
            _build(tmp_path, monkeypatch, lines, name + "6", rounds=6)  # ends 2400 s


def test_machine_events_at_the_after_sentinel_are_not_replayed(tmp_path):
    machines = [*MACHINES, f"{AFTER},1,{g.REMOVE},plat,,", f"{AFTER},7,{g.ADD},plat,1,1"]
    _trace(tmp_path, BASE, machines)
    assert g.machines_at(600 * S, tmp_path)["machine_id"].tolist() == [1, 2, 3, 4]
    assert g.machines_at(AFTER, tmp_path)["machine_id"].tolist() == [1, 2, 3, 4]


def test_before_sentinel_is_the_trace_start(tmp_path, monkeypatch):
    # job 9 (submitted and scheduled at 0) arrives in round 0 of a window starting at 0 s only
    tasks = [*BASE, _task(0, 8, 0, g.SUBMIT), _task(0, 8, 0, g.FINISH)]  # job 8 ended before the trace
    req = _build(tmp_path, monkeypatch, tasks, "zero", start_seconds=0).requests
    assert req["job_id"].tolist() == [9, 1, 2] and req["round"].tolist() == [0, 2, 2]
    assert trace_markets.dropped_records(_scenario(start_seconds=0))["ended_before_trace"] == 1
    assert 9 not in _build(tmp_path, monkeypatch, tasks, "later").requests["job_id"].tolist()


def test_empty_priority_is_dropped_and_counted(tmp_path, monkeypatch):
    tasks = [*BASE, _task(900 * S, 6, 0, g.SUBMIT, prio=""), _task(950 * S, 6, 1, g.SUBMIT, cpu="", mem="")]
    market = _build(tmp_path, monkeypatch, tasks, "prio")  # no 'budget ... nan' error
    assert sorted(market.requests["job_id"].tolist()) == [1, 2]
    assert np.isfinite(market.requests["budget"]).all()
    counts = trace_markets.dropped_records(_scenario())
    assert counts == {"empty_priority": 1, "ended_before_trace": 0, "empty_cpu": 1, "empty_mem": 1}
    for unit in ("task", "job"):
        assert trace_markets.dropped_records(_scenario(unit=unit))["empty_priority"] == 1


@pytest.mark.parametrize(
    ("row", "field", "what"),
    [
        (_task(900 * S, 6, 0, g.SUBMIT, prio="high"), "priority", "is not a number: 'high'"),
        (_task(900 * S, 6, 0, g.SUBMIT, cpu="0.1x"), "cpu_request", "is not a number: '0.1x'"),
        (_task("", 6, 0, g.SUBMIT), "timestamp", "is empty"),
        (_task("12abc", 6, 0, g.SUBMIT), "timestamp", "is not a number: '12abc'"),
    ],
)
def test_a_malformed_field_is_one_line_naming_file_line_and_field(tmp_path, monkeypatch, row, field, what):
    tasks = [*BASE[:4], row, *BASE[4:]]  # line 5
    path = _trace(tmp_path, tasks)
    monkeypatch.setenv("MARKET_DATA_DIR", str(tmp_path))
    with pytest.raises(MarketInputError) as err:
        g.read_events("task_events", (0, 1))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == f"{path}: line 5: field {field!r} {what}"


def test_machine_and_job_fields_are_checked_too(tmp_path):
    bad = _write(tmp_path, "machine_events", 0, [*MACHINES, "5,x,0,plat,0.5,0.5"])
    with pytest.raises(MarketInputError, match=rf"^{bad}: line 5: field 'machine_id' is not a number: 'x'$"):
        g.machines_at(600 * S, tmp_path)
    job = _write(tmp_path, "job_events", 0, ["0,,1,0,u,1,n,l", ",,2,0,u,1,n,l"])
    with pytest.raises(MarketInputError, match=rf"^{job}: line 2: field 'timestamp' is empty$"):
        g.read_events("job_events", (0,), root=tmp_path)


def test_the_run_manifest_counts_the_dropped_records(tmp_path, monkeypatch):
    import json

    from market.core.runner import run_scenario

    tasks = [*BASE, _task(900 * S, 6, 0, g.SUBMIT, prio=""), _task(950 * S, 6, 1, g.SUBMIT, cpu="", mem="")]
    root = tmp_path / "trace"
    _trace(root, tasks)
    monkeypatch.setenv("MARKET_DATA_DIR", str(root))
    scenario = _scenario().replace(mechanisms=["greedy"], seeds=[0], oracle=False)
    run_scenario(scenario, tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["trace_drops"] == {"empty_priority": 1, "ended_before_trace": 0, "empty_cpu": 1, "empty_mem": 1}
