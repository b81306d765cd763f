"""A Ctrl-C (or SIGTERM) that a library swallows still stops the command, with nothing written.

numpy's dtype comparison clears the error of a failed conversion, KeyboardInterrupt
included, and pandas' dtype checks make that comparison while a table is written: about
one Ctrl-C in ten during a sweep was lost that way, the sweep finishing with exit code 0
(tests/test_crash.py saw it on CI). Here the swallowing is made deterministic: a patched
library call raises the signal and catches its exception, as such a library does.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from market.apps import cli
from market.apps.cli import main
from market.core import interrupts, pool
from market.core.io import sha256_file
from market.core.model import MarketModel
from tests.conftest import DATA

TINY = DATA / "sweep" / "tiny.toml"
EXIT = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


def swallow(sig: signal.Signals) -> None:
    """Take ``sig`` here and swallow its exception, as a C extension that clears errors does."""
    try:
        signal.raise_signal(sig)
        sum(range(1000))  # bytecode after the signal: where Python runs its handler at the latest
    except KeyboardInterrupt:
        return
    raise AssertionError(f"{sig.name} raised nothing")


@pytest.fixture(params=[signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def sig(request, monkeypatch) -> signal.Signals:
    # pytest may run with SIGINT ignored (a background job): the command takes over only
    # Python's default handler, as a terminal's `market` process has it
    monkeypatch.setattr(signal, "getsignal", lambda s, real=signal.getsignal: (
        signal.default_int_handler if s == signal.SIGINT else real(s)))
    return request.param


def test_swallowed_in_a_round_stops_before_the_next_round(tmp_path, capsys, monkeypatch, sig):
    play, rounds = MarketModel._play, []

    def swallowing_play(self, *args, **kwargs):
        rounds.append(self.round)
        if len(rounds) == 2:
            swallow(sig)
        return play(self, *args, **kwargs)

    monkeypatch.setattr(MarketModel, "_play", swallowing_play)
    out = tmp_path / "run"
    code = main(["run", str(TINY), "--out", str(out), "--mechanisms", "greedy", "--seeds", "1,2", "--rounds", "6",
                 "--quiet"])
    assert (code, capsys.readouterr().err.strip()) == EXIT[sig]
    assert len(rounds) == 2, "the round after the signal ran"
    assert list(tmp_path.iterdir()) == [], "an interrupted run wrote something"


def test_swallowed_while_a_table_is_written_writes_nothing(tmp_path, capsys, monkeypatch, sig):
    to_parquet = pd.DataFrame.to_parquet

    def swallowing_to_parquet(self, *args, **kwargs):
        swallow(sig)
        return to_parquet(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", swallowing_to_parquet)
    out = tmp_path / "sweep"
    code = main(["sweep", str(DATA / "sweep" / "grid.toml"), "--out", str(out), "--workers", "1", "--quiet"])
    assert (code, capsys.readouterr().err.strip()) == EXIT[sig]
    assert not (out / "results.parquet").exists() and not list(out.rglob("seed=*")), "a table was committed"
    assert not [p for p in out.rglob(".*") if ".tmp-" in p.name], "a temporary was left"


def test_the_record_lasts_as_long_as_the_block(sig):
    with interrupts.handled():
        interrupts.raise_if_interrupted()  # nothing taken yet
        swallow(sig)
        with pytest.raises(interrupts.Terminated if sig == signal.SIGTERM else KeyboardInterrupt) as raised:
            interrupts.raise_if_interrupted()
        assert (sig == signal.SIGTERM) == isinstance(raised.value, interrupts.Terminated)
    interrupts.raise_if_interrupted()  # the record ends with the block


def test_ctrl_c_while_the_workers_start_is_taken_once_all_are_known(monkeypatch, sig):
    """Before: a worker being forked when Ctrl-C came was unknown to the clean-up; it
    outlived the command and printed a traceback (the fork server was still importing)."""
    start, workers = pool._start, []

    def signalled_start(n):
        signal.raise_signal(sig)  # held until every worker has started
        executor = start(n)
        workers.extend(executor._processes.values())
        return executor

    monkeypatch.setattr(pool, "_start", signalled_start)
    with interrupts.handled(), pytest.raises(KeyboardInterrupt) as raised, pool.local_pool(2):
        pytest.fail("the pool's block ran after the signal")
    assert (sig == signal.SIGTERM) == isinstance(raised.value, interrupts.Terminated)
    assert len(workers) == 2 and not any(w.is_alive() for w in workers)


def test_a_signal_during_the_commit_is_taken_after_it(tmp_path, capsys, monkeypatch, sig):
    """Before: Ctrl-C between the rename of the old output aside and the removal of that
    copy left `.run.old-<pid>` beside the new output."""
    out = tmp_path / "run"
    argv = ["run", str(TINY), "--out", str(out), "--mechanisms", "greedy", "--seeds", "1", "--rounds", "2", "--quiet"]
    assert main(argv) == 0
    replace = os.replace

    def signalled_replace(src, dst):
        replace(src, dst)
        if Path(dst) == out:
            signal.raise_signal(sig)  # just after the new output took the name

    monkeypatch.setattr(os, "replace", signalled_replace)
    capsys.readouterr()
    assert (main([*argv, "--rounds", "3"]), capsys.readouterr().err.strip()) == EXIT[sig]
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "a moved-aside copy or a temporary was left"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"]["rounds"] == 3, "the new output is the one in place"
    for name, digest in manifest["sha256"]["tables"].items():
        assert sha256_file(out / name) == digest


def test_a_signal_while_the_output_folder_is_probed_leaves_no_probe(tmp_path, capsys, monkeypatch, sig):
    """Before: Ctrl-C between making and removing the writability probe left `.market-probe-*`
    (in a sweep's run folder, CI)."""
    import tempfile

    mkdtemp = tempfile.mkdtemp

    def signalled_mkdtemp(*args, **kwargs):
        made = mkdtemp(*args, **kwargs)
        signal.raise_signal(sig)  # just after the probe is made
        return made

    monkeypatch.setattr(tempfile, "mkdtemp", signalled_mkdtemp)
    argv = ["run", str(TINY), "--out", str(tmp_path / "run"), "--mechanisms", "greedy", "--seeds", "1", "--rounds", "1",
            "--quiet"]
    assert (main(argv), capsys.readouterr().err.strip()) == EXIT[sig]
    assert list(tmp_path.iterdir()) == [], "a probe or a temporary was left"


def test_a_sweeps_results_and_manifest_are_written_together(tmp_path, capsys, monkeypatch, sig):
    """Before: Ctrl-C between the two left results.parquet without its manifest."""
    from market.core import io

    write_table = io.write_table

    def signalled_write_table(df, path, fmt):
        written = write_table(df, path, fmt)
        if path.name == "results":
            signal.raise_signal(sig)
        return written

    monkeypatch.setattr(io, "write_table", signalled_write_table)
    out = tmp_path / "sweep"
    code = main(["sweep", str(DATA / "sweep" / "grid.toml"), "--out", str(out), "--workers", "1", "--quiet"])
    assert (code, capsys.readouterr().err.strip()) == EXIT[sig]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sha256_file(out / "results.parquet") == manifest["sha256"]["results"]


def test_ctrl_c_while_the_parser_is_built_is_one_line(capsys, monkeypatch, sig):
    """Before: building the parser (which imports the command's module, matplotlib for
    `market report`) ran before the handlers: a traceback and death by SIGINT."""
    def signalled_parser(*args, **kwargs):
        signal.raise_signal(sig)
        sum(range(1000))

    monkeypatch.setattr(cli, "build_parser", signalled_parser)
    assert (main(["report", "--help"]), capsys.readouterr().err.strip()) == EXIT[sig]


def test_a_pool_that_runs_no_task_ends_its_workers():
    """Before: with every worker started eagerly, a pool given no task (a sweep re-run whose
    runs are all reused) never told them to stop, and the command hung at exit."""
    with pool.local_pool(2) as executor:
        workers = list(executor._processes.values())
    assert len(workers) == 2 and not any(w.is_alive() for w in workers)


def test_a_fork_failing_part_way_ends_the_workers_started(monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    spawn, started = ProcessPoolExecutor._spawn_process, []

    def failing_spawn(self):
        if self._processes:
            raise OSError(11, "Resource temporarily unavailable")  # fork's EAGAIN
        spawn(self)
        started.extend(self._processes.values())

    monkeypatch.setattr(ProcessPoolExecutor, "_spawn_process", failing_spawn)
    with pytest.raises(OSError, match="temporarily unavailable"), pool.local_pool(2):
        pytest.fail("the pool's block ran")
    assert len(started) == 1 and not started[0].is_alive()


def test_python_m_market_exits_130_when_the_ctrl_c_ended_a_string_exec(tmp_path):
    """A Ctrl-C that lands in a string exec() (dataclasses build their methods with one, so an
    import may be there when it comes) made `python -m market` end by SIGINT (-2) after printing
    "interrupted": CPython marks it unhandled although the CLI caught it (market/__main__.py)."""
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text(
        "import market.apps.cli as cli\n\n"
        "def build_parser(*args, **kwargs):\n"
        "    exec('raise KeyboardInterrupt', {})  # a Ctrl-C taken inside a string exec\n\n"
        "cli.build_parser = build_parser\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])}
    done = subprocess.run([sys.executable, "-m", "market", "scenarios"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert (done.returncode, done.stderr.strip()) == (130, "interrupted"), done
