"""``market bench``: time whole rounds of a mechanism on a seeded synthetic market.

A timed round is :meth:`market.core.model.MarketModel.step` itself, everything a round
does: the users' bids, routing and candidate generation with utilities, the planners'
auctions and the spill-over, the shared feasibility check, settlement, the price update
and the metrics. Between timed rounds :meth:`~market.core.model.MarketModel.reopen` puts
every request back in the book on idle resources (not timed), so each round re-auctions
the same instance at the new prices (MOHAF's repeated auction). The clustering is built
once with the model, as in every run, and timed on its own (``clustering_s``). One
warm-up round (numba compilation, caches) is not timed.

**Against the authors' package** (``authors=PYTHON``, ``market bench --authors``). After
our rounds, the same market is handed to the authors' own implementation, PyPI ``mohaf``
0.2.0, in a subprocess of another interpreter (its own venv, ``make bench-authors``; the
package is no dependency of the project, so it is measured as published). The market is
written as their command line's JSON (:func:`authors_instance`) and
``authors_driver.py`` (run as a file) builds their ``Resource``/``Request`` objects and
times one ``MOHAFAuction().run_auction`` per process. Their classes are one-dimensional:
a request's ``amount`` and a resource's ``capacity`` are its cpu; memory (and any further
dimension) and the duration travel in the file but no class of theirs takes them.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from market.core.model import MarketModel, check_population, user_population
from market.errors import MarketInputError, MarketWarning
from scenarios.config import parse
from scenarios.synthetic import generate
from scenarios.tables import MarketData

#: the script the authors' interpreter runs (a file: the project never imports it)
AUTHORS_DRIVER = Path(__file__).with_name("authors_driver.py")
#: the release of the authors' package the paper's figures come from
AUTHORS_VERSION = "0.2.0"
#: the authors' resource type every resource of a bench market has (cpu servers)
AUTHORS_RESOURCE_TYPE = "compute"

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
    authors: str | None = None,
    authors_runs: int = 1,
    progress: Callable[[int, int], None] | None = None,
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
        authors: a Python interpreter that can import the authors' ``mohaf``: after our
            rounds, run their MOHAF auction on the same market (module docstring;
            :func:`run_authors`). Checked before our rounds.
        authors_runs: their auction's runs (a fresh process each; 30-80 s each at the
            paper's size).
        progress: ``progress(done, total)`` over the authors' runs.

    Returns:
        ``requests, resources, candidates, clusters, mechanism, round_s`` (median
        seconds per round), ``round_s_all``, ``round_cpu_s`` (median CPU seconds of the
        process per round, every thread's), ``clustering_s``, ``phases`` (median share of
        each phase of a round), ``welfare``, ``allocated`` and ``peak_rss_mb``; with
        ``oracle`` also the oracle's ``rounds`` columns (``opt_welfare``, ``bound_welfare``,
        ``alg_opt``, ``alg_bound``, ``opt_status``, ``opt_scope``, ...), ``oracle_s`` and
        ``oracle_pairs`` (pairs the exact search held); with ``authors`` also the fields of
        :func:`run_authors` and ``speedup`` (their median ``execution_time`` over our
        median round) and ``speedup_with_clustering`` (over our median round plus our
        clustering, which is built once per run while theirs clusters in every auction) and
        ``speedup_cpu`` (their median CPU time in the auction over our median CPU time per
        round, both every thread's: a cross-check of the clocks on a busy machine, not a
        clean figure either, since our round's parallel kernels count the time their
        threads spin and their scikit-learn k-means may run threads too).

    Raises:
        MarketInputError: on a bad size or mechanism parameter, or an ``authors``
            interpreter that is missing or cannot import ``mohaf``.
    """
    if authors is not None:
        if mechanism != "mohaf":
            raise MarketInputError(
                f"bench: --authors runs the authors' MOHAF; it compares with --mechanism mohaf, got {mechanism!r}"
            )
        if authors_runs < 1:
            raise MarketInputError(f"bench: --authors-runs must be at least 1, got {authors_runs}")
        authors_versions = probe_authors(authors)
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
    times, cpu_times, phases = [], [], []
    for r in range(rounds + 1):
        if r:
            model.reopen()
        t1, c1 = time.perf_counter(), time.process_time()
        model.step()
        elapsed, cpu = time.perf_counter() - t1, time.process_time() - c1
        if r == 0:
            continue  # warm-up
        times.append(elapsed)
        cpu_times.append(cpu)
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
        "round_cpu_s": round(statistics.median(cpu_times), 6),
        "clustering_s": round(clustering_s, 6),
        "phases": share,
        "welfare": round(record.outcome.welfare, 6),
        "allocated": int((record.outcome.resource >= 0).sum()),
        **quality,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **(
            _side_by_side(
                run_authors(authors, market, authors_runs, authors_versions, progress),
                median,
                clustering_s,
                statistics.median(cpu_times),
            )
            if authors is not None
            else {}
        ),
    }


