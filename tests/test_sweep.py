"""Sweeps: identical bytes on any executor, resuming, grid files, command line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from market.apps.cli import main
from market.core.io import sha256_file
from market.core.runner import run_one
from market.errors import MarketInputError
from market.studies.sweep import SIDECAR, Task, load_sweep, open_executor, run_sweep, verified
from tests.conftest import DATA

SWEEPS = DATA / "sweep"
GRID = SWEEPS / "grid.toml"


def sweep_files(out: Path) -> dict[str, str]:
    """sha256 of every deterministic file of a sweep directory (all but timings and manifest)."""
    return {
        str(p.relative_to(out)): sha256_file(p)
        for p in sorted(out.rglob("*.parquet"))
        if p.name != "timings.parquet"
    }


def run(out: Path, executor=None, sweep_file: Path = GRID) -> tuple[dict, list[str]]:
    """Run a sweep; return the manifest and the labels of the tasks executed."""
    done: list[str] = []
    manifest = run_sweep(load_sweep(sweep_file), out, executor, progress=lambda t: done.append(t.label))
    return manifest, done


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The grid run in this process, one task after another."""
    out = tmp_path_factory.mktemp("sweep") / "serial"
    manifest, done = run(out)
    assert len(done) == manifest["tasks"]["total"] == manifest["tasks"]["executed"] == 12 + 4
    return out, manifest


def test_results_hold_every_run_in_grid_order(reference):
    out, manifest = reference
    results = pd.read_parquet(out / "results.parquet")
    assert sha256_file(out / "results.parquet") == manifest["sha256"]["results"]
    assert manifest["runs"] == 12 and len(results) == 12 * 3 == manifest["results_rows"]
    assert list(results.columns[:4]) == ["scenario", "mechanism", "seed", "round"]
    keys = list(results[["scenario", "mechanism", "seed"]].drop_duplicates().itertuples(index=False, name=None))
    sweep = load_sweep(GRID)
    assert keys == [(sc.name, m, s) for sc in sweep.scenarios for m in sc.mechanisms for s in sc.seeds]
    assert [sc.rounds for sc in sweep.scenarios] == [3, 3] and not any(sc.oracle for sc in sweep.scenarios)
    # a run's rows are exactly what the runner gives for that run, computed here afresh
    sc = sweep.scenarios[1]
    direct = run_one(sc, "second_price", 2).rounds
    got = results.query("scenario == 'tiny-tight' and mechanism == 'second_price' and seed == 2")
    pd.testing.assert_frame_equal(got.drop(columns="scenario").reset_index(drop=True), direct, check_dtype=False)
    # every persisted task verifies against its own sidecar
    for task in sweep.tasks():
        assert verified(task, out), task.label
        side = json.loads((task.folder(out) / SIDECAR).read_text())
        assert side["fingerprint"] == task.fingerprint()
        assert set(side["sha256"]) == {f"{t}.parquet" for t in task.tables}


