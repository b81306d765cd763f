"""Crash safety: SIGKILL ``market run`` and ``market sweep`` mid-way, then run again.

After a kill, nothing may look complete that is not: a run directory exists only with
its manifest and every table matching the manifest's sha256; a sweep's task folders all
verify against their sidecars; a sweep manifest always matches ``results.parquet``;
anything else is a hidden ``.<name>.tmp-<pid>`` / ``.<name>.old-<pid>`` temporary. A
re-run then gives the same result hash as an uninterrupted run, and removes the
temporaries of the killed process.

Kills land either at a chosen write (a child process that SIGKILLs itself just before
a given ``os.replace``: deterministic) or at a moment seen from outside (the real
command with a process pool, killed with its whole process group).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from market.apps.cli import main
from market.core.io import OUTPUT_MARKER, sha256_file
from market.studies.sweep import SWEEP_MARKER, load_sweep, verified
from tests.conftest import DATA

SWEEPS = DATA / "sweep"
TINY = SWEEPS / "tiny.toml"
GRID = SWEEPS / "grid.toml"
LONG = SWEEPS / "long.toml"
TEMPORARY = re.compile(r"\..+\.(tmp|old)-\d+")
RUN_ARGS = ["--mechanisms", "greedy,mohaf", "--seeds", "1,2", "--quiet"]

# Runs the `market` command line, but SIGKILLs itself just before the n-th os.replace
# whose destination name matches a pattern (the writer's commit points).
KILL_AT_REPLACE = """
import os, re, signal, sys
pattern, nth = re.compile(sys.argv[1]), int(sys.argv[2])
real, seen = os.replace, [0]
def replace(src, dst, **kw):
    if pattern.fullmatch(os.path.basename(os.fspath(dst))):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, **kw)
os.replace = replace
from market.apps.cli import main
sys.exit(main(sys.argv[3:]))
"""


def killed_at(pattern: str, nth: int, argv: list[str]) -> None:
    """Run ``market argv`` in a child that SIGKILLs itself at the chosen replace."""
    proc = subprocess.run([sys.executable, "-c", KILL_AT_REPLACE, pattern, str(nth), *argv],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def temporaries(folder: Path) -> list[Path]:
    """Hidden entries under ``folder`` but output and sweep markers; each must be clearly a temporary."""
    hidden = [p for p in folder.rglob(".*") if p.name not in (OUTPUT_MARKER, SWEEP_MARKER)] if folder.exists() else []
    for p in hidden:
        assert TEMPORARY.fullmatch(p.name) or any(TEMPORARY.fullmatch(q.name) for q in p.parents), p
    return [p for p in hidden if TEMPORARY.fullmatch(p.name)]


def assert_run_complete_or_absent(out: Path) -> str | None:
    """``out`` is absent, or a complete run; return its results hash."""
    temporaries(out.parent)
    if not out.exists():
        return None
    manifest = json.loads((out / "manifest.json").read_text())
    tables = manifest["sha256"]["tables"]
    assert {p.name for p in out.iterdir()} == {*tables, "timings.parquet", "manifest.json", ".market-output"}
    for name, digest in tables.items():
        assert sha256_file(out / name) == digest, name
    return manifest["sha256"]["results"]


def assert_sweep_consistent(out: Path, sweep_file: Path) -> int:
    """Every task folder verifies; a manifest matches results.parquet. Returns tasks persisted."""
    tasks = {t.folder(out): t for t in load_sweep(sweep_file).tasks()}
    leaves = [p for p in out.rglob("seed=*") if p.is_dir() and not any(TEMPORARY.fullmatch(q.name) for q in (p, *p.parents))]
    for folder in leaves:
        assert verified(tasks[folder], out), folder
    temporaries(out)
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
        assert sha256_file(out / "results.parquet") == manifest["sha256"]["results"]
        assert len(leaves) == len(tasks)
    return len(leaves)


@pytest.fixture(scope="module")
def run_reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["run", str(TINY), "--out", str(out), *RUN_ARGS]) == 0
    return assert_run_complete_or_absent(out)


@pytest.mark.parametrize(("pattern", "nth", "what"), [
    (r"allocations\.parquet", 1, "two tables written, the third half-way"),
    (r"manifest\.json", 1, "every table written, no manifest yet"),
    (r"run", 1, "old output moved aside, new not yet in place"),
])
def test_run_killed_at_each_commit_point(tmp_path, run_reference, pattern, nth, what):
    out = tmp_path / "run"
    argv = ["run", str(TINY), "--out", str(out), *RUN_ARGS]
    assert main(argv) == 0  # a previous, complete output
    killed_at(pattern, nth, argv)
    left = assert_run_complete_or_absent(out)
    # a kill never leaves a partial directory under the final name: the old one, or none
    assert left == (None if pattern == "run" else run_reference), what
    assert temporaries(tmp_path), "the killed writer left its temporary directory"
    assert main(argv) == 0
    assert assert_run_complete_or_absent(out) == run_reference
    assert temporaries(tmp_path) == [], "the re-run removes the killed process's temporaries"


def sweep_reference(out: Path, sweep_file: Path, tasks: int) -> str:
    assert main(["sweep", str(sweep_file), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert assert_sweep_consistent(out, sweep_file) == tasks
    return sha256_file(out / "results.parquet")


@pytest.fixture(scope="module")
def grid_reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sweep_reference(tmp_path_factory.mktemp("ref") / "grid", GRID, 16)


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sweep_reference(tmp_path_factory.mktemp("ref") / "long", LONG, 32)


@pytest.mark.parametrize(("pattern", "nth", "persisted"), [
    (r"allocations\.parquet", 5, 4),   # inside the 5th run's folder
    (r"seed=\d+", 7, 6),               # the 7th run complete in its temporary, not yet renamed
    (r"manifest\.json", 1, 16),        # results.parquet written, manifest not yet
])
def test_sweep_killed_at_each_commit_point(tmp_path, grid_reference, pattern, nth, persisted):
    out = tmp_path / "sweep"
    argv = ["sweep", str(GRID), "--out", str(out), "--workers", "1", "--quiet"]
    killed_at(pattern, nth, argv)
    assert assert_sweep_consistent(out, GRID) == persisted
    assert not (out / "manifest.json").exists()
    assert temporaries(out), "the killed writer left its temporary"
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"] == {"total": 16, "executed": 16 - persisted, "reused": persisted}
    assert manifest["sha256"]["results"] == grid_reference
    assert temporaries(out) == []


def _child_start() -> None:
    """The command's start in the child: SIGINT's default action even where this pytest was
    started ignoring it (a background job), and a lower priority than this process, which
    must see the command's progress while its work is still going on (a busy 2-core
    machine could otherwise keep this process waiting until the command had finished)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.nice(10)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "finished before it could be killed"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command and every process it started (its own session), then reap."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while True:  # the pool's workers and fork server die with it
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, "processes of the killed command still run"
        time.sleep(0.05)


