"""The ``market`` command line: one way to register a command, and a fast ``--help``.

``market --help`` and ``market run --help`` run in a subprocess under ``python -X
importtime``; none of the heavy libraries may appear among the imports (command modules
import them when they run). Every other command's ``--help`` is checked the same way,
except those listed in :data:`HEAVY_HELP` with the reason.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from market.apps import cli

REPO = Path(__file__).resolve().parents[1]
#: libraries ``market --help`` must not import
HEAVY = ("numba", "scipy", "matplotlib", "mesa")
#: commands whose ``--help`` still imports a heavy library, and why
HEAVY_HELP: dict[str, str] = {}
COMMAND_NAMES = [importlib.import_module(f"{cli.PACKAGE}.{m}").NAME for m in cli.COMMANDS]


def imported(*args: str) -> set[str]:
    """Top-level packages imported by ``python -X importtime -m market ARGS`` (which must exit 0)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "market", *args],
        capture_output=True, text=True, check=False, cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: market" in proc.stdout
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", proc.stderr, flags=re.M)
    assert names, proc.stderr[-2000:]
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("args", [("--help",), ("run", "--help")], ids=["market", "run"])
def test_help_imports_no_heavy_library(args: tuple[str, ...]):
    loaded = imported(*args)
    assert "market" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("name", [n for n in COMMAND_NAMES if n not in ("run", *HEAVY_HELP)])
def test_every_command_help_is_light(name: str):
    loaded = imported(name, "--help")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_every_command_module_has_the_interface():
    assert len(set(COMMAND_NAMES)) == len(COMMAND_NAMES)
    for module_name in cli.COMMANDS:
        module = importlib.import_module(f"{cli.PACKAGE}.{module_name}")
        assert module.NAME.replace("-", "_") == module_name
        assert isinstance(module.HELP, str) and module.HELP
        assert module.DESCRIPTION is None or isinstance(module.DESCRIPTION, str)
        assert callable(module.add_arguments) and callable(module.run)


def test_help_lists_every_registered_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    listed = re.findall(r"^    (\S+)", capsys.readouterr().out, flags=re.M)
    assert listed == COMMAND_NAMES


def test_the_full_parser_knows_every_command():
    parser = cli.build_parser()  # every command's arguments, as a documentation tool would see them
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == COMMAND_NAMES
    assert "--out" in sub.choices["run"].format_help()


def test_only_the_apps_parse_arguments():
    """Studies and the core are libraries: no argparse, no sub-command registration."""
    for folder in ("market/core", "market/studies"):
        for path in sorted((REPO / folder).glob("*.py")):
            text = path.read_text()
            assert "argparse" not in text and "add_parser" not in text, path


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


# --- bad command lines and outputs: one line, exit 2, nothing replaced -----------------------


def _main(capsys, *argv: str) -> tuple[int, list[str]]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse exits
        code = int(exc.code)
    # what a terminal shows: each line as its last carriage-return segment left it
    shown = [line.split("\r")[-1] for line in capsys.readouterr().err.split("\n")]
    return code, [line for line in shown if line.strip()]


@pytest.mark.parametrize("argv", [
    ("run", "default", "--out", "x", "--rounds", "abc"),
    ("run", "default"),
    ("run", "default", "--out", "x", "--format", "xml"),
    ("bench", "--requests", "ten"),
    ("nosuch",),
])
def test_a_bad_command_line_is_one_line(capsys, argv):
    code, lines = _main(capsys, *argv)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: market"), lines


@pytest.mark.parametrize(("flag", "value", "want"), [
    ("--workers", "0", ">= 1"), ("--workers", "-2", ">= 1"), ("--rounds", "0", "in [1, 1000000]"),
    ("--rounds", "99999999999999999999", "in [1, 1000000]"),  # a typo that ran until memory ran out
])
def test_run_refuses_a_count_out_of_range(tmp_path, capsys, flag, value, want):
    code, lines = _main(capsys, "run", "default", "--out", str(tmp_path / "run"), flag, value)
    assert code == 2 and lines == [f"error: {flag} must be {want}, got {value}"]
    assert not (tmp_path / "run").exists()


def test_a_seed_listed_twice_is_named_by_the_option(tmp_path, capsys):
    code, lines = _main(capsys, "run", "default", "--out", str(tmp_path / "run"), "--seeds", "1,2,1")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: market run: argument --seeds: expected distinct integers, 1 is listed twice")
    assert not (tmp_path / "run").exists()


def test_bench_needs_a_timed_round(capsys):
    code, lines = _main(capsys, "bench", "--rounds", "0")
    assert code == 2 and lines == ["error: bench: --rounds must be at least 1 (timed rounds), got 0"]


