"""MarketModel: the Mesa model. One ``step()`` is one auction-and-pricing round.

Round ``t`` (DESIGN.md §3): requests that arrived by ``t`` and are still waiting form the
order book (rows of arrays); the root planner routes them to cluster planners, which run
the mechanism on their sub-markets, then the root runs a spill-over pass
(:func:`market.core.engine.clear_round`); the allocation passes the shared feasibility check;
resources take on the load for each request's duration and collect payments; unserved
requests retry while their patience lasts; prices move towards the target utilisation;
metrics go to the DataCollector.
"""

from __future__ import annotations

import math
import time
import zlib
from typing import Any

import mesa
import numpy as np
import pandas as pd

from agents import PlannerAgent, ResourceAgent, Shading, Truthful, UserAgent
from market.core.engine import OrderBook, RoundOutcome, RoundParams, clear_round
from market.core.hierarchy import FEATURES, build_hierarchy
from market.core.metrics import power, round_metrics
from market.core.pricing import PriceRule, utilization
from mechanisms import create
from mechanisms.optimal import Optimal
from scenarios import config as scenario_config
from scenarios.config import Scenario
from scenarios.sources import build_market
from scenarios.tables import MarketData

#: per-round metric columns (rounds.parquet), in order
METRICS = [
    "n_requests", "n_allocated", "efficiency", "efficiency_served", "welfare", "satisfaction",
    "jain", "jain_winners", "jain_users", "gini", "gini_requests", "utilization",
    "resource_share", "revenue", "energy", "mean_price", "ir_violations", "ir_excess",
    "user_surplus", "budget_balance", "spilled", "price_change",
]
ORACLE_METRICS = ["opt_welfare", "alg_opt", "opt_proven"]
FLAT_METRICS = ["flat_welfare", "cluster_loss"]


def _stream(seed: int, *labels: str) -> np.random.Generator:
    """An independent generator for (seed, labels): same everywhere, any worker."""
    words = [seed] + [zlib.crc32(label.encode()) for label in labels]
    return np.random.default_rng(np.random.SeedSequence(words))


def auto_clusters(m: int) -> int:
    """Default number of clusters: about 100 resources each."""
    return max(1, round(m / 100))


def auto_candidates(m: int) -> int:
    """Default K: ``ceil(sqrt(M / 2))`` (22 at M = 888), at most 22."""
    return int(min(22, max(1, math.ceil(math.sqrt(m / 2)))))


