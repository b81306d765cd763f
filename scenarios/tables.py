"""The tabular market format (README, "Architecture", contract 2): schema, validation, array views.

Any trace can be converted to two tables. ``requests``: one row per request,
``request_id, user_id, round, cpu, mem, budget, priority, x, y`` and optional
``duration`` (rounds held, default 1), ``min_reliability``, ``min_availability``,
``max_latency``. ``resources``: ``resource_id, cpu, mem, unit_cost, reliability,
availability, energy_efficiency, x, y`` and optional ``owner_id``.

Ids (``request_id, user_id, resource_id, owner_id``) are whole numbers or strings and
come back exactly as given (:func:`_ids` states the rule).

**Resource dimensions.** A market names its resource kinds (``[market] dimensions``,
default ``("cpu", "mem")``); each is one numeric column in both tables, the request's
demand and the resource's capacity in the same units (fractions are ordinary values: a
pod asking for 0.46 of one GPU has ``gpu = 0.46``). Demands are >= 0; capacities of
``cpu`` and ``mem`` are > 0 (every machine has them), of any other dimension >= 0 (a
CPU-only machine has ``gpu = 0``).

**Precedence and deadlines.** Optional ``after`` (the ``request_id`` of a request that
must be served first; empty = none), ``after_lag`` (rounds after that request is served
before this one enters the book, default 1) and ``deadline`` (the last round it may be
served; empty = none). A request with ``after`` arrives ``after_lag`` rounds after its
predecessor is served (never, if it is not), and its patience counts from then; a request
past its deadline leaves the book (it gave up). An LLM request's decode part waits for its
prefill this way.

**Eligibility.** Optional ``resource_type`` (a resource's kind, e.g. its GPU model; empty
= untyped) and ``allowed_types`` (a request's acceptable kinds, ``|``-separated, e.g.
``V100M16|V100M32``; empty = any resource). A request with a list may only be placed on a
resource whose type is in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.errors import MarketInputError
from scenarios.file_lines import file_line

#: the resource dimensions of a market that does not name its own
DEFAULT_DIMENSIONS = ("cpu", "mem")
#: dimensions whose capacity must be > 0 when a market has them (others may be 0)
_POSITIVE_CAPACITY = ("cpu", "mem")
REQUEST_COLUMNS = ["request_id", "user_id", "round", "cpu", "mem", "budget", "priority", "x", "y"]
REQUEST_OPTIONAL = {"duration": 1, "min_reliability": 0.0, "min_availability": 0.0, "max_latency": np.inf,
                    "after_lag": 1, "deadline": np.inf}
RESOURCE_COLUMNS = [
    "resource_id", "cpu", "mem", "unit_cost", "reliability", "availability", "energy_efficiency", "x", "y",
]
RESOURCE_OPTIONAL = {"owner_id": -1}
#: optional text columns (eligibility): missing or empty = untyped resource / any resource
TEXT_OPTIONAL = {"requests": ("allowed_types", "after"), "resources": ("resource_type",)}
#: columns the run's ``requests``/``resources`` outputs add to the tables (contract 3)
OUTPUT_COLUMNS = ("seed",)
#: columns of the run's ``allocations`` and ``users`` outputs (contract 3), which are joined to
#: the market tables (:func:`market.core.feasibility.check_run_tables`): no dimension may take
#: one of these names (tests/test_dimensions.py keeps the list in step with the model's tables)
RESULT_COLUMNS = ("mechanism", "seed", "round", "request_id", "resource_id", "payment", "utility", "user_id",
                  "strategy", "bid_scale", "requests", "wins", "spend", "spend_total", "run_budget")
#: separator of the types in ``allowed_types``
TYPE_SEPARATOR = "|"
#: suffixes :func:`read_table` reads as Parquet; anything else is read as (possibly compressed) CSV
PARQUET_SUFFIXES = (".parquet", ".pq")
#: suffixes a table file may have (CSV may be compressed)
TABLE_SUFFIXES = (*PARQUET_SUFFIXES, ".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst", ".csv.zip")

#: (column, lower bound, strict?) checks; budgets and capacities must be > 0
_RANGES = {
    "requests": [("budget", 0, True), ("priority", 0, False),
                 ("round", 0, False), ("duration", 1, False), ("max_latency", 0, False), ("after_lag", 1, False)],
    "resources": [("unit_cost", 0, False), ("energy_efficiency", 0, True)],
}
_UNIT_INTERVAL = {
    "requests": ["min_reliability", "min_availability"],
    "resources": ["reliability", "availability"],
}
#: columns that must hold whole numbers (stored as int64)
_INTEGER = {
    "requests": ["round", "duration", "after_lag"],
    "resources": [],
}
#: id columns: whole numbers within int64 (stored as int64) or strings (stored as str)
_IDS = {
    "requests": ["request_id", "user_id"],
    "resources": ["resource_id", "owner_id"],
}
ID_COLUMNS = ("request_id", "user_id", "resource_id", "owner_id")
#: columns read as the text written: ids and type names
_TEXT_COLUMNS = (*ID_COLUMNS, *(c for cs in TEXT_OPTIONAL.values() for c in cs))
#: a CSV id cell read as a number: an integer written plainly (no sign +, no leading zero, no
#: point; 0 without a sign, so that "-0" keeps its text rather than become 0)
_PLAIN_INT = re.compile(r"0|-?[1-9][0-9]*")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: the largest whole number a round or duration may be (every one up to it is exact in float64)
_WHOLE_MAX = 2**53
#: columns that may be infinite (an empty cell means "no limit")
_UNBOUNDED = {"max_latency", "deadline"}
#: a table's numbers are 0 or of magnitude in [1 / MAGNITUDE_MAX, MAGNITUDE_MAX]: then no sum
#: over a market, product or ratio of them overflows (budgets of 1e308 summed to an inf welfare,
#: an energy efficiency of 1e-308 made the energy metric inf) and none is subnormal
MAGNITUDE_MAX = 1e100


def has_table_suffix(path: str | Path) -> bool:
    """True if ``path`` names a CSV (possibly compressed) or Parquet file."""
    name = Path(path).name.lower()
    return name.endswith(TABLE_SUFFIXES)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet table, with a one-line error if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise MarketInputError(f"no such file: {path}")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            df = pd.read_parquet(path)
            names = list(df.columns)
            nan = _first_nan(path)
        else:
            # ids and type names as the text written (a GPU model may be called 3090, a user NA),
            # so that :func:`validate` can keep them exactly; only an empty cell is missing (a
            # number written NA is then quoted as written in the error)
            df = pd.read_csv(path, dtype=dict.fromkeys(_TEXT_COLUMNS, str), keep_default_na=False, na_values=[""])
            # the header as written: pandas renames a repeated name (budget, budget.1)
            names = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
            nan = None  # a CSV cell reading nan is text (refused as non-numeric); only an empty one is missing
    except Exception as exc:  # pandas raises many types; the user needs one line
        raise MarketInputError(f"cannot read table: {exc}", source=str(path)) from None
    if nan is not None:  # pandas reads a Parquet null and a NaN alike: the null is the empty cell
        column, row = nan
        raise MarketInputError(f"row {row + 1}: column {column!r} is NaN (not a number; a null cell is an empty one)",
                               source=str(path))
    # (empty names, e.g. the trailing ",," of a spreadsheet's export, are columns nobody reads)
    named = [name for name in names if isinstance(name, str) and name.strip()]
    repeated = [name for i, name in enumerate(named) if name in named[:i]]
    if repeated:  # which of the two would be read is a guess: refused
        raise MarketInputError(f"column {repeated[0]!r} appears twice in the header", source=str(path))
    return df


def _first_nan(path: Path) -> tuple[str, int] | None:
    """The first NaN (a value, not a null) of a Parquet file's floating-point columns: (column, row), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    floats = [f.name for f in pq.read_schema(path) if pa.types.is_floating(f.type)]
    if not floats:
        return None
    table = pq.read_table(path, columns=floats)
    for name, column in zip(table.column_names, table.columns, strict=True):
        nan = pc.fill_null(pc.is_nan(column), False).to_numpy(zero_copy_only=False)
        if nan.any():
            return name, int(np.flatnonzero(nan)[0])
    return None


