"""Sweeps: a scenario x mechanism x seed grid on a local process pool or a Dask cluster.

A sweep file (TOML) names the grid::

    name = "tight-vs-default"          # optional, defaults to the file's stem
    scenarios = ["my.toml", "tight"]   # paths relative to this file, or shipped names
    mechanisms = ["mohaf", "greedy"]   # optional: each scenario's own list
    seeds = [1, 2, 3]                  # optional: each scenario's own seeds
    rounds = 10                        # optional override
    oracle = false                     # optional override

Every (scenario, mechanism, seed) run is :func:`market.core.runner.run_one`, submitted to a
``concurrent.futures`` executor: a local ``ProcessPoolExecutor`` (forkserver) by default,
or ``Client(address).get_executor()`` of a Dask cluster. Workers only compute; this
process writes. Each finished run is persisted at once, atomically, with its own sha256
sidecar, so a killed sweep resumes where it stopped::

    DIR/runs/<scenario>/<mechanism>/seed=<s>/  rounds, timings, allocations .parquet + sha256.json
    DIR/markets/<scenario>/seed=<s>/           requests, resources .parquet + sha256.json
    DIR/results.parquet                        every run's rounds, with a leading scenario column
    DIR/manifest.json                          grid, versions, sha256 of results.parquet
    DIR/.market-sweep                          marks a sweep directory (a sweep resumes only into one)

A re-run reuses a persisted run only if its sidecar matches the run's fingerprint (the
resolved scenario, mechanism, seed and project version, and the market's input files:
:func:`input_fingerprint`) and every file's sha256 is
recomputed and matches; anything else is run again. ``results.parquet`` is built from
the persisted tables in a fixed order (scenario and mechanism as listed, then seed and
round), so its bytes do not depend on the executor, the worker count or on resuming.
The manifest is written last: a ``manifest.json`` always describes the results next to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market import __version__
from market.core.interrupts import deferred
from market.core.pool import local_pool
from market.errors import MarketInputError

if TYPE_CHECKING:  # the runner, pandas and numba load only when a sweep runs (fast --help)
    import pandas as pd

    from market.core.runner import RunTables
    from scenarios.config import Scenario

SIDECAR = "sha256.json"
#: every sweep directory holds this (empty) file: only such a directory is resumed into
SWEEP_MARKER = ".market-sweep"
RUN_TABLES = ("rounds", "timings", "allocations", "users")
MARKET_TABLES = ("requests", "resources")
EXECUTORS = ("local", "dask")
_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str, "description": str, "scenarios": list, "mechanisms": list, "seeds": list,
    "rounds": int, "oracle": bool,
}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its scenarios with the sweep's overrides applied."""

    name: str
    scenarios: list[Scenario]
    path: str = ""
    description: str = ""

    def tasks(self) -> list[Task]:
        """Every run, then every (scenario, seed) market, in the fixed result order."""
        runs = [Task(sc, m, s) for sc in self.scenarios for m in sc.mechanisms for s in sc.seeds]
        return runs + [Task(sc, None, s) for sc in self.scenarios for s in sc.seeds]


