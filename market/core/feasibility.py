"""The one shared feasibility check every allocation passes (README, "Architecture": one round).

Single assignment, capacity in every resource dimension including requests still
running from earlier rounds, eligibility (a request with ``allowed_types`` only on a
resource of one of those types), ``0 <= payment <= budget``, and QoS thresholds
(reliability, availability, latency). A violation is a bug in a mechanism: it raises
:class:`InfeasibleAllocationError`, it is never repaired.

:func:`check_round` checks one round from arrays inside the engine.
:func:`check_run_tables` re-checks a whole run from its written tables with pandas,
independently of the engine's arrays, for tests and users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from market.core.eligibility import BITS, SHIFT, eligible_pairs
from scenarios.tables import DEFAULT_DIMENSIONS

TOL = 1e-9


class InfeasibleAllocationError(AssertionError):
    """A mechanism returned an allocation that breaks a market constraint."""


def _fail(what: str, rows: np.ndarray) -> None:
    raise InfeasibleAllocationError(f"{what} (rows {rows[:5].tolist()})")


def check_round(
    resource: np.ndarray,
    payment: np.ndarray,
    requests: dict[str, np.ndarray],
    resources: dict[str, np.ndarray],
    need: np.ndarray,
    free: np.ndarray,
) -> None:
    """Check one round's allocation.

    Args:
        resource: ``(N,)`` global resource of each order-book request, -1 if unserved.
        payment: ``(N,)`` payments.
        requests: order-book columns (``demand`` ``(N, D)``, ``budget, x, y,
            min_reliability, min_availability, max_latency`` each ``(N,)``, optional
            ``allowed`` ``(N, W)`` eligibility masks).
        resources: resource columns (``capacity`` ``(M, D)``, ``type`` codes,
            ``reliability, availability, x, y``).
        need: ``(N, E)`` demand in allocation units.
        free: ``(M, E)`` free capacity in allocation units before this round.

    Raises:
        InfeasibleAllocationError: on the first violated constraint.
    """
    served = np.flatnonzero(resource >= 0)
    if np.any(payment[resource < 0] != 0):
        _fail("unserved request pays", np.flatnonzero((resource < 0) & (payment != 0)))
    if not np.all(np.isfinite(payment)):
        _fail("non-finite payment", np.flatnonzero(~np.isfinite(payment)))
    if np.any(payment < 0):
        _fail("negative payment", np.flatnonzero(payment < 0))
    over = payment > requests["budget"] * (1 + TOL) + TOL
    if np.any(over):
        _fail("payment above budget", np.flatnonzero(over))
    if served.size == 0:
        return
    j = resource[served]
    # the round's load on each resource, per unit: one bincount per column (np.add.at on
    # zeros, request after request, at a tenth of the time)
    used = np.zeros_like(free)
    for e in range(free.shape[1]):
        used[:, e] = np.bincount(j, need[served, e], minlength=free.shape[0])
    bad = np.any(used > free + TOL * (1 + np.abs(free)), axis=1)
    if np.any(bad):
        _fail("capacity exceeded on resources", np.flatnonzero(bad))
    # np.take along axis 0: the rows of ``a[served]``, several times faster for 2-d arrays
    too_big = np.any(requests["demand"].take(served, axis=0) > resources["capacity"].take(j, axis=0) * (1 + TOL) + TOL,
                     axis=1)
    if np.any(too_big):
        _fail("request demand above resource capacity", served[too_big])
    if "allowed" in requests and requests["allowed"].shape[1]:
        code = resources["type"][j].astype(np.int64)
        word = requests["allowed"][served, code >> SHIFT]
        barred = ((word >> (code & (BITS - 1))) & 1) == 0
        if np.any(barred):
            _fail("resource type not allowed by the request", served[barred])
    for req_col, res_col in (("min_reliability", "reliability"), ("min_availability", "availability")):
        low = resources[res_col][j] < requests[req_col][served] - TOL
        if np.any(low):
            _fail(f"{res_col} below the request's threshold", served[low])
    dist = np.hypot(resources["x"][j] - requests["x"][served], resources["y"][j] - requests["y"][served])
    far = dist > requests["max_latency"][served] * (1 + TOL) + TOL
    if np.any(far):
        _fail("latency above the request's threshold", served[far])


def check_run_tables(
    requests: pd.DataFrame,
    resources: pd.DataFrame,
    allocations: pd.DataFrame,
    capacity: str = "sum",
    slots: int = 1,
    dimensions: tuple[str, ...] | list[str] = DEFAULT_DIMENSIONS,
) -> int:
    """Re-check a whole run from its written tables (one seed's market).

    Independent of the engine's arrays: pandas joins on the ids, eligibility by the type
    names (``allowed_types`` split on ``|``), capacity per dimension and round.

    Args:
        requests: the ``requests`` table (tabular format).
        resources: the ``resources`` table.
        allocations: rows ``mechanism, round, request_id, resource_id, payment``.
        capacity: ``"sum"`` (demands add up in every dimension) or ``"slots"``
            (``slots`` requests per resource at once, each fitting the whole machine).
        slots: requests per resource under ``"slots"``.
        dimensions: the market's dimensions (the run's ``market.dimensions``).

    Returns:
        The number of allocation rows checked.

    Raises:
        InfeasibleAllocationError: on the first violated constraint.
    """
    dims = list(dimensions)
    missing = [d for d in dims if d not in requests.columns or d not in resources.columns]
    if missing:
        raise ValueError(f"dimension {missing[0]!r} is not a column of both tables")
    requests, resources, allocations = _same_ids(requests, resources, allocations)
    req = requests.set_index("request_id")
    res = resources.set_index("resource_id")
    for mech, alloc in allocations.groupby("mechanism", sort=True):
        if alloc["request_id"].duplicated().any():
            raise InfeasibleAllocationError(f"{mech}: a request served twice")
        unknown = ~alloc["request_id"].isin(req.index) | ~alloc["resource_id"].isin(res.index)
        if unknown.any():
            row = alloc[unknown].iloc[0]
            raise InfeasibleAllocationError(f"{mech}: an allocation names a request or resource not in the tables "
                                            f"(request_id {row['request_id']!r}, resource_id {row['resource_id']!r})")
        a = alloc.join(req, on="request_id", rsuffix="_req").join(res, on="resource_id", rsuffix="_res")
        if (a["round"] < a["round_req"]).any():
            raise InfeasibleAllocationError(f"{mech}: a request served before it arrived")
        if ((a["payment"] < 0) | (a["payment"] > a["budget"] * (1 + TOL) + TOL)).any():
            raise InfeasibleAllocationError(f"{mech}: a payment outside [0, budget]")
        for d in dims:
            if (a[d] > a[f"{d}_res"] * (1 + TOL) + TOL).any():
                raise InfeasibleAllocationError(f"{mech}: a request larger than its machine in {d}")
        if "allowed_types" in a and "resource_type" in a:
            ok = eligible_pairs(a["allowed_types"].fillna(""), a["resource_type"].fillna(""))
            if not ok.all():
                row = a[~ok].iloc[0]
                raise InfeasibleAllocationError(
                    f"{mech}: request {row['request_id']!r} (allowed types {row['allowed_types']!r}) placed on "
                    f"resource {row['resource_id']!r} of type {row['resource_type']!r}")
        if (a["reliability"] < a["min_reliability"] - TOL).any() or (a["availability"] < a["min_availability"] - TOL).any():
            raise InfeasibleAllocationError(f"{mech}: a QoS threshold broken")
        dist = np.hypot(a["x_res"] - a["x"], a["y_res"] - a["y"])
        if (dist > a["max_latency"] * (1 + TOL) + TOL).any():
            raise InfeasibleAllocationError(f"{mech}: a latency threshold broken")
        # expand each allocation over the rounds it holds its machine
        dur = a["duration"].astype(int).to_numpy()
        held = a.loc[a.index.repeat(dur)].copy()
        held["held_round"] = held["round"].to_numpy() + np.concatenate([np.arange(d) for d in dur]) if dur.size else []
        if capacity == "slots":
            load = held.groupby(["resource_id", "held_round"]).size()
            if (load > slots).any():
                raise InfeasibleAllocationError(f"{mech}: more than {slots} requests on a resource at once")
        else:
            load = held.groupby(["resource_id", "held_round"])[dims].sum()
            cap = res.loc[load.index.get_level_values(0), dims].to_numpy()
            if (load.to_numpy() > cap * (1 + TOL) + TOL).any():
                raise InfeasibleAllocationError(f"{mech}: capacity exceeded")
    return len(allocations)


def _same_ids(
    requests: pd.DataFrame, resources: pd.DataFrame, allocations: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Ids of one kind compared as text when the tables hold them in different dtypes.

    Ids are int64 or str (README contract 2); a CSV read back without ``dtype=str`` may
    parse string ids that look like integers as numbers in one table and not in another.
    The decimal text of an int64 is the id as written, so comparing as text is exact.
    """
    for col, table in (("request_id", "requests"), ("resource_id", "resources")):
        tables = {"requests": requests, "resources": resources}
        if tables[table][col].dtype != allocations[col].dtype:
            tables[table] = tables[table].assign(**{col: tables[table][col].astype(str)})
            allocations = allocations.assign(**{col: allocations[col].astype(str)})
        requests, resources = tables["requests"], tables["resources"]
    return requests, resources, allocations
