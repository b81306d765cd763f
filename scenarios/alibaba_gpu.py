"""A GPU market from the Alibaba GPU cluster trace (``[market] source = "alibaba_gpu"``).

Files: ``$MARKET_DATA_DIR/alibaba-gpu-2023/openb_node_list_gpu_node.csv`` (nodes: ``sn,
cpu_milli, memory_mib, gpu, model``) and ``openb_pod_list_gpuspec33.csv`` (pods: ``name,
cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, qos, pod_phase, creation_time,
deletion_time, scheduled_time``), as published (``market data fetch alibaba-gpu-2023``).

**Dimensions** ``("cpu", "mem", "gpu")``: cpu in cores (``cpu_milli / 1000``), memory in
GiB (``memory_mib / 1024``), gpu in GPUs: ``num_gpu`` whole GPUs, except that a pod with
``num_gpu == 1`` asks for the fraction ``gpu_milli / 1000`` of one GPU (GPU sharing:
``gpu_milli = 460`` is ``gpu = 0.46``); ``num_gpu = 0`` is a CPU-only pod (``gpu = 0``).
``gpu_milli`` is read only when ``num_gpu == 1`` (there it must be in 1..1000).

**Requests** are the pods created in the window ``[start_seconds, start_seconds +
horizon * step_seconds)`` (the scenario's horizon: its ``rounds`` unless it sets
``horizon``); a pod arrives in round ``floor((creation_time - start_seconds) /
step_seconds)`` and holds its resource for its lifetime ``deletion_time - creation_time``
in rounds, rounded up, at least 1. ``request_id`` is the pod's name (``openb-pod-0005``,
kept exactly); ``allowed_types`` its ``gpu_spec`` (``V100M16|V100M32``; empty = any node).
Pods of every phase are requests (a Pending pod was demand the cluster did not serve).
Priority by QoS class: ``LS`` (latency sensitive) and ``Guaranteed`` 3, ``Burstable``
2, ``BE`` (best effort) 1; ``p_max = 3``.

**Users.** The trace has no tenant. So that fairness across users means something, the
window's pods are split into ``users`` tenants by a seeded, balanced random split
(``user_id`` 0..users-1; tenant sizes differ by at most one). Tenants are therefore
synthetic and so is any per-user result.

**Budgets** (money of the engine's posted prices, ``unit_cost * q * duration`` with ``q
= sum_d price_weights[d] * demand_d``): ``budget = budget_scale * value[qos] * u * max(q,
0.01) * duration`` with ``value`` = LS and Guaranteed 2.0, Burstable 1.2, BE 0.8 per
priced unit and round, ``u ~ U(0.75, 1.25)`` a seeded per-pod draw, and ``q`` from the
scenario's ``[market] price_weights`` (default :data:`DEFAULT_PRICE_WEIGHTS`; a
dimension it leaves out weighs 0 here). Node unit costs are U(0.3, 0.8), so a BE pod
affords a node at its base price but is priced out when prices rise; LS pods afford up to
1.5 per unit (price upper bound: twice the highest unit cost).

**Resources** are nodes: a seeded sample stratified by GPU ``model`` (largest remainder,
:func:`scenarios.trace_markets.stratified_sample`), sized so that the GPU demand held per
round over the window (each request's gpu times its rounds inside the window, divided by
the horizon) is ``load`` times the sampled GPU capacity (by cpu if no pod asks for a GPU),
or exactly ``machines`` nodes. ``resource_id`` is the node's ``sn``
(``openb-node-0000``), ``resource_type`` its ``model``; capacity cpu/mem/gpu in the units
above. A node with ``gpu = 0`` and an empty model (CPU-only) is an untyped resource with
gpu capacity 0; an empty model with ``gpu > 0`` is an untyped GPU node. The owner is the
node's model (codes in sorted order). The trace has no location, cost or reliability, so
``x, y`` U(-100, 100), ``unit_cost`` U(0.3, 0.8), ``availability`` and ``reliability``
U(0.95, 1) and ``energy_efficiency`` U(0.6, 0.9) are synthetic seeded draws (the
distributions of :mod:`scenarios.trace_markets`); so are each pod's ``x, y``.

**Record rules** (:func:`dropped_records`, the same for every seed): a pod whose
``deletion_time`` is before its ``creation_time`` is dropped (``deletion_before_creation``);
a pod with an empty ``deletion_time`` is still running and holds its node to the end of
the window (``no_deletion``, kept). Pods whose ``gpu_spec`` names no model among the
sampled nodes are kept (no mechanism can serve them) and counted (``unservable_spec``):
the same for every seed, since the sample's count per model depends only on its size,
which the (seed-independent) demand fixes. Any other empty required field, a value that is not a number,
a negative one, one of 2**53 or more, a non-whole GPU count, an unknown QoS class, a duplicate name or an
empty type in ``gpu_spec`` stops the read with one line naming the file, its line and
the field; so does a file with a header row only (no nodes, no pods). No NaN reaches the tables.

``[market]`` keys (defaults in :data:`DEFAULTS`): ``start_seconds`` (10,368,000: trace
day 120; pods are created from day 115.6 to day 149.3 of the trace, plus one at 0),
``step_seconds`` (seconds per round, 28,800: 8 h), ``users`` (20), ``load`` (1.3),
``machines`` (0 = sized by ``load``), ``budget_scale`` (1.0), ``price_weights`` (a
table), ``dimensions`` (must be ``["cpu", "mem", "gpu"]`` if given).

Data: Alibaba cluster-trace-gpu-v2023, released by Alibaba Group for research and study
use. Q. Weng, L. Yang, Y. Yu, W. Wang, X. Tang, G. Yang, L. Zhang, "Beware of
Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
USENIX ATC 2023.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.errors import MarketInputError
from scenarios.config import Scenario
from scenarios.file_lines import file_line
from scenarios.google2011 import data_dir
from scenarios.tables import TYPE_SEPARATOR, MarketData, validate
from scenarios.trace_markets import stratified_sample

TRACE = "alibaba-gpu-2023"
NODE_FILE = "openb_node_list_gpu_node.csv"
POD_FILE = "openb_pod_list_gpuspec33.csv"
FETCH_HINT = "run: market data fetch alibaba-gpu-2023"
#: sha256 of each file as published (plain CSV)
CONTENT_SHA256: dict[str, str] = {
    NODE_FILE: "2beca64b4d3dfa342036a34b56a495c6cef9225db836c81f541282cb1df320b5",
    POD_FILE: "eca4f746db1e5b25864ad021b55ece3943e101a3ebd4574d09dcb95c46117652",
}
DIMENSIONS = ("cpu", "mem", "gpu")
DEFAULT_PRICE_WEIGHTS = {"cpu": 0.05, "mem": 0.005, "gpu": 1.0}
#: ``[market]`` keys and their defaults (``source``, ``dimensions``, ``price_weights`` besides)
DEFAULTS: dict[str, Any] = {
    "start_seconds": 10_368_000, "step_seconds": 28_800, "users": 20, "load": 1.3, "machines": 0, "budget_scale": 1.0,
}
#: priority of each QoS class (``p_max`` = 3) and its budget per priced unit and round
QOS_PRIORITY = {"LS": 3, "Guaranteed": 3, "Burstable": 2, "BE": 1}
QOS_VALUE = {"LS": 2.0, "Guaranteed": 2.0, "Burstable": 1.2, "BE": 0.8}
PRIORITY_MAX = 3.0
#: columns each file must have, and the numeric ones (``(column, whole number?, may be empty?)``)
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
NODE_NUMBERS = (("cpu_milli", False, False), ("memory_mib", False, False), ("gpu", True, False))
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos", "creation_time", "deletion_time")
POD_NUMBERS = (
    ("cpu_milli", False, False), ("memory_mib", False, False), ("num_gpu", True, False), ("gpu_milli", False, False),
    ("creation_time", False, False), ("deletion_time", False, True),
)
#: every numeric field is below this (a time, size or count beyond it is no trace value; the
#: rounds and durations it makes would not fit the tables' whole numbers)
FIELD_MAX = 2**53
#: keys of :func:`dropped_records`
DROP_KEYS = ("deletion_before_creation", "no_deletion", "unservable_spec")


# --- reading the files -----------------------------------------------------------------


def trace_path(name: str, root: Path | None = None) -> Path:
    """The local path of one trace file (``$MARKET_DATA_DIR/alibaba-gpu-2023/<name>``).

    Raises:
        MarketInputError: one line naming the missing file and how to fetch it.
    """
    path = (data_dir() if root is None else Path(root)) / TRACE / name
    if not path.is_file():
        raise MarketInputError(f"missing trace file {path} ({FETCH_HINT})")
    return path


def _fail(path: Path, row: int, text: str) -> MarketInputError:
    """One line naming the file and the file line of data row ``row`` (the header is line 1)."""
    return MarketInputError(f"line {file_line(path, row)}: {text}", source=str(path))


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, _stamp: tuple[int, int], columns: tuple[str, ...],
                 numbers: tuple[tuple[str, bool, bool], ...]) -> pd.DataFrame:
    p = Path(path)
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, engine="c")
    except Exception as exc:  # parse errors of many kinds: the user needs one line
        raise MarketInputError(f"cannot read trace file: {' '.join(str(exc).split())}", source=path) from None
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise MarketInputError(f"line 1: missing column(s) {', '.join(missing)}", source=path)
    out = raw.apply(lambda s: s.str.strip())
    problems: list[tuple[int, str]] = []  # (row, message): the first row wins, then column order
    for col, whole, may_be_empty in numbers:
        text = out[col]
        empty = (text == "").to_numpy()
        values = pd.to_numeric(text.where(~empty), errors="coerce").to_numpy(dtype=float)
        checks = [
            (empty & ~may_be_empty, "is empty"),
            (~empty & ~np.isfinite(values), "is not a number: {value!r}"),
            (~empty & np.isfinite(values) & (values < 0), "must be >= 0, got {value!r}"),
            # beyond 2**53 a number is no trace value, and the rounds and durations it makes wrap
            (~empty & np.isfinite(values) & (values >= FIELD_MAX), "must be below 2**53, got {value!r}"),
        ]
        if whole:
            checks.append((np.isfinite(values) & (values != np.round(values)), "must be a whole number, got {value!r}"))
        for mask, message in checks:
            if mask.any():
                row = int(np.flatnonzero(mask)[0])
                problems.append((row, f"field {col!r} " + message.format(value=text.iat[row])))
        out[col] = values  # NaN only where the field may be empty and is
    if problems:
        row, message = min(problems, key=lambda p: p[0])
        raise _fail(p, row, message)
    return out


def read_trace_file(name: str, root: Path | None = None) -> pd.DataFrame:
    """One trace file, every field stripped, numeric fields as floats (checked).

    Numeric fields must be present (``deletion_time`` may be empty: NaN), numbers, >= 0
    and, for GPU counts, whole. The result is cached per file version (path, mtime, size).

    Raises:
        MarketInputError: one line naming the file, its line and the field; or the file
            if it holds no rows (a header only).
    """
    path = trace_path(name, root)
    columns, numbers = (NODE_COLUMNS, NODE_NUMBERS) if name == NODE_FILE else (POD_COLUMNS, POD_NUMBERS)
    st = path.stat()
    table = _read_cached(str(path), (st.st_mtime_ns, st.st_size), columns, numbers)
    if table.empty:
        what = "nodes" if name == NODE_FILE else "pods"
        raise MarketInputError(f"no {what}: the file holds a header row only ({FETCH_HINT})", source=str(path))
    return table.copy()


def _duplicates(path: Path, ids: pd.Series, field: str) -> None:
    empty = (ids == "").to_numpy()
    if empty.any():
        raise _fail(path, int(np.flatnonzero(empty)[0]), f"field {field!r} is empty")
    dup = ids.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise _fail(path, row, f"field {field!r}: {ids.iat[row]!r} is a duplicate")


def nodes(root: Path | None = None) -> pd.DataFrame:
    """The node file as ``resource_id, cpu, mem, gpu, model`` (file order; units above).

    Raises:
        MarketInputError: on a missing file, a bad field, a duplicate or empty ``sn``,
            or a node without cpu or memory.
    """
    path = trace_path(NODE_FILE, root)
    raw = read_trace_file(NODE_FILE, root)
    _duplicates(path, raw["sn"], "sn")
    for col in ("cpu_milli", "memory_mib"):
        zero = (raw[col] <= 0).to_numpy()
        if zero.any():
            raise _fail(path, int(np.flatnonzero(zero)[0]), f"field {col!r} must be > 0 (every node has it), got 0")
    return pd.DataFrame({
        "resource_id": raw["sn"].astype(str), "cpu": raw["cpu_milli"] / 1000.0, "mem": raw["memory_mib"] / 1024.0,
        "gpu": raw["gpu"].astype(float), "model": raw["model"].astype(str),
    })


def pods(root: Path | None = None) -> pd.DataFrame:
    """The pod file as requests-to-be: ``name, cpu, mem, gpu, gpu_spec, qos, phase, created, deleted`` (file order).

    ``deleted`` is NaN where the field is empty (still running).

    Raises:
        MarketInputError: on a missing file or a bad field (one line: file, line, field).
    """
    path = trace_path(POD_FILE, root)
    raw = read_trace_file(POD_FILE, root)
    _duplicates(path, raw["name"], "name")
    qos = raw["qos"]
    bad = ~qos.isin(list(QOS_PRIORITY)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "is empty" if qos.iat[row] == "" else f"is {qos.iat[row]!r}, not one of {', '.join(QOS_PRIORITY)}"
        raise _fail(path, row, f"field 'qos' {what}")
    spec = raw["gpu_spec"]
    gap = spec.map(lambda v: v != "" and "" in [t.strip() for t in v.split(TYPE_SEPARATOR)]).to_numpy(dtype=bool)
    if gap.any():
        row = int(np.flatnonzero(gap)[0])
        raise _fail(path, row, f"field 'gpu_spec' has an empty model in {spec.iat[row]!r} (models are separated by '|')")
    spec = spec.map(lambda v: TYPE_SEPARATOR.join(t.strip() for t in v.split(TYPE_SEPARATOR)) if v else v)
    num_gpu = raw["num_gpu"].to_numpy(dtype=float)
    milli = raw["gpu_milli"].to_numpy(dtype=float)
    shared = num_gpu == 1
    bad = shared & ~((milli > 0) & (milli <= 1000))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _fail(path, row, f"field 'gpu_milli' must be in 1..1000 for a pod with num_gpu 1, got {raw['gpu_milli'].iat[row]!r}")
    return pd.DataFrame({
        "name": raw["name"].astype(str), "cpu": raw["cpu_milli"] / 1000.0, "mem": raw["memory_mib"] / 1024.0,
        "gpu": np.where(shared, milli / 1000.0, num_gpu), "gpu_spec": spec.astype(str), "qos": qos.astype(str),
        "phase": raw["pod_phase"].astype(str) if "pod_phase" in raw.columns else "",
        "created": raw["creation_time"].astype(float), "deleted": raw["deletion_time"].astype(float),
    })


# --- options ---------------------------------------------------------------------------


def _options(scenario: Scenario) -> dict[str, Any]:
    """The ``[market]`` table with defaults, every key checked (errors name the file and key)."""
    src = scenario.path or None
    given = dict(scenario.market)
    given.pop("source", None)
    dims = given.pop("dimensions", list(DIMENSIONS))
    if not isinstance(dims, list | tuple) or tuple(dims) != DIMENSIONS:
        raise MarketInputError(f"key 'market.dimensions' must be {list(DIMENSIONS)} for source 'alibaba_gpu', got {dims!r}",
                               source=src)
    weights = given.pop("price_weights", DEFAULT_PRICE_WEIGHTS)
    if not isinstance(weights, dict):
        raise MarketInputError(f"key 'market.price_weights' must be a table of dimension = weight, got {weights!r}", source=src)
    for d, w in weights.items():
        if d not in DIMENSIONS:
            raise MarketInputError(f"key 'market.price_weights': {d!r} is not a dimension ({', '.join(DIMENSIONS)})", source=src)
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise MarketInputError(f"key 'market.price_weights.{d}' must be a number >= 0, got {w!r}", source=src)
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        known = ", ".join(["source", "dimensions", "price_weights", *DEFAULTS])
        raise MarketInputError(f"unknown key market.{unknown[0]} for source 'alibaba_gpu' (known: {known})", source=src)
    out: dict[str, Any] = {**DEFAULTS, "price_weights": {d: float(weights.get(d, 0.0)) for d in DIMENSIONS}}
    for key, value in given.items():
        default = DEFAULTS[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(default, int) and not isinstance(value, int)):
            raise MarketInputError(f"key 'market.{key}' must be {type(default).__name__}, got {value!r}", source=src)
        out[key] = value

    def bad(key: str, want: str) -> MarketInputError:
        return MarketInputError(f"key 'market.{key}' must be {want}, got {out[key]!r}", source=src)

    if out["start_seconds"] < 0:
        raise bad("start_seconds", ">= 0")
    if out["step_seconds"] < 1:
        raise bad("step_seconds", ">= 1")
    if out["users"] < 1:
        raise bad("users", ">= 1")
    if not (math.isfinite(out["load"]) and out["load"] > 0):
        raise bad("load", "> 0")
    if out["machines"] < 0:
        raise bad("machines", ">= 0 (0 = sized by load)")
    if not (math.isfinite(out["budget_scale"]) and out["budget_scale"] > 0):
        raise bad("budget_scale", "> 0")
    return out


# --- the market ------------------------------------------------------------------------


def _window(opt: dict[str, Any], rounds: int, source: str | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The pods created in the window (file order), after the record rules, and the rule counts."""
    all_pods = pods()
    start, step = int(opt["start_seconds"]), int(opt["step_seconds"])
    stop = start + rounds * step
    trace_end = float(np.nanmax(np.concatenate([all_pods["created"].to_numpy(), all_pods["deleted"].to_numpy()])))
    if stop > trace_end + step:
        raise MarketInputError(
            f"the window {start} s + {rounds} rounds x {step} s ends after the trace ({trace_end:.0f} s); lower horizon "
            "(default: rounds), step_seconds or start_seconds", source=source,
        )
    p = all_pods[(all_pods["created"] >= start) & (all_pods["created"] < stop)]
    before = (p["deleted"] < p["created"]).to_numpy()  # NaN (no deletion) compares False
    counts = {"deletion_before_creation": int(before.sum()), "no_deletion": int(p["deleted"].isna().sum())}
    return p[~before].reset_index(drop=True), counts


