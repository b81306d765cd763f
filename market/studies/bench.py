"""``market bench``: time whole rounds of a mechanism on a seeded synthetic market.

A timed round is :meth:`market.core.model.MarketModel.step` itself, everything a round
does: the users' bids, routing and candidate generation with utilities, the planners'
auctions and the spill-over, the shared feasibility check, settlement, the price update
and the metrics. Between timed rounds :meth:`~market.core.model.MarketModel.reopen` puts
every request back in the book on idle resources (not timed), so each round re-auctions
the same instance at the new prices (MOHAF's repeated auction). The clustering is built
once with the model, as in every run, and timed on its own (``clustering_s``). One
warm-up round (numba compilation, caches) is not timed.
"""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import numpy as np

from market.core.model import MarketModel, check_population, user_population
from market.errors import MarketInputError
from scenarios.config import parse
from scenarios.synthetic import generate

#: the dimensions of a bench market with D of them: the first D of these, then ``r<d>``
DIMENSION_NAMES = ("cpu", "mem", "gpu", "disk", "net")


def bench_dimensions(d: int) -> list[str]:
    """The ``d`` dimension names of a bench market (``d >= 2``; cpu and mem first)."""
    if d < 2:
        raise MarketInputError(f"bench: --dimensions must be at least 2 (cpu and mem), got {d}")
    return [*DIMENSION_NAMES[:d], *(f"r{k}" for k in range(len(DIMENSION_NAMES), d))]


