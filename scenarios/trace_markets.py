"""Markets built from the Google 2011 trace (``[market] source = "google2011"``).

Two variants, chosen by ``market.variant``:

``mohaf``: the MOHAF paper's instance (:mod:`market.studies.paper`) in the corrected model. The
3,553 requests are the first 2,500 SUBMIT rows of job_events parts 0 and 1; demand
``d = scheduling_class / 3`` (cpu only; ``zero_demand = "floor"`` lifts class 0 to
``demand_floor`` = 0.05, ``"drop"`` removes it), priority 8 (``p_max`` = 10), budget
``budget_scale * (20 d + 5 p)`` (from the unfloored ``d``), a uniform location. There
are ``N // 4`` = 888 synthetic resources drawn as the paper's code draws them (capacity U(0.5, 1), unit cost
U(0.3, 0.8), location U(-100, 100)^2, availability and reliability U(0.95, 1), energy
U(0.6, 0.9), owner ``j mod 50``) from the seed's generator; their memory is 1 and
requests need none, so only cpu binds. With ``reauction = true`` (default) the whole
instance arrives again in every round (request ids ``round * N + i``): each round
re-auctions it with the allocation reset while prices carry over. The copies cover the
scenario's horizon, or the rounds played if more: the instance is the same in every
round, so a run of any length plays the first rounds of the same market.

``real``: an honest trace-driven market. Requests are tasks (``unit = "task"``,
the first SUBMIT of each ``(job_id, task_index)`` in task_events parts 0 and 1) or jobs
(``unit = "job"``: a job's tasks summed) that are submitted in the window
``[start_seconds, start_seconds + horizon * step_seconds)`` (the scenario's horizon:
its file's ``rounds`` unless it sets ``horizon``, whatever rounds a run plays) and
arrive in the round of their real timestamp; a seeded ``sample`` share of them is kept
(independent thinning, which keeps the arrival profile). cpu and memory are the real
requests, priority the real priority (``p_max`` = 11), budget
``budget_scale * (20 cpu + 5 p / 11)``, duration the real run time (first
FAIL/FINISH/KILL/LOST after the first SCHEDULE, else after SUBMIT) in rounds, rounded up;
tasks still running at the end of the loaded trace hold their machine until the
horizon's last round. Trace sentinel times (:mod:`scenarios.google2011`): an event at
``2**63 - 1`` is after the trace, so a task whose end (or schedule) is only there is open-ended
like a task still running, a task submitted there is in no window, and the trace end that
bounds the window is the last real event time; an event at 0 (before the trace) is placed
at the trace start, so a task submitted at 0 arrives in round 0 of a window starting at
0 s and in no later window, and a task that ended at 0 (before the trace) is no request.
Tasks without a cpu request (the field empty, or 0) are dropped (``zero_demand = "drop"``) or lifted to
``demand_floor``; an empty memory request is read as 0; a task whose priority field is
empty is dropped (before thinning). A negative or non-finite request, or a priority outside
0..11, is not a rule but a bad field: the read stops with one line naming the trace file,
its line and the field (:func:`scenarios.google2011.read_events`). :func:`dropped_records` gives these counts for a
scenario's window (seed-independent). A job's tasks share one
location. Resources are machines alive at ``start_seconds`` (replay of machine_events)
with their real (cpu, memory) capacity, a seeded sample stratified by capacity class,
sized so that the cpu demand held per round is ``load`` times the sampled capacity
(or ``machines`` of them); cost, location, reliability, availability and energy are
drawn as for ``mohaf``, the owner is the machine's platform.

Everything random comes from the generator passed in (one per seed); the trace tables
are read once per process and cached.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.errors import MarketInputError
from scenarios import google2011
from scenarios.config import Scenario
from scenarios.tables import MarketData, validate

VARIANTS = ("mohaf", "real")
#: the paper's constant priority and the budget rule ``B = 20 d + 5 p``
PAPER_PRIORITY = 8.0
TRACE_PRIORITY_MAX = 11.0
#: resource attribute distributions of the paper's code, in the authors' draw order
RESOURCE_DRAWS = (
    ("cpu", 0.5, 1.0), ("unit_cost", 0.3, 0.8), ("x", -100.0, 100.0), ("y", -100.0, 100.0),
    ("availability", 0.95, 1.0), ("reliability", 0.95, 1.0), ("energy_efficiency", 0.6, 0.9),
)
#: keys of ``[market]`` per variant, with defaults
DEFAULTS: dict[str, dict[str, Any]] = {
    "mohaf": {"zero_demand": "floor", "demand_floor": 0.05, "budget_scale": 1.0, "reauction": True},
    "real": {
        "unit": "task", "start_seconds": 600, "step_seconds": 300, "sample": 0.05, "load": 1.3,
        "machines": 0, "budget_scale": 1.0, "zero_demand": "drop", "demand_floor": 0.05,
    },
}
US = 1_000_000
TASK_PARTS = (0, 1)


def class_demand(scheduling_class: np.ndarray) -> np.ndarray:
    """The paper's demand ``d = scheduling_class / 3`` (0.3 where the class is missing)."""
    sc = np.asarray(scheduling_class, dtype=float)
    return np.where(np.isnan(sc), 0.3, sc / 3.0)