def test_out_never_replaces_what_is_not_an_output(tmp_path, capsys, monkeypatch):
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "s"\nrounds = 1\nmechanisms = ["greedy"]\n[market]\nsource = "synthetic"\n'
                        "resources = 4\nusers = 2\nrequests = 8\n")
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    for out in (str(scenario), str(folder), ".", str(tmp_path.parent), str(scenario / "below")):
        code, lines = _main(capsys, "run", str(scenario), "--out", out, "--quiet")
        assert code == 2 and len(lines) == 1 and "output directory" in lines[0], (out, lines)
    assert (folder / "notes.txt").read_text() == "mine" and scenario.is_file()
    # a folder that merely holds a file named like an output's (manifest.json, summary.md) is
    # the user's, not an output: before, it was replaced, and the user's files lost
    for name in ("manifest.json", "summary.md", "audit.md", "scaling.md"):
        theirs = tmp_path / f"theirs-{name}"
        (theirs / "src").mkdir(parents=True)
        (theirs / name).write_text("{}")
        (theirs / "src" / "analysis.py").write_text("print(1)")
        code, lines = _main(capsys, "run", str(scenario), "--out", str(theirs), "--quiet")
        assert code == 2 and len(lines) == 1 and "no .market-output" in lines[0], lines
        assert (theirs / "src" / "analysis.py").is_file()
    # an earlier output (it carries the marker) is replaced, an empty folder is filled
    (tmp_path / "empty").mkdir()
    for out in ("run1", "run1", "empty"):
        assert _main(capsys, "run", str(scenario), "--out", out, "--quiet")[0] == 0
        assert (tmp_path / out / ".market-output").is_file() and (tmp_path / out / "rounds.parquet").is_file()


def test_one_commands_output_is_not_replaced_by_anothers(tmp_path, monkeypatch, capsys):
    """`market audit --out <a run's folder>` replaced the run (and `market report RUN --out RUN` its input)."""
    monkeypatch.chdir(tmp_path)
    scenario = Path(cli.__file__).resolve().parents[2] / "scenarios" / "audit-unit.toml"
    assert _main(capsys, "run", str(scenario), "--out", "run1", "--rounds", "1", "--quiet")[0] == 0
    assert (tmp_path / "run1" / ".market-output").read_text() == "run\n"
    before = {p.name: p.read_bytes() for p in (tmp_path / "run1").iterdir()}
    for command in (["audit", "audit-unit", "--mechanism", "greedy", "--quiet"], ["poa", "audit-unit", "--quiet"]):
        code, lines = _main(capsys, *command, "--out", "run1")
        assert code == 2 and len(lines) == 1, lines
        assert "holds the output of 'market run'" in lines[0] and f"'market {command[0]}'" in lines[0], lines
        assert {p.name: p.read_bytes() for p in (tmp_path / "run1").iterdir()} == before
    # the same command replaces its own output; an older output's empty marker names no command
    assert _main(capsys, "report", "run1", "--out", "rep")[0] == 0
    assert (tmp_path / "rep" / ".market-output").read_text() == "report\n"
    assert _main(capsys, "report", "run1", "--out", "rep")[0] == 0
    code, lines = _main(capsys, "run", str(scenario), "--out", "rep", "--rounds", "1", "--quiet")
    assert code == 2 and "holds the output of 'market report'" in lines[0], lines
    (tmp_path / "rep" / ".market-output").write_text("")
    assert _main(capsys, "run", str(scenario), "--out", "rep", "--rounds", "1", "--quiet")[0] == 0
    assert (tmp_path / "rep" / ".market-output").read_text() == "run\n"


def test_debug_is_taken_after_the_command_too(capsys):
    with pytest.raises(Exception, match="no such scenario"):
        cli.main(["run", "nosuch-scenario", "--out", "x", "--debug"])


def test_a_plug_in_that_breaks_the_rules_is_one_line_naming_it(tmp_path, capsys):
    import numpy as np

    from mechanisms import Allocation, Mechanism, register
    from mechanisms.registry import unregister

    @register("overcharge_test")
    class Overcharge(Mechanism):
        def allocate(self, market, rng):
            choice = np.where(market.candidates[:, 0] >= 0, 0, -1) if market.candidates.shape[1] else np.full(market.n_requests, -1)
            return Allocation(choice, np.where(choice >= 0, 2.0 * market.budget, 0.0))

    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "s"\nrounds = 2\nmechanisms = ["overcharge_test"]\n[market]\nsource = "synthetic"\n'
                        "resources = 4\nusers = 2\nrequests = 8\n")
    try:
        code, lines = _main(capsys, "run", str(scenario), "--out", str(tmp_path / "out"))
    finally:
        unregister("overcharge_test")
    assert code == 2 and len(lines) == 1, lines
    assert "'overcharge_test' returned an infeasible allocation in round 0 of seed 0" in lines[0]
    assert "check-mechanism" in lines[0] and not (tmp_path / "out").exists()


