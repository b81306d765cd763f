"""A seeded IoT/edge market generator.

Resources come in three tiers placed on a 200 x 200 map: a few large, reliable, dear
**cloud** servers at two remote sites; **edge** servers grouped around edge sites; and
many small, cheap, less reliable **IoT gateways** scattered everywhere. Users live at a
home location and own requests that arrive uniformly over the rounds (a stationary
market), with log-normal cpu demand, memory proportional to cpu, geometric durations,
budgets from a per-user valuation of a unit of cpu, integer priorities 1..10, and, for a
share of requests, QoS thresholds (reliability, availability, latency as distance).
Capacities are scaled so that demand over capacity equals ``load`` (>1 is contended).

**More dimensions.** A market whose ``dimensions`` name kinds beyond ``cpu`` and ``mem``
(both required here) gets, for each extra kind, a capacity on a seeded share of the
resources (half of them; the others have none, like CPU-only machines in a GPU cluster)
proportional to their cpu, and a demand on a seeded share of the requests (a third)
proportional to their cpu, scaled to the same ``load``. They are drawn from their own
random stream after everything else, so the cpu/mem market of a seed is the same
whatever the extra dimensions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from market.errors import MarketInputError
from scenarios.tables import DEFAULT_DIMENSIONS, MarketData

DEFAULTS = {
    "resources": 200,
    "users": 100,
    "requests": 3000,
    "load": 1.3,
    "duration_mean": 2.0,
    "qos_share": 0.3,
    "unit_demand": False,
}
TIERS = {  # share, cpu range, cost range, reliability range, availability range, energy range
    "cloud": (0.1, (8.0, 16.0), (0.6, 0.9), (0.99, 1.0), (0.995, 1.0), (0.75, 0.95)),
    "edge": (0.3, (2.0, 8.0), (0.4, 0.7), (0.95, 0.99), (0.97, 0.995), (0.6, 0.85)),
    "iot": (0.6, (0.5, 2.0), (0.2, 0.5), (0.8, 0.95), (0.85, 0.97), (0.3, 0.7)),
}


def params(market: dict) -> dict:
    """Generator parameters from a scenario's ``[market]`` table, defaults filled in."""
    out = dict(DEFAULTS)
    for key, value in market.items():
        if key == "source":
            continue
        if key not in DEFAULTS:
            raise MarketInputError(f"unknown key market.{key} for source 'synthetic' (known: {', '.join(DEFAULTS)})")
        if isinstance(value, bool) != isinstance(DEFAULTS[key], bool) or not isinstance(value, int | float):
            raise MarketInputError(f"key market.{key} must be a number, got {value!r}")
        out[key] = value
    for key in ("resources", "users", "requests"):
        if int(out[key]) < 1:
            raise MarketInputError(f"key market.{key} must be >= 1, got {out[key]}")
    if out["load"] <= 0 or out["duration_mean"] < 1:
        raise MarketInputError("keys market.load must be > 0 and market.duration_mean >= 1")
    return out