def paper_budget(demand: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """The paper's budget ``B = 20 d + 5 p``."""
    return demand * 20 + priority * 5


def _options(scenario: Scenario) -> dict[str, Any]:
    """The ``[market]`` table with defaults, every key checked (errors name the file)."""
    given = dict(scenario.source_params())
    given.pop("source", None)
    variant = given.pop("variant", "mohaf")
    if variant not in VARIANTS:
        raise MarketInputError(f"key 'market.variant' must be one of {', '.join(VARIANTS)}, got {variant!r}", source=scenario.path)
    spec = DEFAULTS[variant]
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise MarketInputError(
            f"unknown key market.{unknown[0]} for google2011 variant {variant!r} (known: variant, {', '.join(spec)})",
            source=scenario.path,
        )
    out = {"variant": variant, **spec}
    for key, value in given.items():
        default = spec[key]
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool))
        if isinstance(default, int | float) and not isinstance(default, bool) and isinstance(value, bool):
            ok = False
        if not ok:
            raise MarketInputError(f"key 'market.{key}' must be {type(default).__name__}, got {value!r}", source=scenario.path)
        out[key] = value
    _check_ranges(out, scenario.path)
    return out


def _check_ranges(opt: dict[str, Any], source: str) -> None:
    def bad(key: str, want: str) -> MarketInputError:
        return MarketInputError(f"key 'market.{key}' must be {want}, got {opt[key]!r}", source=source)

    if opt["zero_demand"] not in ("floor", "drop"):
        raise bad("zero_demand", "'floor' or 'drop'")
    if not opt["demand_floor"] > 0:
        raise bad("demand_floor", "> 0")
    if not opt["budget_scale"] > 0:
        raise bad("budget_scale", "> 0")
    if opt["variant"] == "real":
        if opt["unit"] not in ("task", "job"):
            raise bad("unit", "'task' or 'job'")
        if opt["start_seconds"] < 0:
            raise bad("start_seconds", ">= 0")
        if opt["step_seconds"] < 1:
            raise bad("step_seconds", ">= 1")
        if not 0 < opt["sample"] <= 1:
            raise bad("sample", "in (0, 1]")
        if not opt["load"] > 0:
            raise bad("load", "> 0")
        if opt["machines"] < 0:
            raise bad("machines", ">= 0 (0 = sized by load)")


def build(scenario: Scenario, rng: np.random.Generator) -> MarketData:
    """The market of ``scenario`` for one seed's generator.

    Raises:
        MarketInputError: on a bad ``[market]`` key or a missing trace file.
    """
    opt = _options(scenario)
    if opt["variant"] == "mohaf":
        req, res, pmax = _mohaf(opt, max(scenario.horizon, scenario.rounds), rng)
    else:
        req, res, pmax = _real(opt, scenario.horizon, rng, scenario.path)
    return MarketData(
        validate(req, "requests", "google2011 requests"), validate(res, "resources", "google2011 resources"),
        priority_max=pmax,
    )