def _show(value: object) -> str:
    """A value as the user wrote it (numpy scalars as plain Python values)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


class _Rows:
    """Names the first bad row of a table in messages: data row and, for CSV, file line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.csv = not str(source).lower().endswith(PARQUET_SUFFIXES)

    def fail(self, mask: np.ndarray, text: str, values: pd.Series | np.ndarray | None = None) -> None:
        """Raise for the first row where ``mask`` is true; ``{value}`` in ``text`` is its value."""
        row = int(np.flatnonzero(mask)[0])
        where = f"row {row + 1}" + (f" (line {file_line(self.source, row)})" if self.csv else "")
        if values is not None:
            value = values.iloc[row] if isinstance(values, pd.Series) else values[row]
            text = text.format(value=_show(value))
        raise MarketInputError(f"{where}: {text}", source=self.source)


def _numeric(df: pd.DataFrame, col: str, rows: _Rows, default: float | None = None) -> pd.Series:
    """Column ``col`` as numbers: numeric, finite (unless unbounded); an empty cell is ``default`` (None: refused)."""
    raw = df[col]
    if (pd.api.types.is_bool_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw)
            or pd.api.types.is_timedelta64_dtype(raw)):  # a timestamp would pass as its nanoseconds
        rows.fail(np.ones(len(raw), dtype=bool), f"column {col!r} must be numeric, got {{value}}", raw)
    try:
        values = pd.to_numeric(raw, errors="coerce")
    except (TypeError, ValueError):  # nested values (lists, dicts) in a Parquet column
        values = pd.Series(np.nan, index=raw.index)
    if default is not None:  # an optional column's empty cell: its default (no limit for max_latency, deadline)
        values = values.where(raw.notna(), default)
    empty = raw.isna().to_numpy() & values.isna().to_numpy()
    if empty.any():
        rows.fail(empty, f"column {col!r} has a missing value (an empty cell)")
    bad = values.isna().to_numpy()
    if raw.dtype == object:  # True/False mixed into a column of numbers
        bad = bad | raw.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
    if bad.any():
        rows.fail(bad, f"column {col!r} has a non-numeric value {{value}}", raw)
    arr = values.to_numpy(dtype=float)
    finite = np.isfinite(arr) | ((arr == np.inf) if col in _UNBOUNDED else False)
    if not finite.all():
        rows.fail(~finite, f"column {col!r} is not finite ({{value}})", arr)
    if any(col in whole for whole in _INTEGER.values()):  # whole numbers: bounded by 2**53 (validate), named so
        return values
    size = np.abs(np.where(np.isfinite(arr), arr, 1.0))
    outside = (size > MAGNITUDE_MAX) | ((size < 1.0 / MAGNITUDE_MAX) & (size != 0.0))
    if outside.any():
        rows.fail(outside, f"column {col!r} must be 0 or of magnitude from {1 / MAGNITUDE_MAX:g} to "
                           f"{MAGNITUDE_MAX:g}, got {{value}}", arr)
    return values


