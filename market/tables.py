"""The tabular market format (DESIGN.md §5.2): schema, validation and array views.

Any trace can be converted to two tables. ``requests``: one row per request,
``request_id, user_id, round, cpu, mem, budget, priority, x, y`` and optional
``duration`` (rounds held, default 1), ``min_reliability``, ``min_availability``,
``max_latency``. ``resources``: ``resource_id, cpu, mem, unit_cost, reliability,
availability, energy_efficiency, x, y`` and optional ``owner_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from market.errors import MarketInputError

REQUEST_COLUMNS = ["request_id", "user_id", "round", "cpu", "mem", "budget", "priority", "x", "y"]
REQUEST_OPTIONAL = {"duration": 1, "min_reliability": 0.0, "min_availability": 0.0, "max_latency": np.inf}
RESOURCE_COLUMNS = [
    "resource_id", "cpu", "mem", "unit_cost", "reliability", "availability", "energy_efficiency", "x", "y",
]
RESOURCE_OPTIONAL = {"owner_id": -1}

#: (column, lower bound, strict?) checks; budgets and capacities must be > 0
_RANGES = {
    "requests": [("cpu", 0, False), ("mem", 0, False), ("budget", 0, True), ("priority", 0, False),
                 ("round", 0, False), ("duration", 1, False)],
    "resources": [("cpu", 0, True), ("mem", 0, False), ("unit_cost", 0, False), ("energy_efficiency", 0, True)],
}
_UNIT_INTERVAL = {
    "requests": ["min_reliability", "min_availability"],
    "resources": ["reliability", "availability"],
}


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet table, with a one-line error if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise MarketInputError(f"no such file: {path}")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # pandas raises many types; the user needs one line
        raise MarketInputError(f"{path}: cannot read table: {exc}") from None


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def validate(df: pd.DataFrame, kind: str, source: str) -> pd.DataFrame:
    """Check and normalise a requests or resources table.

    Args:
        df: the raw table.
        kind: ``"requests"`` or ``"resources"``.
        source: the file name used in error messages.

    Returns:
        The table with optional columns filled in, numeric dtypes, in input order.

    Raises:
        MarketInputError: naming the file, the column and the first bad row.
    """
    required = REQUEST_COLUMNS if kind == "requests" else RESOURCE_COLUMNS
    optional = REQUEST_OPTIONAL if kind == "requests" else RESOURCE_OPTIONAL
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MarketInputError(f"missing column(s) {', '.join(missing)}", source=source)
    df = df.copy()
    for col, default in optional.items():
        if col not in df.columns:
            df[col] = default
        elif col == "max_latency":
            df[col] = df[col].fillna(np.inf)
    id_col = "request_id" if kind == "requests" else "resource_id"
    for col in [*required, *optional]:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna().to_numpy() | (df[col].isna().to_numpy())
        if col == "max_latency":
            bad = values.isna().to_numpy()
        if bad.any():
            row = _first_bad(bad)
            raise MarketInputError(f"row {row + 2}: column {col!r} has a missing or non-numeric value {df[col].iloc[row]!r}", source=source)
        arr = values.to_numpy(dtype=float)
        if col != "max_latency" and not np.all(np.isfinite(arr)):
            row = _first_bad(~np.isfinite(arr))
            raise MarketInputError(f"row {row + 2}: column {col!r} is not finite ({arr[row]})", source=source)
        df[col] = values
    for col, low, strict in _RANGES[kind]:
        arr = df[col].to_numpy(dtype=float)
        bad = arr <= low if strict else arr < low
        if bad.any():
            row = _first_bad(bad)
            rel = ">" if strict else ">="
            raise MarketInputError(f"row {row + 2}: column {col!r} must be {rel} {low}, got {arr[row]}", source=source)
    for col in _UNIT_INTERVAL[kind]:
        arr = df[col].to_numpy(dtype=float)
        bad = (arr < 0) | (arr > 1)
        if bad.any():
            row = _first_bad(bad)
            raise MarketInputError(f"row {row + 2}: column {col!r} must be in [0, 1], got {arr[row]}", source=source)
    dup = df[id_col].duplicated().to_numpy()
    if dup.any():
        row = _first_bad(dup)
        raise MarketInputError(f"row {row + 2}: duplicate {id_col} {df[id_col].iloc[row]!r}", source=source)
    return df.reset_index(drop=True)


@dataclass(frozen=True)
class MarketData:
    """A whole market: both tables, validated (what ``requests/resources.parquet`` hold)."""

    requests: pd.DataFrame
    resources: pd.DataFrame
    #: priority normaliser ``p_max`` (``p~ = p / p_max``)
    priority_max: float = 10.0

    def request_arrays(self) -> dict[str, np.ndarray]:
        """Request columns as contiguous float/int arrays (rows in table order)."""
        df = self.requests
        out = {c: np.ascontiguousarray(df[c].to_numpy(dtype=float)) for c in
               ["cpu", "mem", "budget", "priority", "x", "y", "min_reliability", "min_availability", "max_latency"]}
        out["round"] = df["round"].to_numpy(dtype=np.int64)
        out["duration"] = df["duration"].to_numpy(dtype=np.int64)
        return out

    def resource_arrays(self) -> dict[str, np.ndarray]:
        """Resource columns as contiguous float arrays (rows in table order)."""
        df = self.resources
        return {c: np.ascontiguousarray(df[c].to_numpy(dtype=float)) for c in RESOURCE_COLUMNS[1:]}