class MarketModel(mesa.Model):
    """A market of resources, users and planners, cleared round after round.

    Args:
        scenario: a :class:`Scenario`, a scenario file or a shipped scenario name.
        mechanism: name of the allocation mechanism.
        rng: an integer seed (fixes the market and every draw); None means 0.
        market: a prebuilt market (else built from the scenario and the seed).
        weights: override ``(alpha, beta, gamma, delta)``.
        eta: override the pricing step.
        target: override the target utilisation.
        clusters: override the number of clusters (0 = automatic).
        oracle: override whether the exact oracle runs each round.
        compare_flat: also clear each round flat (one cluster) in the same state.
    """

    def __init__(
        self,
        scenario: Scenario | str = "default",
        mechanism: str = "mohaf",
        rng: int | None = None,
        market: MarketData | None = None,
        weights: tuple[float, float, float, float] | None = None,
        eta: float | None = None,
        target: float | None = None,
        clusters: int | None = None,
        oracle: bool | None = None,
        compare_flat: bool | None = None,
    ) -> None:
        if isinstance(rng, str):  # SolaraViz may hand over a text seed (Mesa #3516)
            rng = int(rng) if rng.strip() else None
        seed = 0 if rng is None else int(rng)
        super().__init__(rng=seed)
        self.seed = seed
        self.config = scenario if isinstance(scenario, Scenario) else scenario_config.load(scenario)
        cfg = self.config
        self.mechanism_name = mechanism
        self.mechanism = create(mechanism, **cfg.mechanism_params.get(mechanism, {}))
        self.market = market if market is not None else build_market(cfg, seed)
        self.oracle = cfg.oracle if oracle is None else bool(oracle)
        self.compare_flat = cfg.compare_flat if compare_flat is None else bool(compare_flat)
        w = tuple(float(x) for x in (weights if weights is not None else cfg.weights))
        pricing = dict(cfg.pricing)
        if eta is not None:
            pricing["eta"] = float(eta)
        if target is not None:
            pricing["target"] = float(target)
        self.price_rule = PriceRule(**pricing)
        self._rng_round = _stream(seed, "mechanism", mechanism)
        self._setup_resources(clusters)
        self._setup_requests(w)
        self.round = 0
        self.metrics: dict[str, float] = {}
        self.timings: dict[str, float] = {}
        self.round_records: list[dict[str, Any]] = []
        self.timing_records: list[dict[str, Any]] = []
        self.allocation_frames: list[pd.DataFrame] = []
        self.last_outcome: RoundOutcome | None = None
        reporters = {name: name for name in METRICS}
        if self.oracle:
            reporters.update({name: name for name in ORACLE_METRICS})
        self.datacollector = mesa.DataCollector(model_reporters=reporters)
        for name in reporters:
            setattr(self, name, 0.0)

    # --- set-up -----------------------------------------------------------------------
    def _setup_resources(self, clusters: int | None) -> None:
        cfg = self.config
        res = self.market.resources
        self.resource_columns = {c: res[c].to_numpy(dtype=float) for c in FEATURES}
        cols = self.resource_columns
        m = len(res)
        self.n_resources = m
        self.price = cols["unit_cost"].copy()
        energy = cols["energy_efficiency"]
        span = energy.max() - energy.min() if m else 0.0
        self.energy_norm = (energy - energy.min()) / span if span > 0 else np.ones(m)
        self.slots = cfg.capacity["mode"] == "slots"
        # allocation units: (cpu, mem) or (slots, unused)
        self.alloc_capacity = (
            np.column_stack([np.full(m, float(cfg.capacity["slots"])), np.ones(m)])
            if self.slots else np.column_stack([cols["cpu"], cols["mem"]])
        )
        self.used_alloc = np.zeros((m, 2))
        self.used_real = np.zeros((m, 2))
        self.load = np.zeros(m)
        self.resource_energy = np.zeros(m)
        self.resource_revenue = np.zeros(m)
        self.round_credit = np.zeros(m)
        n_clusters = clusters if clusters else (cfg.clustering["clusters"] or auto_clusters(m))
        features = np.column_stack([cols[c] for c in FEATURES])
        self.hierarchy = build_hierarchy(features, n_clusters, _stream(self.seed, "clusters"))
        self.flat_hierarchy = build_hierarchy(features, 1, _stream(self.seed, "clusters"))
        self.params_k = cfg.clustering["candidates"] or auto_candidates(m)
        self.resource_agents = [
            ResourceAgent(self, j, rid) for j, rid in enumerate(res["resource_id"].to_numpy())
        ]
        self.root = PlannerAgent(self, None, np.arange(m))
        self.planners = [PlannerAgent(self, c, self.hierarchy.members(c)) for c in range(self.hierarchy.n_clusters)]
        self.hierarchy_graph = self.hierarchy.graph()
        self._release: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def _setup_requests(self, weights: tuple[float, float, float, float]) -> None:
        cfg = self.config
        req = self.market.requests
        cols = self.market.request_arrays()
        cols["cpu"] = np.maximum(cols["cpu"], float(cfg.capacity["min_cpu"]))
        cols["priority"] = cols["priority"] / float(self.market.priority_max)
        self.request_columns = cols
        self.request_ids = req["request_id"].to_numpy()
        user_ids, self.request_user = np.unique(req["user_id"].to_numpy(), return_inverse=True)
        n_users = user_ids.size
        shading = _stream(self.seed, "strategies").random(n_users) < float(cfg.users["shading_share"])
        factor = float(cfg.users["shading_factor"])
        self.user_agents = [
            UserAgent(self, u, uid, Shading(factor) if shading[u] else Truthful())
            for u, uid in enumerate(user_ids)
        ]
        self.user_scale = np.array([a.bid_scale for a in self.user_agents]) if n_users else np.zeros(0)
        n = len(req)
        self.need = (
            np.column_stack([np.ones(n), np.zeros(n)]) if self.slots else np.column_stack([cols["cpu"], cols["mem"]])
        )
        self.status = np.zeros(n, dtype=np.int8)  # 0 waiting, 1 served, 2 gave up
        self.user_wins = np.zeros(n_users, dtype=np.int64)
        self.user_spend = np.zeros(n_users)
        self.user_utility = np.zeros(n_users)
        self.user_memory = np.zeros(n_users)
        self.round_params = RoundParams(
            weights=weights, d_max=float(cfg.utility["d_max"]), candidates=int(self.params_k),
            spill_neighbors=int(cfg.clustering["spill_neighbors"]),
        )

    # --- one round --------------------------------------------------------------------
    def order_book(self, t: int) -> tuple[np.ndarray, OrderBook]:
        """Rows waiting in round ``t`` and their order book."""
        patience = int(self.config.settlement["patience"])
        arrival = self.request_columns["round"]
        rows = np.flatnonzero((self.status == 0) & (arrival <= t) & (t - arrival <= patience))
        columns = {name: col[rows] for name, col in self.request_columns.items()}
        user = self.request_user[rows]
        return rows, OrderBook(columns, user, self.user_scale[user], self.need[rows])

    def resource_matrix(self) -> np.ndarray:
        """``(M, 8)`` resource columns for the candidate kernel, with current prices."""
        c = self.resource_columns
        return np.column_stack(
            [c["x"], c["y"], c["cpu"], c["mem"], self.price, c["reliability"], c["availability"], self.energy_norm]
        )

    def clear(self, book: OrderBook, mechanism: Any, hierarchy: Any, rng: np.random.Generator, start_won: np.ndarray) -> RoundOutcome:
        """Clear ``book`` on the current state (no state change)."""
        free = self.alloc_capacity - self.used_alloc
        return clear_round(
            book, self.resource_matrix(), self.resource_columns, free, hierarchy, mechanism, rng,
            self.round_params, start_won,
        )

    def step(self) -> None:
        """One round: auction, validation, settlement, pricing, metrics."""
        t = self.round
        self._release_finished(t)
        rows, book = self.order_book(t)
        start_won = self.user_memory * float(self.config.settlement["fairness_memory"])
        outcome = self.clear(book, self.mechanism, self.hierarchy, self._rng_round, start_won)
        self.last_outcome = outcome
        extra: dict[str, float] = {}
        t_oracle = time.perf_counter()
        if self.oracle:
            extra.update(self._oracle(book, outcome, start_won))
        if self.compare_flat:
            flat = self.clear(book, self.mechanism, self.flat_hierarchy, _stream(self.seed, "flat", str(t)), start_won)
            extra["flat_welfare"] = flat.welfare
            extra["cluster_loss"] = 1.0 - outcome.welfare / flat.welfare if flat.welfare > 0 else 0.0
        oracle_ms = 1e3 * (time.perf_counter() - t_oracle)
        t_settle = time.perf_counter()
        price_used = self.price.copy()
        self._settle(t, rows, book, outcome)
        load = utilization(self.used_real, np.column_stack([self.resource_columns["cpu"], self.resource_columns["mem"]]))
        self.load = load
        energy = power(load, self.resource_columns["energy_efficiency"])
        self.resource_energy += energy
        self.price = self.price_rule.step(self.price, load, t, self.resource_columns["unit_cost"])
        t_metrics = time.perf_counter()
        served = outcome.resource >= 0
        value = book.columns["budget"] * outcome.base_utility
        metrics = round_metrics(
            outcome.utility, served, outcome.payment, value, book.user, self.used_real[:, 0],
            self.resource_columns["cpu"], load, energy, price_used,
        )
        # this round's credits alone (a difference of running totals would carry their round-off)
        metrics["budget_balance"] = float(self.round_credit.sum() - outcome.payment.sum())
        metrics["spilled"] = outcome.spilled
        metrics["price_change"] = float(np.abs(self.price - price_used).max()) if self.n_resources else 0.0
        metrics.update(extra)
        self.metrics = metrics
        for name, value_ in metrics.items():
            setattr(self, name, value_)
        t_end = time.perf_counter()
        self.timings = {
            **outcome.timings, "oracle_ms": oracle_ms, "settle_price_ms": 1e3 * (t_metrics - t_settle),
            "metrics_ms": 1e3 * (t_end - t_metrics),
        }
        keys = {"mechanism": self.mechanism_name, "seed": self.seed, "round": t}
        self.round_records.append({**keys, **metrics})
        self.timing_records.append({**keys, **self.timings})
        self.allocation_frames.append(self._allocation_frame(t, rows, book, outcome))
        self.datacollector.collect(self)
        self.round += 1

    # --- helpers ----------------------------------------------------------------------
    def _oracle(self, book: OrderBook, outcome: RoundOutcome, start_won: np.ndarray) -> dict[str, float]:
        """The round's optimum, or when it is not proven, a proven upper bound on it.

        Only deterministic figures enter the table: a proven optimum (the search is
        capped by nodes, not seconds), else the LP relaxation's bound; ``alg_opt`` is
        then a lower bound on the true ratio. NaN if no bound could be computed.
        """
        params = self.config.oracle_params
        limit, nodes = float(params["time_limit"]), int(params["node_limit"])
        rng = _stream(self.seed, "oracle")
        if isinstance(self.mechanism, Optimal):
            opt = outcome
        else:
            opt = self.clear(book, Optimal(limit, node_limit=nodes), self.hierarchy, rng, start_won)
        if opt.proven_optimal:
            bound = opt.welfare
        else:
            lp = self.clear(book, Optimal(limit, relax=True), self.hierarchy, rng, start_won)
            bound = max(lp.bound, outcome.welfare) if lp.bound is not None and math.isfinite(lp.bound) else math.nan
        return {
            "opt_welfare": bound,
            "alg_opt": outcome.welfare / bound if bound > 0 else (1.0 if bound == 0 else math.nan),
            "opt_proven": bool(opt.proven_optimal),
        }

    def _settle(self, t: int, rows: np.ndarray, book: OrderBook, outcome: RoundOutcome) -> None:
        served = np.flatnonzero(outcome.resource >= 0)
        j = outcome.resource[served]
        req_rows = rows[served]
        real = np.column_stack([book.columns["cpu"][served], book.columns["mem"][served]])
        np.add.at(self.used_alloc, j, book.need[served])
        np.add.at(self.used_real, j, real)
        self.round_credit = np.bincount(j, outcome.payment[served], minlength=self.n_resources)
        self.resource_revenue += self.round_credit
        ends = t + book.columns["duration"][served]
        for end in np.unique(ends):
            sel = ends == end
            self._release.setdefault(int(end), []).append((j[sel], book.need[served][sel], real[sel]))
        self.status[req_rows] = 1
        users = book.user[served]
        np.add.at(self.user_wins, users, 1)
        np.add.at(self.user_spend, users, outcome.payment[served])
        np.add.at(self.user_utility, book.user, outcome.utility)
        self.user_memory = outcome.won
        patience = int(self.config.settlement["patience"])
        gave_up = rows[(outcome.resource < 0) & (t - book.columns["round"] >= patience)]
        self.status[gave_up] = 2

    def _release_finished(self, t: int) -> None:
        for j, need, real in self._release.pop(t, []):
            np.subtract.at(self.used_alloc, j, need)
            np.subtract.at(self.used_real, j, real)
        np.maximum(self.used_alloc, 0.0, out=self.used_alloc)
        np.maximum(self.used_real, 0.0, out=self.used_real)

    def _allocation_frame(self, t: int, rows: np.ndarray, book: OrderBook, outcome: RoundOutcome) -> pd.DataFrame:
        served = np.flatnonzero(outcome.resource >= 0)
        res_ids = self.market.resources["resource_id"].to_numpy()
        return pd.DataFrame({
            "mechanism": self.mechanism_name,
            "seed": np.int64(self.seed),
            "round": np.int64(t),
            "request_id": self.request_ids[rows[served]],
            "resource_id": res_ids[outcome.resource[served]],
            "payment": outcome.payment[served],
            "utility": outcome.utility[served],
        })