def _side_by_side(theirs: dict, round_s: float, clustering_s: float, round_cpu_s: float) -> dict:
    """The authors' fields and the ratios of their times to our round's."""
    return {
        **theirs,
        "speedup": round(theirs["authors_execution_time_s"] / round_s, 1),
        "speedup_with_clustering": round(
            theirs["authors_execution_time_s"] / (round_s + clustering_s), 1
        ),
        "speedup_cpu": round(theirs["authors_cpu_s"] / round_cpu_s, 1) if round_cpu_s > 0 else None,
    }


def authors_instance(market: MarketData) -> dict:
    """A market as the authors' classes take it, in their command line's JSON format.

    Every resource is of their ``compute`` type (a bench market's resources are cpu/memory
    servers); ``capacity`` is its cpu and ``cost_per_unit`` its unit cost. A request's
    ``amount`` is its cpu, ``max_price`` its budget, ``priority`` its integer priority,
    ``requester_id`` its user, ``qos_requirements`` its ``min_reliability``,
    ``min_availability`` and ``max_latency`` (infinite: none), ``deadline`` its deadline
    (infinite: none). The other dimensions (memory, ...) and the duration are carried as
    extra keys, which their classes do not take (``dropped``). Ids are strings; infinities
    are JSON ``Infinity`` (Python's ``json`` reads them, so does ``mohaf --input``).

    Args:
        market: the market.

    Returns:
        ``{"resources": [...], "requests": [...], "dropped": [...]}``.
    """
    req, res = market.requests, market.resources
    arrays = market.request_arrays()
    extra = [d for d in market.dimensions if d != "cpu"]
    owners = res["owner_id"] if "owner_id" in res else res["resource_id"]
    resources = [
        {
            "id": f"resource_{rid}",
            "type": AUTHORS_RESOURCE_TYPE,
            "capacity": float(row.cpu),
            "cost_per_unit": float(row.unit_cost),
            "location": [float(row.x), float(row.y)],
            "availability": float(row.availability),
            "reliability": float(row.reliability),
            "energy_efficiency": float(row.energy_efficiency),
            "owner_id": f"owner_{owner}",
            **{d: float(getattr(row, d)) for d in extra},
        }
        for rid, owner, row in zip(res["resource_id"], owners, res.itertuples(index=False))
    ]
    requests = [
        {
            "id": f"request_{qid}",
            "requester_id": f"requester_{uid}",
            "resource_type": AUTHORS_RESOURCE_TYPE,
            "amount": float(arrays["cpu"][i]),
            "max_price": float(arrays["budget"][i]),
            "deadline": float(arrays["deadline"][i]),
            "priority": round(float(arrays["priority"][i])),
            "location": [float(arrays["x"][i]), float(arrays["y"][i])],
            "qos_requirements": {
                k: float(arrays[k][i])
                for k in ("min_reliability", "min_availability", "max_latency")
            },
            **{d: float(arrays[d][i]) for d in extra},
            "duration": int(arrays["duration"][i]),
        }
        for i, (qid, uid) in enumerate(zip(req["request_id"], req["user_id"]))
    ]
    return {"resources": resources, "requests": requests, "dropped": [*extra, "duration"]}


def _authors_python(python: str) -> str:
    """The interpreter ``--authors`` names (a path or a name on PATH), or a one-line error."""
    found = shutil.which(python)
    if found is None:
        raise MarketInputError(
            f"bench: --authors {python}: no such Python interpreter (give the Python of a venv with the authors' "
            f"mohaf=={AUTHORS_VERSION}, e.g. .venv-authors/bin/python, which 'make bench-authors' creates)"
        )
    return found


def _driver(python: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the driver with the authors' interpreter; the process and its wall-clock seconds."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [python, str(AUTHORS_DRIVER), *args], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise MarketInputError(
            f"bench: --authors {python}: cannot run it ({exc.strerror or exc})"
        ) from exc
    return proc, time.perf_counter() - t0


def _answer(python: str, proc: subprocess.CompletedProcess, what: str) -> dict:
    """The driver's JSON line, or a one-line error naming ``--authors`` and its last words."""
    last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "")
    if proc.returncode == 0:
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            last = f"no JSON answer: {proc.stdout.strip()[:200]!r}"
    raise MarketInputError(
        f"bench: --authors {python}: {what} ({last or f'exit code {proc.returncode}'})"
    )


def probe_authors(python: str) -> dict:
    """Check that ``python`` runs and imports the authors' ``mohaf``; return the versions.

    Args:
        python: the interpreter (a path or a name on PATH).

    Returns:
        ``{"mohaf": ..., "python": ..., "numpy": ..., "scipy": ..., "scikit-learn": ...}``.

    Raises:
        MarketInputError: one line naming ``--authors``: no such interpreter, it cannot
            run, or mohaf (or a dependency of it) does not import there.
    """
    python = _authors_python(python)
    proc, _ = _driver(python, "--probe")
    hint = f"make bench-authors installs mohaf=={AUTHORS_VERSION} in .venv-authors"
    found = _answer(python, proc, f"mohaf is not importable there; {hint}")
    versions = found.get("versions") if isinstance(found, dict) else None
    if not isinstance(versions, dict):
        raise MarketInputError(
            f"bench: --authors {python}: the driver answered {found!r}, not the versions"
        )
    if versions.get("mohaf") != AUTHORS_VERSION:
        warnings.warn(
            f"bench: --authors {python} has mohaf {versions.get('mohaf')}, not {AUTHORS_VERSION} (the "
            "paper's release); measured all the same",
            MarketWarning,
            stacklevel=2,
        )
    return versions