def _whole(v: object) -> bool:
    """True for an integer (not a boolean) or a whole float within int64 (an exact id)."""
    if isinstance(v, bool | np.bool_):
        return False
    if isinstance(v, int | np.integer):
        return True
    return isinstance(v, float | np.floating) and bool(np.isfinite(v)) and v == np.round(v) and -(2.0**63) <= v < 2.0**63


def _ids(df: pd.DataFrame, col: str, rows: _Rows) -> pd.Series:
    """Id column ``col`` exactly as given: int64 if every id is a whole number within int64, else str.

    A cell is a whole number if it is an integer (any integer type), a whole float, or, in
    a CSV file, text written as a plain integer (``-?[1-9][0-9]*`` or ``0``: no ``+``, no
    leading zero, no decimal point). If every cell is a whole number within int64 the column
    is int64. Otherwise (any other text, or a whole number outside int64 such as a uint64
    above ``2**63 - 1``) every id is kept as a string: text as written, numbers as their
    exact decimal digits. A missing, empty or blank cell, a boolean, a fraction, or a float
    outside int64 (not exact) is refused, naming the file, row and column.
    """
    raw = df[col]
    index = raw.index
    if pd.api.types.is_bool_dtype(raw):
        rows.fail(np.ones(len(raw), dtype=bool), f"column {col!r} must hold whole numbers or strings, got {{value}}", raw)
    if raw.isna().any():
        rows.fail(raw.isna().to_numpy(), f"column {col!r} has a missing value (an empty cell)")
    if pd.api.types.is_integer_dtype(raw):
        if pd.api.types.is_unsigned_integer_dtype(raw) and len(raw) and int(raw.max()) > _INT64_MAX:
            return pd.Series([str(v) for v in raw.tolist()], index=index, dtype=str)
        return raw.astype(np.int64)
    if pd.api.types.is_float_dtype(raw):
        arr = raw.to_numpy(dtype=float)
        if not np.isfinite(arr).all():
            rows.fail(~np.isfinite(arr), f"column {col!r} has an infinite value {{value}}", arr)
        if (arr != np.round(arr)).any():
            rows.fail(arr != np.round(arr), f"column {col!r} must hold whole numbers or strings, got {{value}}", arr)
        outside = (arr < _INT64_MIN) | (arr >= 2.0**63)
        if outside.any():
            rows.fail(outside, f"column {col!r} holds {{value}}, a float outside int64 that cannot be an exact id; "
                      "write it as an integer or a string", arr)
        return raw.astype(np.int64)
    values: list[object] = []
    csv = rows.csv
    for row, v in enumerate(raw.tolist()):
        if isinstance(v, str):
            if not v.strip():  # empty or only blanks: no id
                rows.fail(np.arange(len(raw)) == row, f"column {col!r} has an empty id {{value}}", raw)
            values.append(int(v) if csv and _PLAIN_INT.fullmatch(v) else v)
        elif _whole(v):
            values.append(int(v))
        else:
            rows.fail(np.arange(len(raw)) == row, f"column {col!r} must hold whole numbers or strings, got {{value}}", raw)
    if all(isinstance(v, int) and _INT64_MIN <= v <= _INT64_MAX for v in values):
        return pd.Series(values, index=index, dtype=np.int64)
    return pd.Series([str(v) for v in values], index=index, dtype=str)