#: malformed answers a plug-in may give (market -> Allocation), and the invariant each breaks;
#: before the answer was checked, the first three crashed the process (a segfault in the
#: settlement's unchecked indexing) and the next three wrote wrong tables with exit 0
MALFORMED = {
    "too_long": (lambda m: _answer(np.full(m.n_requests + 1, -1), np.zeros(m.n_requests + 1)), "single-assignment"),
    "past_the_last_column": (lambda m: _answer(np.full(m.n_requests, m.candidates.shape[1] + 5), None), "choice-range"),
    "one_past_the_end": (lambda m: _answer(np.full(m.n_requests, m.candidates.shape[1]), None), "choice-range"),
    "padding": (lambda m: _answer(np.argmin(m.candidates, axis=1), None), "qos"),
    "too_short": (lambda m: _answer(np.full(m.n_requests - 1, -1), np.zeros(m.n_requests - 1)), "single-assignment"),
    "unserved_pays": (lambda m: _answer(np.full(m.n_requests, -1), np.full(m.n_requests, 0.01)), "unserved-pays-nothing"),
    "none": (lambda m: None, "returns-allocation"),
    "lists": (lambda m: _answer([-1] * m.n_requests, [0.0] * m.n_requests), "single-assignment"),
    "float_choice": (lambda m: _answer(np.full(m.n_requests, -1.0), None), "single-assignment"),
    # types numba cannot read (helper-53: a numba traceback, exit 1)
    "big_endian_choice": (lambda m: _answer(np.full(m.n_requests, -1, dtype=">i8"), None), "single-assignment"),
    "masked_choice": (lambda m: _answer(np.ma.masked_array(np.full(m.n_requests, -1)), None), "single-assignment"),
    "float16_payment": (lambda m: _answer(np.full(m.n_requests, -1), np.zeros(m.n_requests, np.float16)),
                        "payment-shape"),
    "big_endian_payment": (lambda m: _answer(np.full(m.n_requests, -1), np.zeros(m.n_requests, ">f8")), "payment-shape"),
    "flag_array": (lambda m: _flagged(_answer(np.full(m.n_requests, -1), None)), "returns-allocation"),
}


def _flagged(alloc):
    alloc.time_limited = np.array([True, False])
    return alloc


def _answer(choice, payment):
    from mechanisms import Allocation

    if payment is None:
        payment = np.zeros(len(choice))
    return Allocation(choice, payment)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_plug_in_with_a_malformed_answer_is_one_line_naming_the_invariant(tmp_path, capsys, kind):
    from mechanisms import Mechanism, register
    from mechanisms.registry import unregister

    answer, invariant = MALFORMED[kind]

    @register("malformed_test")
    class Malformed(Mechanism):
        def allocate(self, market, rng):
            return answer(market)

    # every request has padding: 2 resources, K = 3 candidates
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "s"\nrounds = 2\nmechanisms = ["malformed_test"]\n[clustering]\nclusters = 1\ncandidates = 3\n[market]\n'
                        'source = "synthetic"\nresources = 2\nusers = 2\nrequests = 8\n')
    runs = [("run", str(scenario))]
    if kind in ("past_the_last_column", "unserved_pays"):  # the audit plays the same rounds (it had a traceback)
        runs.append(("audit", "audit-unit", "--mechanism", "malformed_test"))
    try:
        for command, *args in runs:
            code, lines = _main(capsys, command, *args, "--out", str(tmp_path / command))
            assert code == 2 and len(lines) == 1, (command, lines)
            assert "'malformed_test' returned an infeasible allocation in round 0 of seed" in lines[0], lines
            assert f"invariant {invariant!r}" in lines[0], lines
            assert not (tmp_path / command).exists()
    finally:
        unregister("malformed_test")


def test_report_never_replaces_the_run_it_reads(tmp_path, capsys):
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "s"\nrounds = 1\nmechanisms = ["greedy"]\n[market]\nsource = "synthetic"\n'
                        "resources = 4\nusers = 2\nrequests = 8\n")
    run = tmp_path / "run"
    assert _main(capsys, "run", str(scenario), "--out", str(run), "--quiet")[0] == 0
    code, lines = _main(capsys, "report", str(run), "--out", str(run))
    # (refused as another command's output when the command line is read; the report's own
    # check, "would replace the run it reports on", also holds for a run of an older version)
    assert code == 2 and len(lines) == 1 and "holds the output of 'market run'" in lines[0], lines
    (run / ".market-output").write_text("")
    code, lines = _main(capsys, "report", str(run), "--out", str(run))
    assert code == 2 and len(lines) == 1 and "would replace the run it reports on" in lines[0], lines
    # a folder holding the run (here it also holds other files) is refused too
    code, lines = _main(capsys, "report", str(run), "--out", str(tmp_path))
    assert code == 2 and len(lines) == 1, lines
    assert (run / "rounds.parquet").is_file() and scenario.is_file()