def bench_scenario(
    requests: int,
    resources: int,
    mechanism: str,
    rounds: int,
    candidates: int,
    clusters: int,
    params: dict | None,
    dimensions: int = 2,
    population: str = "truthful",
    owners: str = "fixed",
) -> dict:
    """The scenario ``market bench`` runs (as a scenario dict, validated by :func:`parse`)."""
    return {
        "users": {"mix": {population: 1.0}},
        "owners": {"strategy": owners},
        "name": "bench",
        "rounds": rounds + 1,
        "seeds": [0],
        "mechanisms": [mechanism],
        "market": {
            "source": "synthetic",
            "resources": resources,
            "users": max(1, requests // 10),
            "requests": requests,
            "qos_share": 0.3,
            "dimensions": bench_dimensions(dimensions),
        },
        "pricing": {"eta": 0.02, "target": 0.8},
        "clustering": {"clusters": clusters, "candidates": candidates},
        # every request waits for the whole run (the book is reopened every round)
        "settlement": {"patience": rounds + 1},
        "mechanism_params": {mechanism: dict(params or {})},
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
    dimensions: int = 2,
    population: str = "truthful",
    owners: str = "fixed",
) -> dict:
    """Time ``rounds`` rounds and return the figures as a dict.

    Args:
        requests: requests in the order book every round.
        resources: resources.
        mechanism: registered mechanism name.
        rounds: timed rounds (after one untimed warm-up round).
        candidates: K (0 = automatic, as the model does).
        clusters: clusters (0 = automatic).
        seed: market and clustering seed.
        params: the mechanism's parameters.
        dimensions: resource dimensions D of the synthetic market (cpu, mem, then gpu,
            disk, net, ...: :func:`bench_dimensions`); the extra ones come from the
            generator's own stream, so the cpu/mem market is the same for every D.
        oracle: if > 0, solve the last round's whole market with the model's own
            yardstick (:meth:`~market.core.model.MarketModel.optimum`, each solver call
            limited to this many seconds, timed apart from the round) and report it.
        population: the strategy every user plays (a registered name: ``truthful``,
            ``learning``, ``pacing``, ...; the cost of strategic agents is measured by
            comparing runs that differ only in this).
        owners: the owners' reserve strategy (``fixed``: no reserve; ``learning``).

    Returns:
        ``requests, resources, candidates, clusters, mechanism, round_s`` (median
        seconds per round), ``round_s_all``, ``clustering_s``, ``phases`` (median share of
        each phase of a round), ``welfare``, ``allocated`` and ``peak_rss_mb``; with
        ``oracle`` also the oracle's ``rounds`` columns (``opt_welfare``, ``bound_welfare``,
        ``alg_opt``, ``alg_bound``, ``opt_status``, ``opt_scope``, ...), ``oracle_s`` and
        ``oracle_pairs`` (pairs the exact search held).

    Raises:
        MarketInputError: on a bad size or mechanism parameter.
    """
    if rounds < 1:
        raise MarketInputError(f"bench: --rounds must be at least 1 (timed rounds), got {rounds}")
    if oracle < 0:
        raise MarketInputError(
            f"bench: --oracle must be a time limit in seconds >= 0 (0 = no oracle), got {oracle}"
        )
    raw = bench_scenario(
        requests,
        resources,
        mechanism,
        rounds,
        candidates,
        clusters,
        params,
        dimensions,
        population,
        owners,
    )
    if oracle > 0:
        # the time limit stops the search (nodes unbounded): the bench measures the solver
        raw["oracle_params"] = {"time_limit": float(oracle), "node_limit": 10**9}
    scenario = parse(raw, "market bench", Path.cwd())
    rng = np.random.default_rng(seed)
    # one round of arrivals: every request is in the book of every (reopened) round
    market = generate(
        {k: v for k, v in scenario.source_params().items() if k != "source"},
        1,
        rng,
        scenario.dimensions,
    )
    t0 = time.perf_counter()
    model = MarketModel(
        scenario, mechanism=mechanism, rng=seed, market=market
    )  # no oracle, no flat clearing
    clustering_s = time.perf_counter() - t0
    times, phases = [], []
    for r in range(rounds + 1):
        if r:
            model.reopen()
        t1 = time.perf_counter()
        model.step()
        elapsed = time.perf_counter() - t1
        if r == 0:
            continue  # warm-up
        times.append(elapsed)
        phases.append(
            {
                name.removesuffix("_ms"): ms / 1e3
                for name, ms in model.timings.items()
                if name != "oracle_ms"
            }
        )
    record = model.record
    quality = {}
    if oracle > 0:
        t_oracle = time.perf_counter()
        found = model.optimum(record)
        oracle_s = time.perf_counter() - t_oracle
        yardstick = found.metrics(record.metrics["welfare"], record.metrics["value_welfare"])
        quality = {
            **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in yardstick.items()},
            "oracle_s": round(oracle_s, 3),
            "oracle_pairs": found.pairs,
        }
    median = statistics.median(times)
    share = {
        name: round(statistics.median(p[name] for p in phases) / median, 4) for name in phases[0]
    }
    share["other"] = round(max(0.0, 1.0 - sum(share.values())), 4)
    return {
        "requests": requests,
        "resources": resources,
        "candidates": model.params_k,
        "clusters": model.hierarchy.n_clusters,
        "mechanism": mechanism,
        "dimensions": len(scenario.dimensions),
        "population": population,
        "owners": owners,
        "rounds": rounds,
        "round_s": round(median, 6),
        "round_s_all": [round(t, 6) for t in times],
        "clustering_s": round(clustering_s, 6),
        "phases": share,
        "welfare": round(record.outcome.welfare, 6),
        "allocated": int((record.outcome.resource >= 0).sum()),
        **quality,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def bench_rounds(
    scenario: str,
    mechanism: str = "mohaf",
    rounds: int = 7,
    seed: int | None = None,
    settings: dict | None = None,
    population: str | None = None,
    owners: str | None = None,
) -> dict:
    """Time the first ``rounds`` rounds of a scenario's own market, as a run plays them.

    Args:
        scenario: a shipped scenario name or a file.
        mechanism: the mechanism.
        rounds: rounds timed (after one untimed warm-up round; the market's horizon is
            kept, so these are its first rounds).
        seed: the market's seed (default: the scenario's first).
        settings: ``{"market.KEY" | "llm.KEY": value}`` changes (e.g. ``market.rate = 4``),
            or ``{"horizon": rounds}`` (the rounds the market spans).
        population: every user plays this registered strategy (None: the scenario's mix).
        owners: the owners' strategy, ``fixed`` or ``learning`` (None: the scenario's).

    Returns:
        ``scenario, mechanism, rounds, build_s`` (building the market and model),
        ``round_s`` (median seconds per round), ``round_s_max``, ``requests`` (rows of the
        market), ``population`` (strategy shares), ``owners``, ``peak_rss_mb``.

    Raises:
        MarketInputError: on a bad scenario, key or value.
    """
    from scenarios import config

    sc = config.load(scenario)
    market, llm = dict(sc.market), dict(sc.llm)
    horizon = sc.horizon
    for key, value in (settings or {}).items():
        table, _, name = key.partition(".")
        if (
            key == "horizon"
            and isinstance(value, int)
            and not isinstance(value, bool)
            and value >= 1
        ):
            horizon = value
            continue
        if table not in ("market", "llm") or not name:
            raise MarketInputError(
                f"bench: --set expects market.KEY=VALUE, llm.KEY=VALUE or horizon=ROUNDS, got {key!r}"
            )
        (market if table == "market" else llm)[name] = value
    raw = {**sc.to_dict(), "market": market, "llm": llm, "horizon": horizon}
    if not llm:  # an [llm] table belongs to LLM-serving markets only
        del raw["llm"]
    sc = parse(
        {k: v for k, v in raw.items() if k not in ("path",) and v is not None},
        sc.path or "market bench",
        Path(sc.path).parent if sc.path else Path.cwd(),
    )
    if rounds < 1:
        raise MarketInputError(f"bench: --rounds must be at least 1, got {rounds}")
    sc = sc.replace(rounds=rounds + 1, horizon=max(sc.horizon, rounds + 1))
    if population is not None:
        sc = sc.replace(users=sc.users.replace(shading_share=0.0, mix={population: 1.0}))
    if owners is not None:
        sc = sc.replace(owners=sc.owners.replace(strategy=owners))
    check_population(sc)
    t0 = time.perf_counter()
    model = MarketModel(
        sc.replace(oracle=False, compare_flat=False),
        mechanism=mechanism,
        rng=sc.seeds[0] if seed is None else seed,
    )
    build_s = time.perf_counter() - t0
    times = []
    for r in range(rounds + 1):
        t1 = time.perf_counter()
        model.step()
        if r:
            times.append(time.perf_counter() - t1)
    return {
        "scenario": sc.name,
        "mechanism": mechanism,
        "rounds": rounds,
        "build_s": round(build_s, 3),
        "round_s": round(statistics.median(times), 6),
        "round_s_max": round(max(times), 6),
        "requests": len(model.market.requests),
        "population": dict(user_population(sc)[0]),
        "owners": sc.owners.strategy,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
