"""Loaders for the Google cluster trace clusterdata-2011-2 (format v2).

Files live under ``$MARKET_DATA_DIR/clusterdata-2011-2/<table>/part-NNNNN-of-MMMMM.csv.gz``
(the official layout; ``.csv.xz`` or a plain ``.csv`` with the same content is accepted
too). No file has a header row; the columns are the official schema below. Timestamps
are microseconds; CPU and memory are normalised so that the largest machine has 1.0.

Two timestamps are sentinels, never real times (schema, section "Times"): ``0``
(:data:`BEFORE_TRACE`) is an event before the trace window and ``2**63 - 1``
(:data:`AFTER_TRACE`) one after it. The loaders' rules: an event at ``2**63 - 1`` is
not an event of the trace (a task whose only end is there is still running at the end
of the trace; a machine removed there is alive to the end); an event at ``0`` is placed
at the trace start, the earliest time the trace knows (a machine added at 0 is there
from the start). The trace end is the last real event time (:func:`trace_end`).

Fields: an integer field (timestamp, ids, event type) that is empty or not an integer,
or a numeric field that is not empty and not a number, stops the read with one line
naming the file, its line and the field; numeric fields the schema allows to be empty
(requests, priority, capacities, ...) are read as NaN and the caller's rule applies
(pandas' missing-value markers such as ``NA`` or ``nan`` read as empty too). A field that
parses but is outside the schema's range stops the read the same way, naming the trace
file, its line and the trace field (:data:`FIELD_RANGES`): times, ids and requests >= 0
and finite (requests, capacities and float ids below 2**53), event types 0..8 (machine events 0..2), scheduling class 0..3, priority 0..11,
machine capacities > 0, and a machine event without a machine id. So does a part file
that is empty (0 bytes, or no rows once decompressed): the official parts never are.

Data: Google cluster-usage traces, clusterdata-2011-2, CC-BY 4.0. C. Reiss, J. Wilkes,
J. L. Hellerstein, "Google cluster-usage traces: format + schema", Google, 2011.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from market.errors import MarketInputError
from scenarios.file_lines import file_line

TRACE = "clusterdata-2011-2"
#: file name suffixes tried in order (the official files are gzip)
SUFFIXES = (".csv.gz", ".csv.xz", ".csv")

#: official column schemas (no header row in any file)
SCHEMAS: dict[str, list[str]] = {
    "job_events": [
        "timestamp", "missing_info", "job_id", "event_type", "user", "scheduling_class",
        "job_name", "logical_job_name",
    ],
    "task_events": [
        "timestamp", "missing_info", "job_id", "task_index", "machine_id", "event_type", "user",
        "scheduling_class", "priority", "cpu_request", "memory_request", "disk_space_request",
        "different_machine_constraint",
    ],
    "machine_events": ["timestamp", "machine_id", "event_type", "platform_id", "cpu", "mem"],
}
#: number of parts of each table in the full trace
PARTS = {"job_events": 500, "task_events": 500, "machine_events": 1}
#: dtypes that hold every value of the trace (nullable where fields may be empty)
DTYPES: dict[str, str] = {
    "timestamp": "int64", "missing_info": "float64", "job_id": "int64", "task_index": "int64",
    "machine_id": "float64", "event_type": "int64", "user": "str", "scheduling_class": "float64",
    "priority": "float64", "cpu_request": "float64", "memory_request": "float64",
    "disk_space_request": "float64", "different_machine_constraint": "float64",
    "job_name": "str", "logical_job_name": "str", "platform_id": "str", "cpu": "float64",
    "mem": "float64",
}
FETCH_HINT = "run: market data fetch google2011"
#: the parts the project uses, with the sha256 of their *uncompressed* content (a
#: recompressed copy, e.g. ``.csv.xz``, verifies too), as recorded for the trace copy the
#: project was developed and tested on
CONTENT_SHA256: dict[str, str] = {
    "job_events/part-00000-of-00500.csv": "3062f146891225fc32402a60bae65d9a9e60493ad2931bbd71f22639a282c58b",
    "job_events/part-00001-of-00500.csv": "dfd2b5ecd0bc0b34cc5e9ba715731faa5b0761f78252f0fa6b1471c63ecf45d5",
    "task_events/part-00000-of-00500.csv": "c18c344bd193e211a4c22c1989760493bf1291bb6d157d2b80b04bb4e568b580",
    "task_events/part-00001-of-00500.csv": "9e788fc6a9a9de8bf2e8d09f5456080ffc11e29bf8fb465edeee2a1733f7accd",
    "machine_events/part-00000-of-00001.csv": "16cfec99fd35336c955ade9ea0b6da3e781660d6cabd6c33409af2c10a4e27f3",
}

#: every float field is below this: an id, request or capacity beyond it is no trace value,
#: and sums and products of it overflow
FIELD_MAX = 2**53
#: the range of each numeric field, as the schema gives it: ``(low, high, whole, low is
#: excluded)``; empty is allowed where the dtype is a float (NaN), except :data:`REQUIRED`.
#: Float fields are also below :data:`FIELD_MAX`. Checked on every part as it is read
#: (:func:`read_events`).
FIELD_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "timestamp": (0, np.inf, True, False), "missing_info": (0, np.inf, True, False),
    "job_id": (0, np.inf, True, False), "task_index": (0, np.inf, True, False),
    "machine_id": (0, np.inf, True, False), "event_type": (0, 8, True, False),
    "scheduling_class": (0, 3, True, False), "priority": (0, 11, True, False),
    "cpu_request": (0, np.inf, False, False), "memory_request": (0, np.inf, False, False),
    "disk_space_request": (0, np.inf, False, False), "different_machine_constraint": (0, 1, True, False),
    "cpu": (0, np.inf, False, True), "mem": (0, np.inf, False, True),
}
#: per-table overrides of :data:`FIELD_RANGES`
TABLE_RANGES: dict[str, dict[str, tuple[float, float, bool, bool]]] = {
    "machine_events": {"event_type": (0, 2, True, False)},
}
#: float fields that must not be empty in a table
REQUIRED: dict[str, tuple[str, ...]] = {"machine_events": ("machine_id",)}

# event types
SUBMIT, SCHEDULE, EVICT, FAIL, FINISH, KILL, LOST = range(7)
TERMINAL = (FAIL, FINISH, KILL, LOST)
ADD, REMOVE, UPDATE = 0, 1, 2
#: sentinel times: before the trace window, after it
BEFORE_TRACE = 0
AFTER_TRACE = 2**63 - 1


def trace_end(timestamps: pd.Series) -> int:
    """The last real event time of ``timestamps`` (the sentinel ``2**63 - 1`` excluded; 0 if none)."""
    real = timestamps[timestamps != AFTER_TRACE]
    return int(real.max()) if len(real) else BEFORE_TRACE


def data_dir() -> Path:
    """``$MARKET_DATA_DIR``, else a per-user cache folder (``$XDG_CACHE_HOME/market-alloc``)."""
    env = os.environ.get("MARKET_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "market-alloc"


def schema(table: str) -> list[str]:
    """The official columns of ``table``.

    Raises:
        MarketInputError: for an unknown table.
    """
    if table not in SCHEMAS:
        raise MarketInputError(f"unknown trace table {table!r} (known: {', '.join(SCHEMAS)})")
    return SCHEMAS[table]


def part_name(table: str, part: int) -> str:
    """``part-NNNNN-of-MMMMM`` (without suffix) of ``table``."""
    schema(table)
    total = PARTS[table]
    if not 0 <= part < total:
        raise MarketInputError(f"{table} has parts 0..{total - 1}, got {part}")
    return f"part-{part:05d}-of-{total:05d}"


def relative_path(table: str, part: int) -> str:
    """The official path of a part inside the data folder (gzip, as published)."""
    return f"{TRACE}/{table}/{part_name(table, part)}.csv.gz"


def find_part(table: str, part: int, root: Path | None = None) -> Path:
    """The local file of one part (``.csv.gz``, ``.csv.xz`` or ``.csv``).

    Raises:
        MarketInputError: one line naming the missing file and how to fetch it.
    """
    root = data_dir() if root is None else Path(root)
    stem = root / TRACE / table / part_name(table, part)
    for suffix in SUFFIXES:
        path = stem.with_name(stem.name + suffix)
        if path.is_file():
            return path
    raise MarketInputError(f"missing trace file {stem}.csv.gz ({FETCH_HINT})")


def read_events(
    table: str,
    parts: Sequence[int] = (0,),
    columns: Sequence[str] | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """Read parts of a trace table into one DataFrame (file order kept).

    Args:
        table: ``job_events``, ``task_events`` or ``machine_events``.
        parts: part numbers, read and concatenated in this order.
        columns: the schema columns to keep (default all); a ``part`` column is added.
        root: the data folder (default :func:`data_dir`).

    Returns:
        One row per event, with the official column names and nullable floats for
        fields that may be empty.

    Raises:
        MarketInputError: if a file is missing, empty or cannot be parsed, or a field is
            out of its range (:data:`FIELD_RANGES`): one line naming the file, its line
            and the field.
    """
    names = schema(table)
    usecols = list(names) if columns is None else [c for c in names if c in set(columns)]
    unknown = sorted(set(columns or ()) - set(names))
    if unknown:
        raise MarketInputError(f"{table} has no column(s) {', '.join(unknown)}")
    paths = [find_part(table, p, root) for p in parts]
    frames = []
    for part, path in zip(parts, paths):
        try:
            if path.stat().st_size == 0:
                raise MarketInputError(f"the trace file is empty (0 bytes); fetch it again ({FETCH_HINT})",
                                       source=str(path))
            df = pd.read_csv(
                path, header=None, names=names, usecols=usecols,
                dtype={c: DTYPES[c] for c in usecols}, engine="c",
            )
        except MarketInputError:
            raise
        except Exception as exc:  # parse errors of many kinds: the user needs one line
            _locate_bad_field(path, names, usecols)
            raise MarketInputError(f"cannot read trace file: {exc}", source=str(path)) from None
        if df.empty:
            raise MarketInputError(f"the trace file holds no events; fetch it again ({FETCH_HINT})", source=str(path))
        _check_ranges(df, table, path)
        frames.append(df.assign(part=np.int64(part)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*usecols, "part"])


def _shown(value: float) -> str:
    """A field's value as the file most likely wrote it (``-3``, ``-0.01``, ``inf``)."""
    if math.isfinite(value) and value == round(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _check_ranges(df: pd.DataFrame, table: str, path: Path) -> None:
    """Raise one line for the first field of ``df`` (one part, in file order) out of its range.

    The line is the file's line (no header: data row ``k`` is line ``k + 1``), the field
    the trace's own column name.
    """
    ranges = {**FIELD_RANGES, **TABLE_RANGES.get(table, {})}
    required = REQUIRED.get(table, ())
    problems: list[tuple[int, int, str]] = []  # (row, column order, message): the first row wins
    for order, col in enumerate(df.columns):
        if col not in ranges:
            continue
        low, high, whole, open_low = ranges[col]
        raw = df[col].to_numpy()
        bounded = high < FIELD_MAX
        if raw.dtype.kind in "iu":  # parsed int64: never empty, finite, whole, and no upper limit but the schema's
            want = f"a whole number from {low:g} to {high:g}" if bounded else f"a whole number >= {low:g}"
            out = (raw < low) | (raw > high) if bounded else raw < low
            if out.any():
                row = int(np.flatnonzero(out)[0])
                problems.append((row, order, f"field {col!r} must be {want}, got {int(raw[row])}"))
            continue
        values = raw.astype(float)
        empty = np.isnan(values)
        want = ("a whole number" if whole else "a finite number") + (
            f" from {low:g} to {high:g}" if bounded else f" {'>' if open_low else '>='} {low:g} and below 2**53")
        if col not in required:
            want += " (or empty)"
        with np.errstate(invalid="ignore"):
            bad = ~empty & (~np.isfinite(values) | (values < low) | (values > high) | (values >= FIELD_MAX)
                            | ((values <= low) if open_low else False))
            if whole:
                bad |= ~empty & np.isfinite(values) & (values != np.round(values))
        if col in required and empty.any():
            row = int(np.flatnonzero(empty)[0])
            problems.append((row, order, f"field {col!r} is empty"))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            problems.append((row, order, f"field {col!r} must be {want}, got {_shown(values[row])}"))
    if problems:
        row, _, message = min(problems)
        raise MarketInputError(f"line {file_line(path, row, header=False)}: {message}", source=str(path))


def _locate_bad_field(path: Path, names: list[str], usecols: list[str]) -> None:
    """After a failed typed read: raise one line naming the first bad field, if any.

    Re-reads ``path`` as text; an integer column must hold an integer on every line, a
    float column a number or nothing. Returns quietly if no such field is found (the
    caller then reports the parser's own message).
    """
    try:
        raw = pd.read_csv(path, header=None, names=names, usecols=usecols, dtype=str, keep_default_na=False, engine="c")
    except Exception:  # not a field problem: the caller reports the parser's message
        return
    bad_rows: list[tuple[int, str, str]] = []
    for col in usecols:
        kind = DTYPES[col]
        if kind == "str":
            continue
        text = raw[col].str.strip()
        if kind == "int64":
            bad = ~text.str.fullmatch(r"[+-]?\d+")
        else:
            bad = (text != "") & pd.to_numeric(text, errors="coerce").isna() & ~text.str.lower().isin(["nan"])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            bad_rows.append((row, col, raw[col].iat[row]))
    if bad_rows:
        row, col, value = min(bad_rows)
        what = "is empty" if value.strip() == "" else f"is not a number: {value!r}"
        raise MarketInputError(f"line {file_line(path, row, header=False)}: field {col!r} {what}", source=str(path))


def first_submits(table: str, parts: Sequence[int], per_part: int | None = None, **kw) -> pd.DataFrame:
    """SUBMIT rows in file order, at most ``per_part`` from each part (``None`` = all)."""
    df = read_events(table, parts, **kw)
    sub = df[df["event_type"] == SUBMIT]
    if per_part is not None:
        sub = sub.groupby("part", sort=False).head(per_part)
    return sub.reset_index(drop=True)


def machines_at(t_us: int, root: Path | None = None) -> pd.DataFrame:
    """Machines alive at trace time ``t_us`` with their capacity (replay of machine_events).

    ADD and UPDATE set a machine's capacity, REMOVE deletes it; rows with an empty
    capacity are skipped. Events at 0 happened at or before the trace start; events at
    the sentinel ``2**63 - 1`` are after the trace and never replayed. Returns
    ``machine_id, platform_id, cpu, mem`` sorted by id.
    """
    ev = read_events("machine_events", (0,), root=root)
    ev = ev[(ev["timestamp"] <= t_us) & (ev["timestamp"] != AFTER_TRACE)]
    ev = ev[(ev["event_type"] == REMOVE) | ev[["cpu", "mem"]].notna().all(axis=1)]
    last = ev.drop_duplicates("machine_id", keep="last")  # events are in time order
    alive = last[last["event_type"] != REMOVE]
    out = alive[["machine_id", "platform_id", "cpu", "mem"]].sort_values("machine_id", kind="stable")
    return out.assign(machine_id=out["machine_id"].astype(np.int64)).reset_index(drop=True)


def mohaf_jobs(root: Path | None = None) -> pd.DataFrame:
    """The MOHAF paper's requests: the first 2,500 SUBMIT rows of job_events parts 0 and 1.

    File order, no dedupe, no shuffle, as the paper's code reads them: 2,500 + 1,053 = 3,553 jobs
    (part 1 holds only 1,053 SUBMIT rows).
    """
    cols = ["timestamp", "job_id", "event_type", "user", "scheduling_class"]
    return first_submits("job_events", (0, 1), 2500, columns=cols, root=root)