def test_sweep_on_a_process_pool_killed_from_outside_then_resumed(tmp_path, long_reference):
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "market", "sweep", str(LONG), "--out", str(out), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_child_start)  # noqa: PLW1509
    try:
        wait_for(lambda: len(list(out.glob("runs/*/*/seed=*/sha256.json"))) >= 3, proc)
    finally:
        kill_group(proc)
    persisted = assert_sweep_consistent(out, LONG)
    assert 3 <= persisted < 32 and not (out / "results.parquet").exists()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"] == {"total": 32, "executed": 32 - persisted, "reused": persisted}, done.stdout
    assert manifest["sha256"]["results"] == long_reference
    assert assert_sweep_consistent(out, LONG) == 32 and temporaries(out) == []


def test_run_killed_from_outside_mid_way_keeps_the_previous_output(tmp_path, run_reference):
    out = tmp_path / "run"
    argv = ["run", str(TINY), "--out", str(out), "--mechanisms", "greedy,mohaf,first_price",
            "--seeds", ",".join(map(str, range(1, 7))), "--rounds", "6"]
    assert main([*argv, "--quiet"]) == 0
    full = assert_run_complete_or_absent(out)
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "market", *argv], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_child_start)  # noqa: PLW1509
        try:  # the progress bar shows some of the 18 runs done, several still to go
            wait_for(lambda: any(0 < int(n) <= 12 for n in re.findall(r"\| (\d+)/18 ", log.read_text())), proc)
        finally:
            kill_group(proc)
    assert assert_run_complete_or_absent(out) == full  # and anything else is a temporary


# Ctrl-C: SIGINT to the whole process group, as a terminal sends it.
INTERRUPT_TIMEOUT = 180.0  # generous: a loaded 2-core machine; nothing here times speed


def group_members(pgid: int) -> list[str]:
    """``pid state command`` of every process in the process group ``pgid`` (from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended while we looked
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid:
            members.append(f"{stat.parent.name} {fields[0]} {text[text.index('(') + 1:text.rindex(')')]}")
    return members


def text_of(log: Path) -> str:
    """The log as written: ``read_text`` would turn the progress bar's ``\\r`` into line breaks."""
    return log.read_bytes().decode()