def test_process_pool_and_dask_cluster_give_identical_bytes(reference, tmp_path, monkeypatch):
    from distributed import LocalCluster

    ref_out, ref_manifest = reference
    expected = sweep_files(ref_out)
    with open_executor("local", workers=2) as pool:
        manifest, done = run(tmp_path / "pool", pool)
    assert len(done) == 16 and manifest["sha256"]["results"] == ref_manifest["sha256"]["results"]
    assert sweep_files(tmp_path / "pool") == expected
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        with open_executor("dask", cluster.scheduler_address) as executor:
            manifest, done = run(tmp_path / "dask", executor)
        assert len(done) == 16 and manifest["sha256"]["results"] == ref_manifest["sha256"]["results"]
        assert sweep_files(tmp_path / "dask") == expected
        # the command line, finding the scheduler through DASK_SCHEDULER_ADDRESS, redoing two runs
        shutil.copytree(ref_out, tmp_path / "cli")
        for run_dir in ("runs/tiny/mohaf/seed=2", "runs/tiny-tight/second_price/seed=1"):
            shutil.rmtree(tmp_path / "cli" / run_dir)
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        assert main(["sweep", str(GRID), "--out", str(tmp_path / "cli"), "--executor", "dask", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["tasks"]["executed"] == 2
    assert manifest["sha256"]["results"] == ref_manifest["sha256"]["results"]
    assert sweep_files(tmp_path / "cli") == expected


def test_resume_skips_verified_runs_and_redoes_damaged_ones(reference, tmp_path):
    ref_out, ref_manifest = reference
    out = tmp_path / "resume"
    shutil.copytree(ref_out, out)
    manifest, done = run(out)
    assert done == [] and manifest["tasks"] == {"total": 16, "executed": 0, "reused": 16}
    assert manifest["sha256"]["results"] == ref_manifest["sha256"]["results"]

    sweep = load_sweep(GRID)
    by_label = {t.label: t for t in sweep.tasks()}
    # one flipped byte in a table, a truncated table, a forged sidecar, a missing run
    flipped = by_label["tiny/greedy/seed=2"].folder(out) / "allocations.parquet"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated = by_label["tiny-tight/mohaf/seed=1"].folder(out) / "rounds.parquet"
    truncated.write_bytes(truncated.read_bytes()[:100])
    forged = by_label["tiny-tight/market/seed=2"].folder(out) / SIDECAR
    side = json.loads(forged.read_text())
    side["fingerprint"] = "0" * 64
    forged.write_text(json.dumps(side))
    shutil.rmtree(by_label["tiny/second_price/seed=1"].folder(out))
    # and what a killed writer leaves behind: a partial temporary of a process that is gone
    dead = by_label["tiny/second_price/seed=1"].folder(out).with_name(".seed=1.tmp-999999999")
    dead.mkdir()
    (dead / "rounds.parquet").write_bytes(b"partial")
    damaged = {"tiny/greedy/seed=2", "tiny-tight/mohaf/seed=1", "tiny-tight/market/seed=2", "tiny/second_price/seed=1"}
    assert {label for label, t in by_label.items() if not verified(t, out)} == damaged

    manifest, done = run(out)
    assert sorted(done) == sorted(damaged)
    assert manifest["tasks"] == {"total": 16, "executed": 4, "reused": 12}
    assert manifest["sha256"]["results"] == ref_manifest["sha256"]["results"]
    assert sweep_files(out) == sweep_files(ref_out)
    assert not dead.exists()


def test_a_fully_reused_sweep_on_a_process_pool_exits(reference, tmp_path):
    """The user's re-run of a finished sweep (`--workers` defaults to the CPUs): every task
    reused, the pool given nothing to do. Once hung at exit, its workers never told to stop."""
    ref_out, ref_manifest = reference
    out = tmp_path / "again"
    shutil.copytree(ref_out, out)
    argv = [sys.executable, "-m", "market", "sweep", str(GRID), "--out", str(out), "--workers", "2", "--quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"] == {"total": 16, "executed": 0, "reused": 16}
    assert manifest["sha256"]["results"] == ref_manifest["sha256"]["results"]


def test_extending_the_grid_runs_only_the_new_runs(reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "extend"
    shutil.copytree(ref_out, out)
    wider = tmp_path / "wider.toml"
    wider.write_text(GRID.read_text().replace("seeds = [1, 2]", "seeds = [1, 2, 3]").replace(
        '"tiny.toml", "tiny_tight.toml"', f'"{SWEEPS / "tiny.toml"}", "{SWEEPS / "tiny_tight.toml"}"'))
    manifest, done = run(out, sweep_file=wider)
    assert sorted(done) == sorted(
        [f"{sc}/{m}/seed=3" for sc in ("tiny", "tiny-tight") for m in ("mohaf", "greedy", "second_price", "market")])
    results = pd.read_parquet(out / "results.parquet")
    old = pd.read_parquet(ref_out / "results.parquet")
    pd.testing.assert_frame_equal(results[results["seed"] < 3].reset_index(drop=True), old)
    # a different number of rounds changes every fingerprint: nothing is reused
    fewer = tmp_path / "fewer.toml"
    fewer.write_text(wider.read_text().replace("rounds = 3", "rounds = 2"))
    manifest, done = run(out, sweep_file=fewer)
    assert manifest["tasks"]["executed"] == manifest["tasks"]["total"] == 18 + 6
    assert len(pd.read_parquet(out / "results.parquet")) == 18 * 2


def test_sweep_file_resolves_relative_paths_and_shipped_names(tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copy(SWEEPS / "tiny.toml", tmp_path / "sub" / "mine.toml")
    path = tmp_path / "s.toml"
    path.write_text('scenarios = ["sub/mine.toml", "tight"]\nseeds = [7]\n')
    sweep = load_sweep(path)
    assert sweep.name == "s"
    assert [sc.name for sc in sweep.scenarios] == ["tiny", "tight"]
    assert all(sc.seeds == [7] for sc in sweep.scenarios)
    assert sweep.scenarios[0].mechanisms == ["greedy"]  # the scenario's own list when not overridden
    assert len(sweep.tasks()) == len(sweep.scenarios[0].mechanisms) + len(sweep.scenarios[1].mechanisms) + 2
    assert Task(sweep.scenarios[0], None, 7).fingerprint() != Task(sweep.scenarios[1], None, 7).fingerprint()


@pytest.mark.parametrize(("text", "message"), [
    ('scenarios = ["tiny.toml"]\nround = 3\n', "unknown key 'round'"),
    ("scenarios = []\n", "key 'scenarios' must be a non-empty list"),
    ('scenarios = ["nope.toml"]\n', "no such scenario file 'nope.toml'"),
    ('scenarios = ["tiny.toml"]\nmechanisms = ["greedy", "auction9"]\n', "unknown mechanism 'auction9'"),
    ('scenarios = ["tiny.toml"]\nseeds = [1, -1]\n', "key 'seeds'"),
    ('scenarios = ["tiny.toml"]\nrounds = 0\n', "key 'rounds' must be in [1, 1000000], got 0"),
    ('scenarios = ["tiny.toml"]\nrounds = 9223372036854775807\n', "key 'rounds' must be in [1, 1000000], got 9"),
    ('scenarios = ["tiny.toml"]\nrounds = "3"\n', "key 'rounds' must be int"),
    ('scenarios = ["tiny.toml", "tiny.toml"]\n', "two scenarios are named 'tiny'"),
    ('scenarios = ["tiny.toml"\n', "not valid TOML"),
])
def test_bad_sweep_files_fail_in_one_line_naming_file_and_key(tmp_path, capsys, text, message):
    shutil.copy(SWEEPS / "tiny.toml", tmp_path / "tiny.toml")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MarketInputError, match=re.escape(message)):
        load_sweep(path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_executor_choices_are_checked(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(MarketInputError, match="needs --address"), open_executor("dask"):
        pass
    with pytest.raises(MarketInputError, match="needs --executor dask"), open_executor("local", "tcp://127.0.0.1:8786"):
        pass
    with pytest.raises(MarketInputError, match="--workers must be >= 1"), open_executor("local", workers=0):
        pass
    with open_executor("local", workers=1) as executor:
        assert executor is None  # one worker: in this process
    assert os.environ.get("DASK_SCHEDULER_ADDRESS") is None


def tabular_sweep(folder: Path) -> Path:
    """A one-run sweep of a tabular market (its tables written beside it)."""
    folder.mkdir()
    pd.DataFrame({
        "request_id": range(6), "user_id": [0, 1, 2, 0, 1, 2], "round": [0, 0, 0, 1, 1, 1],
        "cpu": [1.0] * 6, "mem": [1.0] * 6, "budget": [5.0] * 6, "priority": [1, 2, 3, 1, 2, 3],
        "x": [0.0] * 6, "y": [0.0] * 6,
    }).to_csv(folder / "requests.csv", index=False)
    pd.DataFrame({
        "resource_id": [0, 1], "cpu": [2.0, 1.0], "mem": [2.0, 1.0], "unit_cost": [0.5, 0.4],
        "reliability": [0.9] * 2, "availability": [0.9] * 2, "energy_efficiency": [0.5] * 2, "x": [0.0] * 2,
        "y": [0.0] * 2,
    }).to_csv(folder / "resources.csv", index=False)
    (folder / "market.toml").write_text('name = "tab"\nrounds = 2\nseeds = [1]\nmechanisms = ["greedy"]\n'
                                        'oracle = false\n[market]\nsource = "tabular"\n'
                                        'requests = "requests.csv"\nresources = "resources.csv"\n')
    (folder / "sweep.toml").write_text('scenarios = ["market.toml"]\n')
    return folder / "sweep.toml"


def test_a_changed_data_file_reruns_the_tasks_that_read_it(tmp_path):
    """The fingerprint covers the tables' bytes, not only the scenario (before: 0 executed, stale budgets)."""
    sweep = tabular_sweep(tmp_path / "src")
    out = tmp_path / "out"
    assert run(out, sweep_file=sweep)[0]["tasks"]["executed"] == 2  # the market and the run
    assert run(out, sweep_file=sweep)[0]["tasks"]["executed"] == 0
    requests = pd.read_csv(tmp_path / "src" / "requests.csv")
    requests["budget"] *= 2
    requests.to_csv(tmp_path / "src" / "requests.csv", index=False)
    assert run(out, sweep_file=sweep)[0]["tasks"]["executed"] == 2
    market = pd.read_parquet(out / "markets" / "tab" / "seed=1" / "requests.parquet")
    assert market["budget"].tolist() == [10.0] * 6
    fresh = tmp_path / "fresh"
    run(fresh, sweep_file=sweep)
    assert sha256_file(out / "results.parquet") == sha256_file(fresh / "results.parquet")


def test_sweep_out_is_a_new_empty_or_earlier_sweep_folder(tmp_path, capsys, monkeypatch):
    """A file, a folder of other content, another command's output or the working directory is refused."""
    sweep = tabular_sweep(tmp_path / "src")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(["run", str(tmp_path / "src" / "market.toml"), "--out", str(tmp_path / "a_run"), "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path / "mine")
    for out in (tmp_path / "afile", tmp_path / "mine", tmp_path / "a_run", Path(".")):
        with pytest.raises(SystemExit) as exit_:  # refused by argparse, when the command line is read
            main(["sweep", str(sweep), "--out", str(out), "--quiet", "--workers", "1"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and "output directory" in err, err
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    assert (tmp_path / "afile").read_text() == "x"
    # a new folder, then the same sweep folder again (resumed)
    for _ in range(2):
        assert main(["sweep", str(sweep), "--out", str(tmp_path / "sw"), "--quiet", "--workers", "1"]) == 0
    assert (tmp_path / "sw" / ".market-sweep").is_file()
    # and another command's --out does not take a sweep folder for its own output
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(tmp_path / "src" / "market.toml"), "--out", str(tmp_path / "sw"), "--quiet"])
    assert exit_.value.code == 2 and (tmp_path / "sw" / "results.parquet").is_file()