def dropped_records(scenario: Scenario) -> dict[str, int]:
    """Counts of the record rules over the scenario's window (the same for every seed).

    ``deletion_before_creation``: pods dropped because their deletion time is before their
    creation time; ``no_deletion``: pods kept with an empty deletion time (held to the end
    of the window); ``unservable_spec``: pods kept whose ``gpu_spec`` names no GPU model of
    the sampled nodes (seed-independent: the per-model counts of the stratified sample
    depend on its size only, so any seed's market gives the same count).
    """
    opt = _options(scenario)
    counts = _window(opt, scenario.horizon, scenario.path or None)[1]
    market = build(scenario, np.random.default_rng(0))
    return {**counts, "unservable_spec": unservable_spec(market)}


def _requests(opt: dict[str, Any], rounds: int, rng: np.random.Generator, source: str | None) -> pd.DataFrame:
    p, _ = _window(opt, rounds, source)
    if p.empty:
        raise MarketInputError("the trace window holds no pods; move market.start_seconds or widen the window", source=source)
    n = len(p)
    start, step = int(opt["start_seconds"]), int(opt["step_seconds"])
    created = p["created"].to_numpy()
    arrival = np.floor((created - start) / step).astype(np.int64)
    open_ended = p["deleted"].isna().to_numpy()
    life = np.ceil((np.nan_to_num(p["deleted"].to_numpy(), nan=0.0) - created) / step)
    duration = np.where(open_ended, rounds - arrival, np.maximum(1, life)).astype(np.int64)
    duration = np.maximum(duration, 1)
    # draw order: tenants, locations, valuation noise
    users = np.empty(n, dtype=np.int64)
    users[rng.permutation(n)] = np.arange(n) % int(opt["users"])
    xy = rng.uniform(-100.0, 100.0, size=(n, 2))
    noise = rng.uniform(0.75, 1.25, size=n)
    w = opt["price_weights"]
    q = sum(w[d] * p[d].to_numpy() for d in DIMENSIONS)
    value = p["qos"].map(QOS_VALUE).to_numpy(dtype=float)
    budget = float(opt["budget_scale"]) * value * noise * np.maximum(q, 0.01) * duration
    return pd.DataFrame({
        "request_id": p["name"].to_numpy(), "user_id": users, "round": arrival,
        "cpu": p["cpu"].to_numpy(), "mem": p["mem"].to_numpy(), "gpu": p["gpu"].to_numpy(),
        "budget": budget, "priority": p["qos"].map(QOS_PRIORITY).to_numpy(dtype=np.int64),
        "x": xy[:, 0], "y": xy[:, 1], "duration": duration, "allowed_types": p["gpu_spec"].to_numpy(),
        "qos": p["qos"].to_numpy(), "phase": p["phase"].to_numpy(), "created_s": created, "open_ended": open_ended,
    })