def required_columns(kind: str, dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS) -> list[str]:
    """The columns a ``requests`` or ``resources`` table must have, for a market's dimensions.

    The fixed columns of the contract without ``cpu, mem``, with one column per dimension
    after the id columns (``cpu, mem`` for the default dimensions: the contract's order).
    """
    base = REQUEST_COLUMNS if kind == "requests" else RESOURCE_COLUMNS
    head = 3 if kind == "requests" else 1  # request_id, user_id, round | resource_id
    rest = [c for c in base[head:] if c not in DEFAULT_DIMENSIONS]
    return [*base[:head], *dimensions, *rest]


def check_dimensions(dimensions: object, source: str | None = None, key: str = "market.dimensions") -> tuple[str, ...]:
    """A market's dimensions as a tuple of names, or one line naming the key.

    Names are non-empty identifiers (letters, digits, ``_``), unique, not one of the
    tables' other columns; at least one.
    """
    reserved = {*REQUEST_COLUMNS, *RESOURCE_COLUMNS, *REQUEST_OPTIONAL, *RESOURCE_OPTIONAL,
                *_TEXT_COLUMNS, *OUTPUT_COLUMNS, *RESULT_COLUMNS}
    reserved -= set(DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, list | tuple) or not dimensions:
        raise MarketInputError(f"key {key!r} must be a non-empty list of names, got {dimensions!r}", source=source)
    for name in dimensions:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise MarketInputError(f"key {key!r}: {name!r} is not a dimension name (letters, digits, _)", source=source)
        if name in reserved:
            raise MarketInputError(f"key {key!r}: {name!r} is another column of the tables, not a dimension", source=source)
    dup = [d for i, d in enumerate(dimensions) if d in dimensions[:i]]
    if dup:
        raise MarketInputError(f"key {key!r}: dimension {dup[0]!r} is listed twice", source=source)
    return tuple(dimensions)