def run_authors(
    python: str,
    market: MarketData,
    runs: int = 1,
    versions: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Run the authors' MOHAF auction on ``market``, ``runs`` times, each in a fresh process.

    The market is written (:func:`authors_instance`) to a temporary directory, removed
    afterwards. Their ``execution_time`` is what their ``run_auction`` reports: the
    ``time.time()`` span of its clustering, bid generation, allocation and price update.
    ``wall`` is the driver's clock around that call, which also holds the whole-market
    pass that computes their ``max_possible_utility`` after the clock stopped; ``process``
    is our clock around the subprocess (interpreter start, imports, reading the file,
    building their objects); ``cpu`` is their process's CPU time in the call (all threads).

    Args:
        python: the authors' interpreter (checked with :func:`probe_authors` if
            ``versions`` is None).
        market: the market.
        runs: their auction's runs.
        versions: the probe's answer, if already had.
        progress: ``progress(done, runs)`` after each run (and ``(0, runs)`` first).

    Returns:
        ``authors_execution_time_s``, ``authors_wall_s`` and ``authors_cpu_s`` (medians
        over the runs),
        ``authors_execution_time_s_all``, ``authors_wall_s_all``, ``authors_process_s_all``,
        ``authors_runs``, ``authors_requests`` and ``authors_resources`` (the objects their
        auction got), ``authors_dropped`` (fields no class of theirs takes),
        ``authors_allocated`` (their allocations), ``authors_bids`` (the bids their
        auction printed it generated), ``authors_peak_rss_mb``, ``authors_versions``.

    Raises:
        MarketInputError: on a bad interpreter or a failed run (one line naming ``--authors``).
    """
    if versions is None:
        versions = probe_authors(python)
    python = _authors_python(python)
    instance = authors_instance(market)
    done: list[dict] = []
    process: list[float] = []
    if progress is not None:
        progress(0, runs)
    with tempfile.TemporaryDirectory(prefix="market-authors-") as tmp:
        path = Path(tmp) / "instance.json"
        path.write_text(json.dumps(instance), encoding="utf-8")
        for k in range(runs):
            proc, seconds = _driver(python, str(path))
            done.append(_answer(python, proc, f"the authors' run {k + 1} of {runs} failed"))
            process.append(seconds)
            if progress is not None:
                progress(k + 1, runs)
    first = done[0]
    bids = next(
        (int(m.group(1)) for line in first["log"] if (m := re.search(r"Generated (\d+)", line))),
        None,
    )
    return {
        "authors_execution_time_s": round(
            statistics.median(d["execution_time_s"] for d in done), 6
        ),
        "authors_wall_s": round(statistics.median(d["wall_s"] for d in done), 6),
        "authors_cpu_s": round(statistics.median(d["cpu_s"] for d in done), 6),
        "authors_execution_time_s_all": [round(d["execution_time_s"], 6) for d in done],
        "authors_wall_s_all": [round(d["wall_s"], 6) for d in done],
        "authors_process_s_all": [round(s, 3) for s in process],
        "authors_runs": runs,
        "authors_requests": first["requests"],
        "authors_resources": first["resources"],
        "authors_dropped": instance["dropped"],
        "authors_allocated": first["allocated"],
        "authors_bids": bids,
        "authors_peak_rss_mb": max(
            (d["peak_rss_mb"] for d in done if d.get("peak_rss_mb") is not None), default=None
        ),
        "authors_versions": versions,
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
        market), ``resources``, ``candidates`` (per request), ``clusters``, ``dimensions``,
        ``population`` (strategy shares), ``owners``, ``peak_rss_mb``.

    Raises:
        MarketInputError: on a bad scenario, key or value.
    """
    from scenarios import config

    sc = config.load(scenario)
    market, llm = dict(sc.market), dict(sc.llm)
    horizon = sc.horizon
    for key, value in (settings or {}).items():
        table, _, name = key.partition(".")
        if key == "horizon":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MarketInputError(f"bench: --set horizon must be a whole number of rounds >= 1, got {value!r}")
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
        # the keys Contract 5 names for every bench (the synthetic bench's, as they apply here)
        "resources": model.n_resources,
        "candidates": model.params_k,
        "clusters": model.hierarchy.n_clusters,
        "dimensions": len(sc.dimensions),
        "population": dict(user_population(sc)[0]),
        "owners": sc.owners.strategy,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
