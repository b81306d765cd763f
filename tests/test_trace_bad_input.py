"""Bad trace files (Google 2011, Alibaba GPU, Azure LLM): one line naming the file, its line
and the field, exit code 2, nothing written; odd but valid files run.

Each case is built as a user would meet it: the official files of ``$MARKET_DATA_DIR``
symlinked into a data folder in ``tmp_path``, one of them replaced by an altered copy; or,
for the field-by-field checks, a few hand-written lines in the official layout.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from market.apps.cli import main
from market.errors import MarketInputError
from scenarios import google2011 as g
from tests.test_trace_sentinels import BASE as TASKS
from tests.test_trace_sentinels import MACHINES, S, _task, _write


def _official() -> Path:
    return Path(os.environ["MARKET_DATA_DIR"])


def _data_copy(tmp_path: Path, trace: str) -> Path:
    """A data folder whose ``trace`` folder links every official file of that trace."""
    root = tmp_path / "data"
    src = _official() / trace
    for path in sorted(src.rglob("*")):
        if path.is_file():
            link = root / trace / path.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return root


def _text(path: Path) -> str:
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(path.suffix, open)
    with opener(path, "rt", newline="") as f:
        return f.read()


def _alter(root: Path, trace: str, stem: str, change: Callable[[list[str]], list[str]]) -> Path:
    """Replace the linked file ``stem`` (any suffix) by a plain ``.csv`` with ``change`` applied to its lines."""
    folder = root / trace / Path(stem).parent
    name = Path(stem).name
    (link,) = [p for p in folder.iterdir() if p.name.split(".")[0] == name.split(".")[0]]
    lines = _text(link).splitlines()
    link.unlink()
    out = folder / (name.split(".")[0] + ".csv")
    new = change(lines)
    out.write_text("".join(line + "\n" for line in new))
    return out


def _set_field(line_no: int, field: int, value: str) -> Callable[[list[str]], list[str]]:
    """Set field ``field`` (0-based) of file line ``line_no`` (1-based) to ``value``."""
    def change(lines: list[str]) -> list[str]:
        cells = lines[line_no - 1].split(",")
        cells[field] = value
        return [*lines[: line_no - 1], ",".join(cells), *lines[line_no:]]
    return change


def _run(monkeypatch, root: Path, out: Path, scenario: str, *args: str) -> tuple[int, str, str]:
    """``market run`` through the CLI's entry point with ``MARKET_DATA_DIR = root``."""
    monkeypatch.setenv("MARKET_DATA_DIR", str(root))
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        code = main(["run", scenario, "--out", str(out), "--seeds", "1", "--mechanisms", "greedy", "--quiet", *args])
    return code, std.getvalue(), err.getvalue()


def _one_line_exit_2(result: tuple[int, str, str], out: Path, *parts: str) -> str:
    code, stdout, stderr = result
    assert code == 2, stderr[-2000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and stdout == ""
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    return lines[0]


# --- Google 2011 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "field", "what"),
    [
        (_task(900 * S, 6, 0, g.SUBMIT, cpu="-0.05"), "cpu_request", "must be a finite number >= 0 and below 2**53 (or empty), got -0.05"),
        (_task(900 * S, 6, 0, g.SUBMIT, cpu="inf"), "cpu_request", "must be a finite number >= 0 and below 2**53 (or empty), got inf"),
        (_task(900 * S, 6, 0, g.SUBMIT, cpu="-inf"), "cpu_request", "must be a finite number >= 0 and below 2**53 (or empty), got -inf"),
        (_task(900 * S, 6, 0, g.SUBMIT, cpu="1e308"), "cpu_request",
         "must be a finite number >= 0 and below 2**53 (or empty), got 1e+308"),
        (_task(900 * S, 6, 0, g.SUBMIT, cpu="1e400"), "cpu_request", "must be a finite number >= 0 and below 2**53 (or empty), got inf"),
        (_task(900 * S, 6, 0, g.SUBMIT, mem="-0.01"), "memory_request",
         "must be a finite number >= 0 and below 2**53 (or empty), got -0.01"),
        (_task(900 * S, 6, 0, g.SUBMIT, prio="-3"), "priority", "must be a whole number from 0 to 11 (or empty), got -3"),
        (_task(900 * S, 6, 0, g.SUBMIT, prio="12"), "priority", "must be a whole number from 0 to 11 (or empty), got 12"),
        (_task(900 * S, 6, 0, g.SUBMIT, prio="2.5"), "priority",
         "must be a whole number from 0 to 11 (or empty), got 2.5"),
        (_task(-5, 6, 0, g.SUBMIT), "timestamp", "must be a whole number >= 0, got -5"),
        (_task(900 * S, 6, 0, 9), "event_type", "must be a whole number from 0 to 8, got 9"),
        (_task(900 * S, -6, 0, g.SUBMIT), "job_id", "must be a whole number >= 0, got -6"),
    ],
)
def test_task_fields_out_of_range_name_the_trace_file_line_and_field(tmp_path, row, field, what):
    path = _write(tmp_path, "task_events", 0, [*TASKS[:4], row, *TASKS[4:]])  # line 5
    _write(tmp_path, "task_events", 1, [_task(2000 * S, 4, 0, g.SUBMIT)])
    with pytest.raises(MarketInputError) as err:
        g.read_events("task_events", (0, 1), root=tmp_path)
    assert str(err.value) == f"{path}: line 5: field {field!r} {what}"