# --- variant mohaf -----------------------------------------------------------------


def _draw_resources(m: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The paper's resource attributes for ``m`` resources (one ``(m, 7)`` block, draw order)."""
    lo = np.array([d[1] for d in RESOURCE_DRAWS])
    hi = np.array([d[2] for d in RESOURCE_DRAWS])
    block = rng.uniform(lo, hi, size=(m, len(RESOURCE_DRAWS)))
    return {name: block[:, k] for k, (name, _, _) in enumerate(RESOURCE_DRAWS)}


def _mohaf(opt: dict[str, Any], rounds: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    jobs = google2011.mohaf_jobs()
    n = len(jobs)
    m = n // 4
    attrs = _draw_resources(m, rng)
    resources = pd.DataFrame({
        "resource_id": np.arange(m), "cpu": attrs["cpu"], "mem": np.ones(m), "unit_cost": attrs["unit_cost"],
        "reliability": attrs["reliability"], "availability": attrs["availability"],
        "energy_efficiency": attrs["energy_efficiency"], "x": attrs["x"], "y": attrs["y"],
        "owner_id": np.arange(m) % 50,
    })
    xy = rng.uniform(-100.0, 100.0, size=(n, 2))
    demand = class_demand(jobs["scheduling_class"].to_numpy())
    priority = np.full(n, PAPER_PRIORITY)
    users, _ = pd.factorize(jobs["user"], sort=False)
    base = pd.DataFrame({
        "request_id": np.arange(n), "user_id": users.astype(np.int64), "round": 0,
        "cpu": np.maximum(demand, opt["demand_floor"]) if opt["zero_demand"] == "floor" else demand,
        "mem": 0.0, "budget": opt["budget_scale"] * paper_budget(demand, priority), "priority": priority,
        "x": xy[:, 0], "y": xy[:, 1], "duration": 1,
        "job_id": jobs["job_id"].to_numpy(), "scheduling_class": jobs["scheduling_class"].to_numpy(),
    })
    if opt["zero_demand"] == "drop":
        base = base[demand > 0]
    if opt["reauction"]:
        copies = [base.assign(request_id=base["request_id"] + r * n, round=r) for r in range(rounds)]
        base = pd.concat(copies, ignore_index=True)
    return base.reset_index(drop=True), resources, 10.0


# --- variant real --------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _task_table(root: str) -> pd.DataFrame:
    """Per task of task_events parts 0-1: first submit, schedule and end (us), requests.

    Events at the sentinel ``2**63 - 1`` (after the trace) are not events of the loaded
    trace: a task whose end is only there has no end (``ended`` NaN, open-ended); one
    submitted only there is not a task of the trace. ``attrs["trace_end"]`` is the last real
    event time.
    """
    cols = ["timestamp", "job_id", "task_index", "event_type", "user", "priority", "cpu_request", "memory_request"]
    ev = google2011.read_events("task_events", TASK_PARTS, columns=cols, root=Path(root))
    end_us = google2011.trace_end(ev["timestamp"])
    ev = ev[ev["timestamp"] != google2011.AFTER_TRACE]
    key = ["job_id", "task_index"]
    submits = ev[ev["event_type"] == google2011.SUBMIT].drop_duplicates(key)  # first SUBMIT (time order)
    sched = ev[ev["event_type"] == google2011.SCHEDULE].groupby(key, sort=False)["timestamp"].min().rename("scheduled")
    ends = ev[ev["event_type"].isin(google2011.TERMINAL)].groupby(key, sort=False)["timestamp"].min().rename("ended")
    tasks = submits.join(sched, on=key).join(ends, on=key)
    tasks = tasks.drop(columns=["event_type", "part"]).rename(columns={"timestamp": "submitted"})
    tasks = tasks.reset_index(drop=True)
    tasks.attrs["trace_end"] = end_us
    return tasks


@functools.lru_cache(maxsize=4)
def _machine_table(root: str, t_us: int) -> pd.DataFrame:
    return google2011.machines_at(t_us, Path(root))


#: keys of :func:`dropped_records`
DROP_KEYS = ("empty_priority", "ended_before_trace", "empty_cpu", "empty_mem")


def _window_tasks(opt: dict[str, Any], rounds: int, source: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The tasks submitted in the window, after the record rules, and the rule counts."""
    tasks = _task_table(str(google2011.data_dir()))
    start = int(opt["start_seconds"]) * US
    step = int(opt["step_seconds"]) * US
    stop = start + rounds * step
    trace_end = tasks.attrs["trace_end"]
    if stop > trace_end + step:
        raise MarketInputError(
            f"the window {opt['start_seconds']} s + {rounds} rounds x {opt['step_seconds']} s ends after the loaded "
            f"task_events parts ({trace_end / US:.0f} s); lower horizon (default: rounds), step_seconds or start_seconds",
            source=source,
        )
    t = tasks[(tasks["submitted"] >= start) & (tasks["submitted"] < stop)]
    no_priority = t["priority"].isna().to_numpy()
    before = (t["ended"] == google2011.BEFORE_TRACE).to_numpy()
    counts = {
        "empty_priority": int(no_priority.sum()),
        "ended_before_trace": int((before & ~no_priority).sum()),
    }
    t = t[~no_priority & ~before]
    counts["empty_cpu"] = int(t["cpu_request"].isna().sum())
    counts["empty_mem"] = int(t["memory_request"].isna().sum())
    return t, counts


def dropped_records(scenario: Scenario) -> dict[str, int]:
    """Counts of the record rules in the window of a ``real`` scenario (empty for ``mohaf``).

    ``empty_priority``: tasks dropped for an empty priority field; ``ended_before_trace``:
    tasks dropped because they ended at 0 (before the trace); ``empty_cpu``: tasks left
    with an empty cpu request (then dropped or floored by ``zero_demand``, after thinning);
    ``empty_mem``: tasks whose empty memory request is read as 0. Counted over every task
    submitted in the window, before thinning, so the same for every seed.
    """
    opt = _options(scenario)
    if opt["variant"] != "real":
        return {}
    return _window_tasks(opt, scenario.horizon, scenario.path)[1]


def _requests_real(opt: dict[str, Any], rounds: int, rng: np.random.Generator, source: str) -> pd.DataFrame:
    start = int(opt["start_seconds"]) * US
    step = int(opt["step_seconds"]) * US
    t, _ = _window_tasks(opt, rounds, source)
    began = t["scheduled"].where(t["scheduled"].notna(), t["submitted"]).to_numpy(dtype=float)
    end = t["ended"].to_numpy(dtype=float)
    end = np.where(end >= began, end, np.nan)
    frame = pd.DataFrame({
        "job_id": t["job_id"].to_numpy(), "task_index": t["task_index"].to_numpy(), "user": t["user"].to_numpy(),
        "submitted": t["submitted"].to_numpy(), "priority": t["priority"].to_numpy(dtype=float),
        "cpu": t["cpu_request"].to_numpy(dtype=float), "mem": np.nan_to_num(t["memory_request"].to_numpy(dtype=float)),
        "run_us": end - began,
    })
    if opt["unit"] == "job":
        open_task = frame["run_us"].isna()
        frame = frame.assign(run_us=frame["run_us"].where(~open_task, np.inf))
        frame = frame.groupby("job_id", sort=False).agg(
            user=("user", "first"), submitted=("submitted", "min"), priority=("priority", "first"),
            cpu=("cpu", lambda s: s.sum(min_count=1)), mem=("mem", "sum"), run_us=("run_us", "max"),
        ).reset_index()
        frame = frame.assign(task_index=-1, run_us=frame["run_us"].replace(np.inf, np.nan))
    frame = frame.sort_values(["submitted", "job_id", "task_index"], kind="stable").reset_index(drop=True)
    # thinning first (one draw per candidate row, in a fixed order), then the demand rule
    keep = rng.random(len(frame)) < float(opt["sample"])
    frame = frame[keep]
    empty = ~(frame["cpu"].to_numpy() > 0)
    if opt["zero_demand"] == "drop":
        frame = frame[~empty]
    else:
        frame = frame.assign(cpu=np.where(empty, opt["demand_floor"], frame["cpu"].to_numpy()))
    frame = frame.reset_index(drop=True)
    n = len(frame)
    arrival = ((frame["submitted"].to_numpy() - start) // step).astype(np.int64)
    run_rounds = np.ceil(frame["run_us"].to_numpy() / step)
    open_ended = np.isnan(run_rounds)
    duration = np.where(open_ended, rounds - arrival, np.maximum(1, np.nan_to_num(run_rounds))).astype(np.int64)
    jobs, job_code = np.unique(frame["job_id"].to_numpy(), return_inverse=True)
    job_xy = rng.uniform(-100.0, 100.0, size=(jobs.size, 2))
    users, _ = pd.factorize(frame["user"], sort=False)
    priority = frame["priority"].to_numpy()
    cpu = frame["cpu"].to_numpy()
    return pd.DataFrame({
        "request_id": np.arange(n), "user_id": users.astype(np.int64), "round": arrival, "cpu": cpu,
        "mem": frame["mem"].to_numpy(), "budget": opt["budget_scale"] * (20 * cpu + 5 * priority / TRACE_PRIORITY_MAX),
        "priority": priority, "x": job_xy[job_code, 0], "y": job_xy[job_code, 1], "duration": np.maximum(duration, 1),
        "job_id": frame["job_id"].to_numpy(), "task_index": frame["task_index"].to_numpy(),
        "submitted_s": frame["submitted"].to_numpy() / US, "open_ended": open_ended,
    })


def stratified_sample(classes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a sample of ``size`` rows, stratified by ``classes`` (largest remainder).

    Each class gets ``size * share`` rows rounded so the total is exact (remainders in
    descending order, ties by class order), drawn without replacement; returned sorted.
    """
    labels, code = np.unique(classes, return_inverse=True)
    counts = np.bincount(code, minlength=labels.size)
    quota = size * counts / counts.sum()
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: size - int(take.sum())]] += 1
    picked = [rng.choice(np.flatnonzero(code == c), size=int(k), replace=False) for c, k in enumerate(take) if k > 0]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def _resources_real(opt: dict[str, Any], requests: pd.DataFrame, rounds: int, rng: np.random.Generator) -> pd.DataFrame:
    machines = _machine_table(str(google2011.data_dir()), int(opt["start_seconds"]) * US)
    if machines.empty:
        path = google2011.find_part("machine_events", 0)
        raise MarketInputError(f"no machine with a capacity is alive at market.start_seconds = {opt['start_seconds']}",
                               source=str(path))
    held = float((requests["cpu"] * requests["duration"]).sum()) / rounds
    size = int(opt["machines"]) or max(1, math.ceil(held / float(opt["load"]) / float(machines["cpu"].mean())))
    size = min(size, len(machines))
    classes = (machines["cpu"].astype(str) + "/" + machines["mem"].astype(str)).to_numpy()
    chosen = machines.iloc[stratified_sample(classes, size, rng)].reset_index(drop=True)
    attrs = _draw_resources(size, rng)
    platforms, _ = pd.factorize(chosen["platform_id"], sort=True)
    return pd.DataFrame({
        "resource_id": chosen["machine_id"].to_numpy(), "cpu": chosen["cpu"].to_numpy(), "mem": chosen["mem"].to_numpy(),
        "unit_cost": attrs["unit_cost"], "reliability": attrs["reliability"], "availability": attrs["availability"],
        "energy_efficiency": attrs["energy_efficiency"], "x": attrs["x"], "y": attrs["y"],
        "owner_id": platforms.astype(np.int64),
    })


def _real(opt: dict[str, Any], rounds: int, rng: np.random.Generator, source: str) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    requests = _requests_real(opt, rounds, rng, source)
    if requests.empty:
        raise MarketInputError("the trace window holds no requests; widen it or raise market.sample", source=source)
    return requests, _resources_real(opt, requests, rounds, rng), TRACE_PRIORITY_MAX