def interrupted(argv: list[str], log: Path, started, sig: signal.Signals = signal.SIGINT, group: bool = True) -> int:
    """Start ``market argv`` in its own process group, signal it once ``started(stderr)``.

    ``sig`` goes to the whole group (Ctrl-C in a terminal) or, with ``group=False``, to the
    command's own process only (``kill PID``, ``timeout``).

    Returns the exit code, once every process of the group has ended (the command's
    workers, its fork server and its resource tracker, which writes its leak warnings
    after the command itself exits). Whatever goes wrong, no process is left behind.
    """
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "market", *argv], start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=err, preexec_fn=_child_start)  # noqa: PLW1509
        try:
            wait_for(lambda: started(text_of(log)), proc, timeout=INTERRUPT_TIMEOUT)
            # Frozen while it is signalled: the signal lands where the log was read, never
            # after the last task (a busy 2-core machine can delay this process that long).
            os.killpg(proc.pid, signal.SIGSTOP)
            assert proc.poll() is None, "finished before it could be signalled"
            (os.killpg if group else os.kill)(proc.pid, sig)
            os.killpg(proc.pid, signal.SIGCONT)
            code = proc.wait(timeout=INTERRUPT_TIMEOUT)
            deadline = time.monotonic() + INTERRUPT_TIMEOUT
            while group_members(proc.pid):
                assert time.monotonic() < deadline, f"still running after {sig.name}: {group_members(proc.pid)}"
                time.sleep(0.05)
        finally:
            if proc.poll() is None or group_members(proc.pid):
                with contextlib.suppress(ProcessLookupError):  # the group may end meanwhile
                    kill_group(proc)
    return code


def shown_lines(stderr: str) -> list[str]:
    """The non-blank lines a terminal shows at the end (each line's text after its last ``\\r``)."""
    return [s for line in stderr.split("\n") if (s := line.rsplit("\r", 1)[-1].strip())]


def progress_between(low: int, high: int):
    """A ``started`` test: the progress bar now shows from ``low`` to ``high`` runs done.

    The last count written, not any: the log keeps every count the bar ever showed.
    """
    def started(text: str) -> bool:
        counts = re.findall(r"\| (\d+)/\d+ ", text)
        return bool(counts) and low <= int(counts[-1]) <= high

    return started


def assert_stopped_cleanly(code: int, stderr: str, expected: int = 130, line: str = "interrupted") -> None:
    assert code == expected, stderr
    for word in ("leaked", "resource_tracker", "Traceback", "Error"):
        assert word not in stderr, stderr
    assert shown_lines(stderr) == [line], stderr  # the bar's line is cleared


def test_run_on_a_process_pool_interrupted_stops_cleanly(tmp_path):
    out = tmp_path / "run"
    argv = ["run", str(TINY), "--out", str(out), "--workers", "2", "--mechanisms", "greedy,mohaf,first_price",
            "--seeds", ",".join(map(str, range(1, 21))), "--rounds", "8"]  # 60 runs
    code = interrupted(argv, tmp_path / "stderr.txt", progress_between(1, 30))
    assert_stopped_cleanly(code, text_of(tmp_path / "stderr.txt"))
    assert not out.exists(), "an interrupted run wrote its output"
    assert temporaries(tmp_path) == [], "an interrupted run left its temporary"


def test_run_on_a_process_pool_terminated_stops_cleanly(tmp_path):
    """``kill PID`` (SIGTERM to the command alone) stops it like Ctrl-C: workers, fork server
    and resource tracker end with it (they stayed behind under init before), nothing written."""
    out = tmp_path / "run"
    argv = ["run", str(TINY), "--out", str(out), "--workers", "2", "--mechanisms", "greedy,mohaf,first_price",
            "--seeds", ",".join(map(str, range(1, 21))), "--rounds", "8"]  # 60 runs
    code = interrupted(argv, tmp_path / "stderr.txt", progress_between(1, 30), signal.SIGTERM, group=False)
    assert_stopped_cleanly(code, text_of(tmp_path / "stderr.txt"), 143, "terminated")
    assert not out.exists(), "a terminated run wrote its output"
    assert temporaries(tmp_path) == [], "a terminated run left its temporary"


def test_sweep_on_a_process_pool_interrupted_stops_cleanly_then_resumes(tmp_path, long_reference):
    out = tmp_path / "sweep"
    argv = ["sweep", str(LONG), "--out", str(out), "--workers", "2"]
    code = interrupted(argv, tmp_path / "stderr.txt", progress_between(1, 16))
    assert_stopped_cleanly(code, text_of(tmp_path / "stderr.txt"))
    persisted = assert_sweep_consistent(out, LONG)  # the runs finished before Ctrl-C are kept
    assert persisted < 32 and not (out / "results.parquet").exists()
    assert temporaries(out) == []
    done = subprocess.run([sys.executable, "-m", "market", *argv, "--quiet"], capture_output=True, text=True,
                          timeout=INTERRUPT_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"] == {"total": 32, "executed": 32 - persisted, "reused": persisted}
    assert manifest["sha256"]["results"] == long_reference