def _resources(opt: dict[str, Any], requests: pd.DataFrame, rounds: int, rng: np.random.Generator) -> pd.DataFrame:
    table = nodes()
    inside = np.minimum(requests["duration"].to_numpy(), rounds - requests["round"].to_numpy())
    dim = "gpu" if float(requests["gpu"].sum()) > 0 and float(table["gpu"].sum()) > 0 else "cpu"
    held = float((requests[dim].to_numpy() * inside).sum()) / rounds
    size = int(opt["machines"]) or max(1, math.ceil(held / float(opt["load"]) / float(table[dim].mean())))
    size = min(size, len(table))
    chosen = table.iloc[stratified_sample(table["model"].to_numpy(), size, rng)].reset_index(drop=True)
    m = len(chosen)
    # draw order as scenarios.trace_markets (its cpu draw unused: capacities are real)
    lo = np.array([0.5, 0.3, -100.0, -100.0, 0.95, 0.95, 0.6])
    hi = np.array([1.0, 0.8, 100.0, 100.0, 1.0, 1.0, 0.9])
    block = rng.uniform(lo, hi, size=(m, 7))
    owners, _ = pd.factorize(chosen["model"], sort=True)
    return pd.DataFrame({
        "resource_id": chosen["resource_id"].to_numpy(), "cpu": chosen["cpu"].to_numpy(), "mem": chosen["mem"].to_numpy(),
        "gpu": chosen["gpu"].to_numpy(), "unit_cost": block[:, 1], "reliability": block[:, 5],
        "availability": block[:, 4], "energy_efficiency": block[:, 6], "x": block[:, 2], "y": block[:, 3],
        "owner_id": owners.astype(np.int64), "resource_type": chosen["model"].to_numpy(),
    })