def _resources(m: int, rng: np.random.Generator) -> pd.DataFrame:
    shares = np.array([t[0] for t in TIERS.values()])
    tier = rng.choice(len(TIERS), size=m, p=shares / shares.sum())
    cols = {k: np.empty(m) for k in ("cpu", "unit_cost", "reliability", "availability", "energy_efficiency")}
    for t, (_, cpu, cost, rel, av, en) in enumerate(TIERS.values()):
        sel = tier == t
        k = int(sel.sum())
        for col, (lo, hi) in zip(cols, (cpu, cost, rel, av, en)):
            cols[col][sel] = rng.uniform(lo, hi, k)
    x = rng.uniform(-100, 100, m)
    y = rng.uniform(-100, 100, m)
    sites = rng.uniform(-80, 80, (8, 2))
    edge = tier == 1
    site = sites[rng.integers(0, len(sites), int(edge.sum()))]
    x[edge] = np.clip(site[:, 0] + rng.normal(0, 12, site.shape[0]), -100, 100)
    y[edge] = np.clip(site[:, 1] + rng.normal(0, 12, site.shape[0]), -100, 100)
    cloud = tier == 0
    corner = rng.integers(0, 2, int(cloud.sum()))
    x[cloud] = np.where(corner == 0, -95.0, 95.0) + rng.normal(0, 2, corner.size)
    y[cloud] = np.where(corner == 0, -95.0, 95.0) + rng.normal(0, 2, corner.size)
    mem = cols["cpu"] * rng.uniform(1.5, 4.0, m)
    return pd.DataFrame({
        "resource_id": np.arange(m), "cpu": cols["cpu"], "mem": mem, "unit_cost": cols["unit_cost"],
        "reliability": cols["reliability"], "availability": cols["availability"],
        "energy_efficiency": cols["energy_efficiency"], "x": x, "y": y,
        "owner_id": rng.integers(0, max(1, m // 10), m), "tier": np.array(list(TIERS))[tier],
    })


def generate(market: dict, rounds: int, rng: np.random.Generator,
             dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS) -> MarketData:
    """Generate a market.

    Args:
        market: the scenario's ``[market]`` table (see :data:`DEFAULTS`).
        rounds: number of rounds requests arrive over and capacity is sized for (the
            scenario's ``horizon``, not the rounds a run plays).
        rng: the generator (the seed fixes the whole market).
        dimensions: the market's resource dimensions; must include ``cpu`` and ``mem``.

    Returns:
        The market in the tabular format.

    Raises:
        MarketInputError: on bad parameters or dimensions without cpu and mem.
    """
    missing = [d for d in DEFAULT_DIMENSIONS if d not in dimensions]
    if missing:
        raise MarketInputError(f"key 'market.dimensions': a synthetic market has cpu and mem; {missing[0]!r} is missing")
    p = params(market)
    m, n_users, n = int(p["resources"]), int(p["users"]), int(p["requests"])
    res = _resources(m, rng)
    home = rng.uniform(-100, 100, (n_users, 2))
    prio = rng.integers(1, 11, n_users)
    taste = rng.lognormal(0.0, 0.35, n_users)  # how much each user values a unit of cpu
    activity = rng.pareto(2.0, n_users) + 1.0
    user = rng.choice(n_users, size=n, p=activity / activity.sum())
    arrival = np.sort(rng.integers(0, rounds, n))
    cpu = np.clip(rng.lognormal(np.log(0.6), 0.7, n), 0.05, 6.0)
    mem = cpu * rng.uniform(0.5, 3.0, n)
    duration = np.minimum(rng.geometric(1.0 / float(p["duration_mean"]), n), 10)
    mean_cost = float(res["unit_cost"].mean())
    budget = cpu * duration * mean_cost * taste[user] * rng.lognormal(0.2, 0.4, n)
    xy = home[user] + rng.normal(0, 10, (n, 2))
    qos = rng.random(n) < float(p["qos_share"])
    req = pd.DataFrame({
        "request_id": np.arange(n), "user_id": user, "round": arrival, "cpu": cpu, "mem": mem,
        "budget": budget, "priority": prio[user].astype(float), "x": xy[:, 0], "y": xy[:, 1],
        "duration": duration, "min_reliability": np.where(qos, rng.uniform(0.5, 0.9, n), 0.0),
        "min_availability": np.where(qos, rng.uniform(0.6, 0.95, n), 0.0),
        "max_latency": np.where(qos, rng.uniform(10, 100, n), np.inf),
    })
    # scale capacity so that (cpu demand per round held) / capacity = load
    held = float((cpu * duration).sum()) / rounds
    scale = held / float(p["load"]) / float(res["cpu"].sum())
    res["cpu"] *= scale
    res["mem"] *= scale
    # every request must fit somewhere: the largest machine gets at least the largest request
    big = int(res["cpu"].to_numpy().argmax())
    res.loc[big, "cpu"] = max(res.loc[big, "cpu"], float(cpu.max()))
    res.loc[big, "mem"] = max(res.loc[big, "mem"], float(mem.max()))
    extra = [d for d in dimensions if d not in DEFAULT_DIMENSIONS]
    if extra:
        _extra_dimensions(req, res, extra, float(p["load"]), rounds, rng.spawn(1)[0])
    return MarketData(req, res.drop(columns="tier"), priority_max=10.0, dimensions=tuple(dimensions))


def _extra_dimensions(req: pd.DataFrame, res: pd.DataFrame, names: list[str], load: float, rounds: int,
                      rng: np.random.Generator) -> None:
    """Add each extra dimension's demand and capacity columns in place (module docstring)."""
    n, m = len(req), len(res)
    cpu_req, cpu_res = req["cpu"].to_numpy(), res["cpu"].to_numpy()
    for name in names:
        has = rng.random(m) < 0.5
        has[int(cpu_res.argmax())] = True  # the largest machine has every kind (every request fits somewhere)
        wants = rng.random(n) < 1 / 3
        demand = np.where(wants, cpu_req * rng.uniform(0.25, 1.0, n), 0.0)
        capacity = np.where(has, cpu_res * rng.uniform(0.5, 1.5, m), 0.0)
        held = float((demand * req["duration"].to_numpy()).sum()) / rounds
        total = float(capacity.sum())
        if held > 0 and total > 0:
            capacity *= held / load / total
        big = int(cpu_res.argmax())
        capacity[big] = max(capacity[big], float(demand.max()) if n else 0.0)
        req[name] = demand
        res[name] = capacity