def _types(df: pd.DataFrame, col: str, rows: _Rows) -> pd.Series:
    """Text column ``col`` (eligibility): strings, missing or empty = ``""``.

    CSV cells are read as the text written (``3090`` stays ``"3090"``); in Parquet a
    string column is taken as it is and an integer column as the decimal text of each
    value; floats and booleans are refused (a type is a name, not a quantity).
    """
    raw = df[col]
    out = []
    for row, v in enumerate(raw.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append("")
        elif isinstance(v, str):
            out.append(v.strip())
        elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            out.append(str(int(v)))
        else:
            rows.fail(np.arange(len(raw)) == row, f"column {col!r} must hold text, got {{value}}", raw)
    values = pd.Series(out, index=raw.index, dtype=str)
    if col == "allowed_types":
        bad = values.map(lambda v: v != "" and "" in [t.strip() for t in v.split(TYPE_SEPARATOR)]).to_numpy(dtype=bool)
        if bad.any():
            rows.fail(bad, f"column {col!r} has an empty type in {{value}} (types are separated by {TYPE_SEPARATOR!r})",
                      values)
        values = values.map(lambda v: TYPE_SEPARATOR.join(t.strip() for t in v.split(TYPE_SEPARATOR)) if v else v)
    return values


def validate(df: pd.DataFrame, kind: str, source: str, dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS) -> pd.DataFrame:
    """Check and normalise a requests or resources table.

    Checks, each failing with one line that names the file, the column and the first
    bad row and value: required columns present; every cell but the ids numeric and
    finite (an optional column's empty cell takes its default; ``max_latency`` and
    ``deadline`` may be ``inf``, meaning no limit); ids whole numbers
    or strings (see :func:`_ids`); ``round`` and ``duration`` whole numbers; ranges (budgets and resource
    capacities > 0, demands, costs, priorities and latencies >= 0, ``duration >= 1``,
    reliability and availability in [0, 1]); no duplicate ids; at least one resource.

    Args:
        df: the raw table.
        kind: ``"requests"`` or ``"resources"``.
        source: the file name used in error messages.
        dimensions: the market's resource dimensions (one numeric column each).

    Returns:
        The table with optional columns filled in, numeric dtypes (whole-number columns
        as int64; each id column int64 or str, exactly as given), in input order.

    Raises:
        MarketInputError: naming the file, the column and the first bad row.
    """
    if kind not in _RANGES:
        raise ValueError(f"kind must be 'requests' or 'resources', got {kind!r}")
    dimensions = tuple(dimensions)
    required = required_columns(kind, dimensions)
    optional = REQUEST_OPTIONAL if kind == "requests" else RESOURCE_OPTIONAL
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MarketInputError(f"missing column(s) {', '.join(missing)}", source=source)
    if kind == "resources" and len(df) == 0:
        raise MarketInputError("the resources table has no rows", source=source)
    rows = _Rows(source)
    df = df.copy()
    for col, default in optional.items():
        if col not in df.columns:
            df[col] = default
    for col in [*required, *optional]:
        df[col] = _ids(df, col, rows) if col in _IDS[kind] else _numeric(df, col, rows, optional.get(col))
    for text in TEXT_OPTIONAL[kind]:
        df[text] = _types(df, text, rows) if text in df.columns else pd.Series("", index=df.index, dtype=str)
    for col in _INTEGER[kind]:
        arr = df[col].to_numpy(dtype=float)
        bad = arr != np.round(arr)
        if bad.any():
            rows.fail(bad, f"column {col!r} must hold whole numbers, got {{value}}", arr)
        huge = np.abs(arr) > _WHOLE_MAX  # else the int64 cast wraps, and a check quotes what nobody wrote
        if huge.any():
            rows.fail(huge, f"column {col!r} must hold whole numbers of at most 2**53, got {{value}}", arr)
        df[col] = df[col].astype(np.int64)
    ranges = [r for r in _RANGES[kind] if r[0] not in DEFAULT_DIMENSIONS]
    ranges += [(d, 0, kind == "resources" and d in _POSITIVE_CAPACITY) for d in dimensions]
    for col, low, strict in ranges:
        arr = df[col].to_numpy(dtype=float)
        bad = arr <= low if strict else arr < low
        if bad.any():
            rel = ">" if strict else ">="
            rows.fail(bad, f"column {col!r} must be {rel} {low}, got {{value}}", arr)
    for col in _UNIT_INTERVAL[kind]:
        arr = df[col].to_numpy(dtype=float)
        bad = (arr < 0) | (arr > 1)
        if bad.any():
            rows.fail(bad, f"column {col!r} must be in [0, 1], got {{value}}", arr)
    id_col = "request_id" if kind == "requests" else "resource_id"
    dup = df[id_col].duplicated().to_numpy()
    if dup.any():
        rows.fail(dup, f"duplicate {id_col} {{value}}", df[id_col])
    if kind == "requests":
        _check_precedence(df, rows)
    return df.reset_index(drop=True)


def _check_precedence(df: pd.DataFrame, rows: _Rows) -> None:
    """``after`` names another request of the table, chains end; ``deadline`` is a whole round >= ``round``."""
    deadline = df["deadline"].to_numpy(dtype=float)
    bad = np.isfinite(deadline) & ((deadline != np.round(deadline)) | (deadline < df["round"].to_numpy()))
    if bad.any():
        rows.fail(bad, "column 'deadline' must be a whole round >= the request's round (or empty: none), got {value}",
                  deadline)
    after = df["after"].to_numpy(dtype=object)
    if not any(after):
        return
    pred = predecessors(df["request_id"], df["after"])
    unknown = (after != "") & (pred < 0)
    if unknown.any():
        rows.fail(unknown, "column 'after' names no request_id of the table: {value}", after)
    own = pred == np.arange(len(df))
    if own.any():
        rows.fail(own, "column 'after' names the request itself: {value}", after)
    # pointer jumping: a chain longer than the table is a cycle
    hop = pred.copy()
    for _ in range(max(1, int(np.ceil(np.log2(len(df) + 1)))) + 1):
        hop = np.where(hop >= 0, hop[np.maximum(hop, 0)], -1)  # the ancestor twice as far
    cyclic = hop >= 0
    if cyclic.any():
        rows.fail(cyclic, "column 'after' makes a cycle (this request waits for itself): {value}", after)


def predecessors(request_id: pd.Series, after: pd.Series) -> np.ndarray:
    """``(N,)`` the row of each request's ``after`` request (-1: none or not found), ids compared as text."""
    index = {str(v): k for k, v in enumerate(request_id.tolist())}
    return np.array([index.get(a, -1) if a else -1 for a in after.astype(str).tolist()], dtype=np.int64)


@dataclass(frozen=True)
class MarketData:
    """A whole market: both tables, validated (what ``requests/resources.parquet`` hold)."""

    requests: pd.DataFrame
    resources: pd.DataFrame
    #: priority normaliser ``p_max`` (``p~ = p / p_max``)
    priority_max: float = 10.0
    #: the resource dimensions, one column each in both tables
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    #: what a source adds to its rounds (an LLM-serving market's :class:`scenarios.azure_llm.LLMServing`)
    extension: Any = None
    #: the source's own price weights per dimension (None: the scenario's rule), used
    #: unless the scenario sets ``[market] price_weights``
    price_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimensions", tuple(self.dimensions))

    def request_arrays(self) -> dict[str, np.ndarray]:
        """Request columns as contiguous float/int arrays (rows in table order)."""
        df = self.requests
        out = {c: np.ascontiguousarray(df[c].to_numpy(dtype=float)) for c in
               [*self.dimensions, "budget", "priority", "x", "y", "min_reliability", "min_availability", "max_latency"]}
        out["round"] = df["round"].to_numpy(dtype=np.int64)
        out["duration"] = df["duration"].to_numpy(dtype=np.int64)
        # precedence and deadlines (optional: a generated market may not have the columns)
        out["after_lag"] = (df["after_lag"].to_numpy(dtype=np.int64) if "after_lag" in df
                            else np.ones(len(df), dtype=np.int64))
        out["deadline"] = df["deadline"].to_numpy(dtype=float) if "deadline" in df else np.full(len(df), np.inf)
        return out

    def demand(self) -> np.ndarray:
        """``(N, D)`` each request's demand in every dimension (columns in ``dimensions`` order)."""
        return np.ascontiguousarray(self.requests[list(self.dimensions)].to_numpy(dtype=float).reshape(-1, len(self.dimensions)))

    def predecessor(self) -> np.ndarray:
        """``(N,)`` the row of each request's ``after`` request, -1 for none (also without the column)."""
        if "after" not in self.requests:
            return np.full(len(self.requests), -1, dtype=np.int64)
        return predecessors(self.requests["request_id"], self.requests["after"].fillna(""))

    def resource_types(self) -> np.ndarray:
        """``(M,)`` each resource's type (``resource_type``; ``""`` = untyped, also when the table has none)."""
        col = "resource_type"
        if col not in self.resources:
            return np.full(len(self.resources), "", dtype=object)
        return self.resources[col].fillna("").astype(str).to_numpy(dtype=object)

    def unservable(self) -> tuple[int, list[str]]:
        """Requests whose ``allowed_types`` name no type any resource has (nobody can serve them).

        Returns:
            ``(count, types)``: how many requests, and the type names they allow that no
            resource has (sorted), e.g. a misspelt model or ``A100,T4`` written with a comma.
        """
        held = set(self.resource_types().tolist()) - {""}
        count, unknown = 0, set()
        for text in self.allowed_types().tolist():
            if text:
                names = set(text.split(TYPE_SEPARATOR))
                if not names & held:
                    count += 1
                    unknown |= names
        return count, sorted(unknown - held)

    def allowed_types(self) -> np.ndarray:
        """``(N,)`` each request's ``allowed_types`` (``""`` = any, also when the table has none)."""
        col = "allowed_types"
        if col not in self.requests:
            return np.full(len(self.requests), "", dtype=object)
        return self.requests[col].fillna("").astype(str).to_numpy(dtype=object)

    def capacity(self) -> np.ndarray:
        """``(M, D)`` each resource's capacity in every dimension."""
        return np.ascontiguousarray(self.resources[list(self.dimensions)].to_numpy(dtype=float).reshape(-1, len(self.dimensions)))