def test_an_empty_request_field_keeps_its_documented_meaning(tmp_path):
    path = _write(tmp_path, "task_events", 0, [*TASKS, _task(900 * S, 6, 0, g.SUBMIT, prio="", cpu="", mem="")])
    _write(tmp_path, "task_events", 1, [_task(2000 * S, 4, 0, g.SUBMIT)])
    ev = g.read_events("task_events", (0, 1), root=tmp_path)
    assert ev[["priority", "cpu_request", "memory_request"]].iloc[len(TASKS)].isna().all(), path
    assert (ev["cpu_request"].dropna() >= 0).all()


@pytest.mark.parametrize(
    ("row", "field", "what"),
    [
        ("5,7,0,plat,inf,0.5", "cpu", "must be a finite number > 0 and below 2**53 (or empty), got inf"),
        ("5,7,0,plat,-0.5,0.5", "cpu", "must be a finite number > 0 and below 2**53 (or empty), got -0.5"),
        ("5,7,0,plat,0.5,0", "mem", "must be a finite number > 0 and below 2**53 (or empty), got 0"),
        ("5,,0,plat,0.5,0.5", "machine_id", "is empty"),
        ("5,7,3,plat,0.5,0.5", "event_type", "must be a whole number from 0 to 2, got 3"),
    ],
)
def test_machine_fields_out_of_range(tmp_path, row, field, what):
    path = _write(tmp_path, "machine_events", 0, [*MACHINES, row])  # line 5
    with pytest.raises(MarketInputError) as err:
        g.machines_at(600 * S, tmp_path)
    assert str(err.value) == f"{path}: line 5: field {field!r} {what}"


def test_job_scheduling_class_out_of_range(tmp_path):
    path = _write(tmp_path, "job_events", 0, ["0,,1,0,u,1,n,l", "0,,2,0,u,4,n,l"])
    with pytest.raises(MarketInputError) as err:
        g.read_events("job_events", (0,), root=tmp_path)
    assert str(err.value) == f"{path}: line 2: field 'scheduling_class' must be a whole number from 0 to 3 (or empty), got 4"


@pytest.mark.parametrize(("second", "message"), [
    ("0,,2,0,u,4,n,l", "field 'scheduling_class' must be a whole number from 0 to 3 (or empty), got 4"),
    ("0,,two,0,u,1,n,l", "field 'job_id' is not a number: 'two'"),  # the typed read fails: the text re-read names it
])
def test_google_line_counts_the_blank_lines_pandas_skips(tmp_path, second, message):
    path = _write(tmp_path, "job_events", 0, ["", "0,,1,0,u,1,n,l", "", "  ", second])
    with pytest.raises(MarketInputError) as err:
        g.read_events("job_events", (0,), root=tmp_path)
    assert str(err.value) == f"{path}: line 5: {message}"