@dataclass(frozen=True)
class Task:
    """One unit of work: a (scenario, mechanism, seed) run, or (mechanism None) a seed's market."""

    scenario: Scenario
    mechanism: str | None
    seed: int

    @property
    def label(self) -> str:
        """``scenario/mechanism/seed=s`` (``market`` for a market task)."""
        return f"{self.scenario.name}/{self.mechanism or 'market'}/seed={self.seed}"

    @property
    def tables(self) -> tuple[str, ...]:
        """Names of the tables this task persists."""
        return MARKET_TABLES if self.mechanism is None else RUN_TABLES

    def folder(self, out: Path) -> Path:
        """Where the task's tables live under the sweep directory ``out``."""
        if self.mechanism is None:
            return out / "markets" / self.scenario.name / f"seed={self.seed}"
        return out / "runs" / self.scenario.name / self.mechanism / f"seed={self.seed}"

    def fingerprint(self) -> str:
        """sha256 of what determines the task's tables (scenario, mechanism, seed, version).

        The scenario's lists of seeds and mechanisms, its description and file path are left
        out: a run depends on its own seed and mechanism only, so a grid can grow and reuse.
        """
        scenario = self.scenario.to_dict()
        for key in ("path", "description", "seeds", "mechanisms"):
            scenario.pop(key)
        key = {"scenario": scenario, "mechanism": self.mechanism, "seed": self.seed, "version": __version__,
               "inputs": input_fingerprint(self.scenario)}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

    def call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The function computing the task and its arguments (the runner's, unchanged)."""
        from market.core.runner import market_tables, run_one

        if self.mechanism is None:
            return market_tables, (self.scenario, [self.seed])
        return run_one, (self.scenario, self.mechanism, self.seed)


def input_fingerprint(scenario: Scenario) -> list[list[Any]]:
    """What the scenario's market is read from, so that a changed input reruns its tasks.

    A tabular market's tables by their sha256; a trace by each file of its folder under
    ``$MARKET_DATA_DIR`` (relative name, size, modification time: the traces run to
    gigabytes, and a file replaced in place gets a new time). A synthetic market reads
    nothing (its parameters are in the scenario).
    """
    source = scenario.market["source"]
    if source == "tabular":
        return [[str(scenario.market[k]), _sha256(Path(scenario.market[k]))] for k in ("requests", "resources")]
    from scenarios import alibaba_gpu, azure_llm, google2011

    folder = {"google2011": google2011.TRACE, "alibaba_gpu": alibaba_gpu.TRACE, "azure_llm": azure_llm.FOLDER}.get(source)
    if folder is None:
        return []
    root = google2011.data_dir() / folder
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    return [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


_HASHED: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """sha256 of a file, once per (path, size, modification time) in this process."""
    from market.core.io import sha256_file

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def load_sweep(path: str | Path, oracle: bool | None = None) -> Sweep:
    """Read and validate a sweep file; load its scenarios with the overrides applied.

    Args:
        path: the sweep file.
        oracle: if not None, overrides every scenario's ``oracle`` key (``--oracle`` /
            ``--no-oracle``); the tasks' fingerprints follow it, so a resumed sweep reruns
            what the change affects.

    Raises:
        MarketInputError: naming the file and key, on a bad key or value or scenario.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise MarketInputError(f"no such sweep file: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise MarketInputError(f"not valid TOML: {exc}", source=source) from None
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise MarketInputError(f"unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})", source=source)
    for key, typ in _KEYS.items():
        if key in raw and (not isinstance(raw[key], typ) or (typ is int and isinstance(raw[key], bool))):
            raise MarketInputError(f"key {key!r} must be {typ.__name__}, got {raw[key]!r}", source=source)
    entries = raw.get("scenarios")
    if not entries or not all(isinstance(e, str) for e in entries):
        raise MarketInputError(f"key 'scenarios' must be a non-empty list of scenario files or names, got {entries!r}", source=source)
    overrides = _overrides(raw, source)
    if oracle is not None:
        overrides["oracle"] = bool(oracle)
    scenarios = [_scenario(entry, path.parent, source).replace(**overrides) for entry in entries]
    names = [sc.name for sc in scenarios]
    for name in names:
        if not _SAFE_NAME.fullmatch(name):
            raise MarketInputError(f"key 'scenarios': scenario name {name!r} is not usable as a folder name", source=source)
        if names.count(name) > 1:
            raise MarketInputError(f"key 'scenarios': two scenarios are named {name!r}", source=source)
    return Sweep(raw.get("name", path.stem), scenarios, source, raw.get("description", ""))


def _overrides(raw: dict[str, Any], source: str) -> dict[str, Any]:
    from mechanisms import mechanism_class

    out: dict[str, Any] = {}
    if "mechanisms" in raw:
        mechs = raw["mechanisms"]
        if not mechs or not all(isinstance(m, str) for m in mechs) or len(set(mechs)) < len(mechs):
            raise MarketInputError(f"key 'mechanisms' must be a non-empty list of distinct names, got {mechs!r}", source=source)
        for m in mechs:
            try:
                mechanism_class(m)
            except MarketInputError as exc:
                raise MarketInputError(f"key 'mechanisms': {exc}", source=source) from None
            if not _SAFE_NAME.fullmatch(m):
                raise MarketInputError(f"key 'mechanisms': {m!r} is not usable as a folder name", source=source)
        out["mechanisms"] = list(mechs)
    if "seeds" in raw:
        seeds = raw["seeds"]
        ok = all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        if not seeds or not ok or len(set(seeds)) < len(seeds):
            raise MarketInputError(f"key 'seeds' must be a non-empty list of distinct non-negative integers, got {seeds!r}", source=source)
        out["seeds"] = list(seeds)
    if "rounds" in raw:
        from scenarios.config import ROUNDS_MAX

        if not 1 <= raw["rounds"] <= ROUNDS_MAX:
            raise MarketInputError(f"key 'rounds' must be in [1, {ROUNDS_MAX}], got {raw['rounds']}", source=source)
        out["rounds"] = raw["rounds"]
    if "oracle" in raw:
        out["oracle"] = raw["oracle"]
    return out


def _scenario(entry: str, base: Path, source: str) -> Scenario:
    """A scenario named in a sweep: a path relative to the sweep file, else a shipped name."""
    from scenarios.config import load

    local = base / entry
    if local.is_file():
        return load(local)
    if Path(entry).suffix or "/" in entry:
        raise MarketInputError(f"key 'scenarios': no such scenario file {entry!r} (relative to the sweep file)", source=source)
    return load(entry)


def verified(task: Task, out: Path) -> bool:
    """Whether ``task``'s persisted tables are complete, current and intact (sha256 recomputed)."""
    from market.core.io import sha256_file

    folder = task.folder(out)
    try:
        side = json.loads((folder / SIDECAR).read_text())
        files = side["sha256"]
        if side["fingerprint"] != task.fingerprint() or set(files) != {f"{t}.parquet" for t in task.tables}:
            return False
        return all(sha256_file(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def persist(task: Task, result: RunTables | tuple[pd.DataFrame, pd.DataFrame], out: Path) -> None:
    """Write one task's tables and sidecar atomically (the folder appears complete or not at all)."""
    from market.core.io import atomic_directory, sha256_file, write_json, write_table

    frames = dict(zip(MARKET_TABLES, result)) if task.mechanism is None else {
        t: getattr(result, t) for t in RUN_TABLES}
    with atomic_directory(task.folder(out), "run") as tmp:
        files = {}
        for name, df in frames.items():
            path = write_table(df, tmp / name, "parquet")
            files[path.name] = sha256_file(path)
        write_json({"task": task.label, "fingerprint": task.fingerprint(), "sha256": files}, tmp / SIDECAR)


def results_table(sweep: Sweep, out: Path) -> pd.DataFrame:
    """Every run's ``rounds`` from the persisted tables, in the fixed order, scenario first."""
    import pandas as pd

    from market.core.runner import RunTables, combine

    frames = []
    for sc in sweep.scenarios:
        parts = []
        for m in sc.mechanisms:
            for s in sc.seeds:
                folder = Task(sc, m, s).folder(out)
                parts.append(RunTables(*(pd.read_parquet(folder / f"{t}.parquet") for t in RUN_TABLES)))
        rounds = combine(parts, sc.mechanisms)["rounds"]
        frames.append(rounds.assign(scenario=sc.name)[["scenario", *rounds.columns]])
    return pd.concat(frames, ignore_index=True)


@contextmanager
def open_executor(kind: str = "local", address: str | None = None, workers: int | None = None) -> Iterator[Executor | None]:
    """The executor runs go to; None means "in this process" (local, one worker).

    Args:
        kind: ``"local"`` (a process pool) or ``"dask"`` (a Dask distributed cluster).
        address: the Dask scheduler, e.g. ``tcp://host:8786``; default ``DASK_SCHEDULER_ADDRESS``.
        workers: local processes (default: the number of CPUs).

    Raises:
        MarketInputError: on an unknown kind, a missing or unreachable Dask scheduler.
    """
    if kind not in EXECUTORS:
        raise MarketInputError(f"unknown executor {kind!r} (known: {', '.join(EXECUTORS)})")
    if kind == "local":
        if address:
            raise MarketInputError("--address needs --executor dask")
        n = (os.cpu_count() or 1) if workers is None else workers
        if n < 1:
            raise MarketInputError(f"--workers must be >= 1, got {n}")
        if n == 1:
            yield None
            return
        with local_pool(n) as pool:  # Ctrl-C or an error terminates the workers at once
            yield pool
        return
    if workers is not None:
        raise MarketInputError("--workers applies to --executor local (Dask workers are started with `dask worker`)")
    address = address or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if not address:
        raise MarketInputError("--executor dask needs --address tcp://HOST:8786 or DASK_SCHEDULER_ADDRESS")
    from distributed import Client

    try:
        client = Client(address)
    except (OSError, TimeoutError, ValueError) as exc:
        raise MarketInputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client.get_executor()
    finally:
        client.close()


def run_sweep(
    sweep: Sweep,
    out: Path,
    executor: Executor | None = None,
    progress: Callable[[Task], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the tasks of ``sweep`` not yet persisted under ``out``, then write the results.

    Args:
        sweep: the sweep.
        out: the sweep directory (created; kept between runs for resuming).
        executor: where tasks execute (None: in this process, one after another).
        progress: called with each task as it finishes and is persisted.
        on_start: called with (tasks to run, tasks reused) before anything runs.

    Returns:
        The manifest, plus ``tasks`` counts: ``total``, ``executed`` and ``reused``.
    """
    from market.core.io import check_output_directory, sha256_file, write_json, write_table
    from market.core.runner import package_versions

    start = time.perf_counter()
    out = check_output_directory(Path(out), SWEEP_MARKER)
    out.mkdir(parents=True, exist_ok=True)
    (out / SWEEP_MARKER).touch()
    for name in ("manifest.json", "results.parquet"):  # never leave results the grid may not match
        (out / name).unlink(missing_ok=True)
    tasks = sweep.tasks()
    todo = [t for t in tasks if not verified(t, out)]
    if on_start:
        on_start(len(todo), len(tasks) - len(todo))

    def finish(task: Task, result: Any) -> None:
        persist(task, result, out)
        if progress:
            progress(task)

    if executor is None:
        for task in todo:
            fn, args = task.call()
            finish(task, fn(*args))
    else:
        futures: dict[Future, Task] = {}
        try:
            for task in todo:
                fn, args = task.call()
                futures[executor.submit(fn, *args)] = task
            for fut in as_completed(futures):
                finish(futures.pop(fut), fut.result())
        finally:
            for fut in futures:
                fut.cancel()
    results = results_table(sweep, out)
    # results.parquet and its manifest as one step: a Ctrl-C meanwhile is taken after both
    with deferred():
        path = write_table(results, out / "results", "parquet")
        digest = sha256_file(path)
        manifest = {
            "sweep": {"name": sweep.name, "path": sweep.path, "description": sweep.description},
            "scenarios": {sc.name: sc.to_dict() for sc in sweep.scenarios},
            "grid": {sc.name: {"mechanisms": sc.mechanisms, "seeds": sc.seeds, "rounds": sc.rounds} for sc in sweep.scenarios},
            "runs": sum(t.mechanism is not None for t in tasks),
            "tasks": {"total": len(tasks), "executed": len(todo), "reused": len(tasks) - len(todo)},
            "results_rows": len(results),
            "versions": package_versions(),
            "wall_time_s": round(time.perf_counter() - start, 3),
            "sha256": {"tables": {path.name: digest}, "results": digest},
        }
        write_json(manifest, out / "manifest.json")
    return manifest