def unservable(requests: pd.DataFrame, resources: pd.DataFrame) -> np.ndarray:
    """True for each request whose ``allowed_types`` names no ``resource_type`` of ``resources``."""
    present = set(resources["resource_type"].tolist()) - {""}
    spec = requests["allowed_types"].tolist()
    return np.array([bool(s) and not (set(s.split(TYPE_SEPARATOR)) & present) for s in spec], dtype=bool)


def build(scenario: Scenario, rng: np.random.Generator) -> MarketData:
    """The market of ``scenario`` for one seed's generator (module docstring).

    Raises:
        MarketInputError: on a bad ``[market]`` key, a missing trace file or a bad field.
    """
    opt = _options(scenario)
    source = scenario.path or None
    rounds = int(scenario.horizon)
    req = _requests(opt, rounds, rng, source)
    res = _resources(opt, req, rounds, rng)
    return MarketData(
        validate(req, "requests", f"{TRACE}/{POD_FILE}", DIMENSIONS),
        validate(res, "resources", f"{TRACE}/{NODE_FILE}", DIMENSIONS),
        priority_max=PRIORITY_MAX, dimensions=DIMENSIONS,
    )


def unservable_spec(market: MarketData) -> int:
    """How many requests of a built market name only GPU models absent from its nodes."""
    return int(unservable(market.requests, market.resources).sum())