@pytest.mark.parametrize("content", [b"", gzip.compress(b"", mtime=0)], ids=["0-bytes", "gzip-of-nothing"])
def test_an_empty_part_is_one_line_naming_it(tmp_path, content):
    path = tmp_path / g.TRACE / "job_events" / f"{g.part_name('job_events', 0)}.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(MarketInputError) as err:
        g.read_events("job_events", (0,), root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: the trace file ") and "\n" not in msg


def test_google_real_cli_machine_capacity_inf(tmp_path, monkeypatch):
    """gdata/g4_machinf: machine_events line 1, cpu = inf (was blamed on 'google2011 resources: row 1')."""
    root = _data_copy(tmp_path, g.TRACE)
    bad = _alter(root, g.TRACE, "machine_events/part-00000-of-00001", _set_field(1, 4, "inf"))
    out = tmp_path / "out" / "run"
    result = _run(monkeypatch, root, out, "google2011-real", "--rounds", "2", "--no-oracle")
    line = _one_line_exit_2(result, out, str(bad), "line 1:", "field 'cpu'", "got inf")
    assert "google2011 resources" not in line


def test_google_mohaf_cli_empty_job_events_part(tmp_path, monkeypatch):
    """gdata/h4_emptyjob: a 0-byte job_events part 0 gave another market without a word."""
    root = _data_copy(tmp_path, g.TRACE)
    bad = _alter(root, g.TRACE, "job_events/part-00000-of-00500", lambda lines: [])
    assert bad.stat().st_size == 0
    out = tmp_path / "out" / "run"
    _one_line_exit_2(_run(monkeypatch, root, out, "google2011-mohaf", "--rounds", "1", "--no-oracle"), out,
                     str(bad), "empty")


def test_google_real_cli_empty_task_events_part_1(tmp_path, monkeypatch):
    """gdata/h5_emptytask1: a 0-byte task_events part 1 was blamed on the scenario's window."""
    root = _data_copy(tmp_path, g.TRACE)
    bad = _alter(root, g.TRACE, "task_events/part-00001-of-00500", lambda lines: [])
    out = tmp_path / "out" / "run"
    line = _one_line_exit_2(_run(monkeypatch, root, out, "google2011-real", "--rounds", "2", "--no-oracle"), out,
                            str(bad), "empty")
    assert "window" not in line


@pytest.mark.parametrize(("field", "value", "name"), [(9, "inf", "cpu_request"), (8, "-3", "priority")])
def test_google_real_cli_task_field(tmp_path, monkeypatch, field, value, name):
    """gdata/g8_cpuinf (was an OverflowError traceback) and g7_prioneg (was blamed on a derived 'budget')."""
    root = _data_copy(tmp_path, g.TRACE)
    bad = _alter(root, g.TRACE, "task_events/part-00001-of-00500", _set_field(10, field, value))
    out = tmp_path / "out" / "run"
    result = _run(monkeypatch, root, out, "google2011-real", "--rounds", "2", "--no-oracle")
    line = _one_line_exit_2(result, out, f"error: {bad}: line 10: field {name!r} must be ", f"got {value}")
    assert "google2011 requests" not in line


def test_google_real_without_a_live_machine(tmp_path, monkeypatch):
    from scenarios.config import load
    from scenarios.sources import build_market

    _write(tmp_path, "task_events", 0, TASKS)
    _write(tmp_path, "task_events", 1, [_task(2000 * S, 4, 0, g.SUBMIT)])
    machines = _write(tmp_path, "machine_events", 0, [f"0,{m},{g.ADD},plat,," for m in range(1, 5)])
    monkeypatch.setenv("MARKET_DATA_DIR", str(tmp_path))
    market = {"source": "google2011", "variant": "real", "sample": 1.0, "start_seconds": 600, "step_seconds": 300}
    scenario = load("google2011-real").replace(rounds=4, horizon=4, market=market)
    with pytest.raises(MarketInputError, match=rf"^{machines}: no machine with a capacity is alive"):
        build_market(scenario, 0)


# --- Alibaba GPU --------------------------------------------------------------------------

ALI = "alibaba-gpu-2023"
ALI_NODES = "openb_node_list_gpu_node.csv"
ALI_PODS = "openb_pod_list_gpuspec33.csv"


@pytest.mark.parametrize(("name", "what"), [(ALI_PODS, "no pods"), (ALI_NODES, "no nodes")])
def test_alibaba_header_only_file(tmp_path, monkeypatch, name, what):
    """adata/a3_hdrpods (was ValueError: zero-size array) and a10_hdrnode (was: cannot convert float NaN)."""
    root = _data_copy(tmp_path, ALI)
    bad = _alter(root, ALI, name, lambda lines: lines[:1])
    out = tmp_path / "out" / "run"
    line = _one_line_exit_2(_run(monkeypatch, root, out, "alibaba-gpu", "--rounds", "2"), out, f"error: {bad}: {what}")
    assert "line" not in line


def _pod_line_in_window(lines: list[str]) -> int:
    """The file line of the first pod created in the shipped scenario's window (day 120 + 3 x 8 h)."""
    created = lines[0].split(",").index("creation_time")
    return next(k + 1 for k, line in enumerate(lines) if k and 10_368_000 <= float(line.split(",")[created]) < 10_454_400)


@pytest.mark.parametrize(("field", "value"), [
    ("deletion_time", "1e300"),  # was: an int64 cast warning and a duration that wrapped to 1 round, exit 0
    ("deletion_time", "9007199254740992"),  # 2**53
    ("creation_time", "1e300"),
    ("cpu_milli", "1e308"),
])
def test_alibaba_huge_field(tmp_path, monkeypatch, field, value):
    root = _data_copy(tmp_path, ALI)
    lines = _text(_official() / ALI / ALI_PODS).splitlines()
    at = _pod_line_in_window(lines)
    col = lines[0].split(",").index(field)
    bad = _alter(root, ALI, ALI_PODS, _set_field(at, col, value))
    out = tmp_path / "out" / "run"
    _one_line_exit_2(_run(monkeypatch, root, out, "alibaba-gpu", "--rounds", "3"), out,
                     f"error: {bad}: line {at}: field {field!r} must be below 2**53, got {value!r}")


def test_alibaba_large_but_sane_times_still_run(tmp_path, monkeypatch):
    """A pod deleted at 2**53 - 1 s is odd but fits: it runs, no cast warning, its duration is exact."""
    import numpy as np

    from scenarios import alibaba_gpu as ali
    from scenarios.config import load

    root = _data_copy(tmp_path, ALI)
    lines = _text(_official() / ALI / ALI_PODS).splitlines()
    at = _pod_line_in_window(lines)
    cells = lines[at - 1].split(",")
    _alter(root, ALI, ALI_PODS, _set_field(at, lines[0].split(",").index("deletion_time"), str(2**53 - 1)))
    monkeypatch.setenv("MARKET_DATA_DIR", str(root))
    sc = load("alibaba-gpu").replace(rounds=3, horizon=3)
    req = ali.build(sc, np.random.default_rng(1)).requests.set_index("request_id")
    created = float(cells[lines[0].split(",").index("creation_time")])
    assert req.loc[cells[0], "duration"] == int(np.ceil((2**53 - 1 - created) / 28_800))


# --- Azure LLM ----------------------------------------------------------------------------

AZ = "azure-llm-2023"
AZ_CODE = "AzureLLMInferenceTrace_code.csv"
AZ_CONV = "AzureLLMInferenceTrace_conv.csv"


def _azure_market(monkeypatch, root: Path, **market):
    import numpy as np

    from scenarios import azure_llm
    from scenarios.config import load

    monkeypatch.setenv("MARKET_DATA_DIR", str(root))
    sc = load("azure-llm")
    sc = sc.replace(rounds=12, horizon=12, market={**sc.market, **market})
    return azure_llm.build(sc, np.random.default_rng(1))


def _stamps(change: Callable[[str], str], only: Callable[[int], bool] = lambda k: True):
    def apply(lines: list[str]) -> list[str]:
        out = [lines[0]]
        for k, line in enumerate(lines[1:], start=2):
            stamp, rest = line.split(",", 1)
            out.append(f"{change(stamp) if only(k) else stamp},{rest}")
        return out
    return apply


@pytest.mark.parametrize("case", ["offset", "Z-one", "Z-all", "T-and-Z", "other-offset"])
def test_azure_timezone_aware_timestamps_are_utc(tmp_path, monkeypatch, case):
    """zdata/z1_tzmix (+00:00 on one service: TypeError tz-naive vs tz-aware) and z2_tzZ_one (one 'Z':
    'Mixed timezones detected'). An offset is ISO 8601: converted to UTC, both services on one clock."""
    from datetime import datetime, timedelta

    def shifted(stamp: str) -> str:  # the same instant written at +01:30
        day, time = stamp.split(" ")
        whole, frac = [*time.split("."), ""][:2]
        t = datetime.fromisoformat(f"{day} {whole}") + timedelta(hours=1, minutes=30)
        return t.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + "+01:30"

    change, only = {
        "offset": (lambda s: s + "+00:00", lambda k: True),
        "Z-one": (lambda s: s.replace(" ", "T") + "Z", lambda k: k == 3),
        "Z-all": (lambda s: s + "Z", lambda k: True),
        "T-and-Z": (lambda s: s.replace(" ", "T") + "Z", lambda k: k % 2 == 0),
        "other-offset": (shifted, lambda k: True),
    }[case]
    root = _data_copy(tmp_path, AZ)
    _alter(root, AZ, AZ_CODE, _stamps(change, only))
    got = _azure_market(monkeypatch, root)
    want = _azure_market(monkeypatch, _official())
    assert got.requests.equals(want.requests) and got.resources.equals(want.resources)
    out = tmp_path / "out" / "run"
    code, _, stderr = _run(monkeypatch, root, out, "azure-llm", "--rounds", "3")
    assert code == 0 and "Traceback" not in stderr, stderr
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize(("field", "value"), [
    ("GeneratedTokens", "9223372036854775807"),  # z8: read as -9.2e18, clamped to 1 token, exit 0
    ("ContextTokens", "99999999999999999999999"),  # z3: an error quoting -9.2e18 on no real line
    ("ContextTokens", "9007199254740992"),  # 2**53
])
def test_azure_huge_token_count(tmp_path, monkeypatch, field, value):
    root = _data_copy(tmp_path, AZ)
    col = 1 if field == "ContextTokens" else 2
    bad = _alter(root, AZ, AZ_CODE, _set_field(7, col, value))
    out = tmp_path / "out" / "run"
    line = _one_line_exit_2(_run(monkeypatch, root, out, "azure-llm", "--rounds", "3"), out,
                            f"error: {bad}: line 7: field {field!r} must be a whole number of tokens >= 0 and "
                            f"below 2**53, got {value!r}")
    assert "-9.2" not in line


def test_azure_largest_token_count_runs_and_rounds_that_would_wrap_are_one_line(tmp_path, monkeypatch):
    """2**53 - 1 tokens are accepted (exact); a decode of so many rounds that the int64 cast would
    wrap names the trace line, not a row of a derived table."""
    root = _data_copy(tmp_path, AZ)
    big = str(2**53 - 1)
    bad = _alter(root, AZ, AZ_CONV, lambda lines: [lines[0], _set_field(1, 2, big)(lines[1:2])[0], *lines[2:]])
    req = _azure_market(monkeypatch, root, start_seconds=0.0).requests
    assert req["duration"].max() > 10**12 and (req["duration"] >= 1).all()  # the big decode: exact, no wrap
    with pytest.raises(MarketInputError) as err:
        _azure_market(monkeypatch, root, start_seconds=0.0, round_seconds=0.001)
    assert str(err.value).startswith(f"{bad}: line 2: field 'GeneratedTokens': its decode would take 2**53 rounds")


def test_azure_header_only_file(tmp_path, monkeypatch):
    root = _data_copy(tmp_path, AZ)
    bad = _alter(root, AZ, AZ_CODE, lambda lines: lines[:1])
    out = tmp_path / "out" / "run"
    _one_line_exit_2(_run(monkeypatch, root, out, "azure-llm", "--rounds", "3"), out, f"error: {bad}: no requests")
