"""``market bench``: time whole rounds of a mechanism on a seeded synthetic market.

A timed round is everything a round does (DESIGN.md §3): clustering of the resources
(recomputed every round here, although the model caches it), routing and candidate
generation with utilities, the auction, the shared feasibility check, settlement and the
price update, and the metrics. All requests are in the order book every round and the
capacity is reset, so each round re-auctions the same instance at the new prices
(MOHAF_SPEC §3.7). One warm-up round (numba compilation, caches) is not timed.
"""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np

from market.core.engine import OrderBook, RoundParams, clear_round
from market.core.hierarchy import FEATURES, build_hierarchy
from market.core.metrics import power, round_metrics
from market.core.model import auto_candidates, auto_clusters
from market.core.pricing import PriceRule, utilization
from mechanisms import create
from mechanisms.optimal import Optimal
from scenarios.synthetic import generate


def oracle_quality(
    book: OrderBook, matrix: np.ndarray, res: dict, capacity: np.ndarray, hierarchy: object,
    params: RoundParams, start_won: np.ndarray, welfare: float, time_limit: float,
) -> dict:
    """Welfare against the exact optimum (MILP) and the LP upper bound of one round.

    ``alg_opt`` divides by the best proven upper bound: the MILP optimum when proven,
    else the smaller of the MILP dual bound and the LP bound (so it never flatters).
    """
    rng = np.random.default_rng(0)
    lp = clear_round(book, matrix, res, capacity, hierarchy, Optimal(time_limit, relax=True), rng, params, start_won)
    opt = clear_round(book, matrix, res, capacity, hierarchy, Optimal(time_limit), rng, params, start_won)
    bounds = [b for b in (lp.bound, opt.bound) if b is not None and np.isfinite(b)]
    bound = opt.welfare if opt.proven_optimal else max(min(bounds, default=np.inf), opt.welfare)
    return {
        "lp_bound": round(float(lp.bound), 6), "opt_welfare": round(opt.welfare, 6),
        "opt_proven": bool(opt.proven_optimal), "upper_bound": round(float(bound), 6),
        "alg_opt": round(welfare / bound, 6) if np.isfinite(bound) and bound > 0 else None,
    }


def bench(
    requests: int = 3553,
    resources: int = 888,
    mechanism: str = "mohaf",
    rounds: int = 7,
    candidates: int = 0,
    clusters: int = 0,
    seed: int = 0,
    oracle: float = 0.0,
    params: dict | None = None,
) -> dict:
    """Time ``rounds`` rounds and return the figures as a dict (see DESIGN.md §5.5).

    Args:
        requests: requests in the order book every round.
        resources: resources.
        mechanism: registered mechanism name.
        rounds: timed rounds (after one untimed warm-up round).
        candidates: K (0 = automatic, as the model does).
        clusters: clusters (0 = automatic).
        seed: market and clustering seed.
        params: the mechanism's parameters.
        oracle: if > 0, solve the last round's market exactly (MILP, this many seconds,
            not timed) and report the quality ``alg_opt`` = welfare / proven upper bound.

    Returns:
        ``requests, resources, candidates, clusters, mechanism, round_s`` (median
        seconds per round), ``round_s_all``, ``phases`` (median share of each phase),
        ``welfare``, ``allocated`` and ``peak_rss_mb``; with ``oracle`` also
        ``opt_bound``, ``opt_proven`` and ``alg_opt``.
    """
    rng = np.random.default_rng(seed)
    market = generate(
        {"resources": resources, "users": max(1, requests // 10), "requests": requests, "qos_share": 0.3},
        1, rng,
    )
    req = market.request_arrays()
    req["priority"] = req["priority"] / market.priority_max
    res = {c: market.resources[c].to_numpy(dtype=float) for c in FEATURES}
    m = resources
    k = candidates or auto_candidates(m)
    n_clusters = clusters or auto_clusters(m)
    user = np.unique(market.requests["user_id"].to_numpy(), return_inverse=True)[1]
    need = np.column_stack([req["cpu"], req["mem"]])
    book = OrderBook(req, user, np.ones(requests), need)
    capacity = np.column_stack([res["cpu"], res["mem"]])
    energy = res["energy_efficiency"]
    energy_norm = (energy - energy.min()) / max(float(np.ptp(energy)), 1e-12)
    features = np.column_stack([res[c] for c in FEATURES])
    mech = create(mechanism, **(params or {}))
    params = RoundParams(candidates=k)
    rule = PriceRule(eta=0.02)
    price = res["unit_cost"].copy()
    start_won = np.zeros(int(user.max()) + 1 if user.size else 0)
    times, phases, outcome = [], [], None
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        hierarchy = build_hierarchy(features, n_clusters, np.random.default_rng([seed, 1]))
        t1 = time.perf_counter()
        matrix = np.column_stack([res["x"], res["y"], res["cpu"], res["mem"], price, res["reliability"], res["availability"], energy_norm])
        outcome = clear_round(book, matrix, res, capacity, hierarchy, mech, np.random.default_rng([seed, 2, r]), params, start_won)
        t2 = time.perf_counter()
        used = np.zeros_like(capacity)
        served = outcome.resource >= 0
        np.add.at(used, outcome.resource[served], need[served])
        load = utilization(used, capacity)
        new_price = rule.step(price, load, r, res["unit_cost"])
        t3 = time.perf_counter()
        round_metrics(outcome.utility, served, outcome.payment, req["budget"] * outcome.base_utility, user,
                      used[:, 0], capacity[:, 0], load, power(load, energy), price)
        price = new_price
        t4 = time.perf_counter()
        if r == 0:
            continue  # warm-up
        times.append(t4 - t0)
        phases.append({
            "clustering": t1 - t0,
            "candidates_utilities": outcome.timings["candidates_ms"] / 1e3,
            "allocation": outcome.timings["alloc_ms"] / 1e3,
            "validation": outcome.timings["validate_ms"] / 1e3,
            "settle_pricing": t3 - t2,
            "metrics": t4 - t3,
        })
    quality = {}
    if oracle > 0:
        # the same market state the last timed round saw: its prices, empty capacity
        quality = oracle_quality(book, matrix, res, capacity, hierarchy, params, start_won, outcome.welfare, oracle)
    median = statistics.median(times)
    share = {name: round(statistics.median(p[name] for p in phases) / median, 4) for name in phases[0]}
    return {
        "requests": requests,
        "resources": resources,
        "candidates": k,
        "clusters": hierarchy.n_clusters,
        "mechanism": mechanism,
        "rounds": rounds,
        "round_s": round(median, 6),
        "round_s_all": [round(t, 6) for t in times],
        "phases": share,
        "welfare": round(outcome.welfare, 6),
        "allocated": int((outcome.resource >= 0).sum()),
        **quality,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