@pytest.mark.parametrize(("key", "flag", "expected"), [
    ("true", None, True), ("true", "--no-oracle", False), ("false", "--oracle", True), ("false", None, False),
])
def test_oracle_switch_overrides_the_scenario(tmp_path, capsys, key, flag, expected):
    import pandas as pd

    scenario = tmp_path / "s.toml"
    scenario.write_text(f'name = "s"\nrounds = 2\nmechanisms = ["greedy"]\noracle = {key}\n[market]\n'
                        'source = "synthetic"\nresources = 4\nusers = 2\nrequests = 8\n')
    out = tmp_path / "run"
    argv = ["run", str(scenario), "--out", str(out), "--quiet", *([flag] if flag else [])]
    assert _main(capsys, *argv)[0] == 0
    rounds = pd.read_parquet(out / "rounds.parquet")
    assert ("opt_welfare" in rounds.columns) is expected
    if expected:
        assert (rounds["alg_opt"] <= 1 + 1e-9).all()


def test_sweep_oracle_switch_reaches_every_scenario():
    from market.studies.sweep import load_sweep
    from tests.conftest import DATA

    path = DATA / "sweep" / "grid.toml"
    assert not any(s.oracle for s in load_sweep(path).scenarios)
    assert all(s.oracle for s in load_sweep(path, oracle=True).scenarios)
    on, off = load_sweep(path, oracle=True), load_sweep(path)
    assert on.tasks()[0].fingerprint() != off.tasks()[0].fingerprint()  # a resumed sweep reruns them


@pytest.mark.parametrize("out", ["/proc/market-out", "/sys/market-out/run"])
def test_an_output_folder_that_cannot_be_made_is_one_line(capsys, out):
    """Before: a PermissionError / FileNotFoundError traceback, exit 1 (after the work)."""
    code, lines = _main(capsys, "run", "default", "--out", out, "--quiet", "--rounds", "1")
    assert code == 2 and len(lines) == 1 and "cannot create" in lines[0], lines


@pytest.mark.parametrize(("flag", "value"), [("--seeds", ""), ("--seeds", " , "), ("--mechanisms", "")])
def test_an_empty_list_is_refused_not_taken_as_the_scenarios(tmp_path, capsys, flag, value):
    code, lines = _main(capsys, "run", "default", "--out", str(tmp_path / "run"), flag, value)
    assert code == 2 and len(lines) == 1 and "empty list" in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_bench_set_needs_a_scenario_and_names_a_bad_horizon(capsys):
    code, lines = _main(capsys, "bench", "--requests", "10", "--resources", "5", "--set", "market.rate=1")
    expected = "error: bench: --set changes a scenario's market and needs --scenario, got 'market.rate=1'"
    assert code == 2 and lines == [expected]
    code, lines = _main(capsys, "bench", "--scenario", "default", "--rounds", "1", "--set", "horizon=abc")
    assert code == 2 and len(lines) == 1 and "horizon" in lines[0] and "'abc'" in lines[0], lines


def test_the_order_of_the_seeds_does_not_change_the_tables(tmp_path, capsys):
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "s"\nrounds = 1\nmechanisms = ["greedy"]\n[market]\nsource = "synthetic"\n'
                        "resources = 4\nusers = 2\nrequests = 8\n")
    for seeds in ("1,2", "2,1"):
        assert _main(capsys, "run", str(scenario), "--out", str(tmp_path / seeds), "--seeds", seeds, "--quiet")[0] == 0
    first, second = (json.loads((tmp_path / s / "manifest.json").read_text()) for s in ("1,2", "2,1"))
    assert first["sha256"] == second["sha256"]


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`market scenarios | head -1`: the pipe closes before the listing is written (it printed a BrokenPipeError traceback)."""
    # a pipe is block-buffered unless PYTHONUNBUFFERED is set; --help ends in argparse's SystemExit
    for argv, unbuffered in itertools.product((["scenarios"], ["--help"], ["run", "--help"]), (None, "1")):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        if unbuffered:
            env["PYTHONUNBUFFERED"] = unbuffered
        with subprocess.Popen([sys.executable, "-m", "market", *argv], stdout=subprocess.PIPE, env=env,
                              stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1]) as proc:
            proc.stdout.close()  # the reader is gone before anything is written
            err = proc.stderr.read().decode()
            assert proc.wait(timeout=120) in ((0, 141) if unbuffered else (141,)) and err == "", (argv, unbuffered, err)
