"""MarketModel: the Mesa model. One ``step()`` is one auction-and-pricing round.

Round ``t``: finished requests release their capacity; requests that arrived by ``t``
and are still waiting form the order book (rows of arrays), their bids scaled by their
users' strategies, asked this round (:func:`agents.user.bid_scales`; pacing users keep out
what they could not pay for); the owners set their reserves, which floor the posted prices
(:mod:`agents.owner`); the root planner
routes them to the cluster planners, each clears its sub-market with the mechanism, and
the root runs a spill-over pass (:func:`market.core.engine.clear_round`); the allocation
passes the shared feasibility check; the resources take on the load for each request's
duration and collect the payments (:class:`agents.resource.ResourceLedger`); unserved
requests retry while their patience lasts; learning users and owners update from the
round; prices move by the price rule (utilisation target or tatonnement);
the round's metrics are computed once, here, and the round is left as a
:class:`RoundRecord` (``model.record``) that every other reader uses. The DataCollector's
``rounds`` and ``timings`` tables are the source of the run's output tables.

:meth:`MarketModel.preview` plays the same round on a copy of the state with another
mechanism (the dashboard's comparison); :meth:`MarketModel.reopen` puts every request
back into the book on idle resources (``market bench`` re-auctions one instance).
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import mesa
import numpy as np
import pandas as pd

from agents import PlannerAgent, ResourceAgent, UserAgent
from agents.owner import OwnerAgent, OwnerStrategy, create_owner_strategy, owner_index
from agents.resource import ResourceLedger
from agents.strategies import BUILT_IN, assign_strategies, strategy_mix
from agents.user import (
    UserLedger,
    affordable,
    bid_scales,
    remaining_budgets,
    run_budgets,
    strategy_groups,
    update_strategies,
)
from market.core import serving
from market.core.candidates import resource_rows
from market.core.clearing import clearing_prices, price_gap
from market.core.eligibility import allowed_masks, type_codes
from market.core.engine import OrderBook, RoundOutcome, RoundParams, clear_round, request_matrix
from market.core.feasibility import InfeasibleAllocationError
from market.core.hierarchy import build_hierarchy, features_of
from market.core.interrupts import raise_if_interrupted
from market.core.metrics import round_metrics
from market.core.multiresource import multiresource_columns, round_multiresource
from market.core.oracle import OracleResult, RoundMarket, solve_round
from market.core.pricing import Tatonnement, price_rule
from market.core.workspace import Workspace
from market.errors import MarketInputError
from mechanisms import create
from mechanisms.base import Mechanism
from mechanisms.checks import InvariantError
from mechanisms.optimal import Optimal
from scenarios import config as scenario_config
from scenarios.azure_llm import LLMServing
from scenarios.config import Scenario
from scenarios.sources import build_market
from scenarios.tables import MarketData

#: per-round metric columns of ``rounds`` (in the order the round computes them)
METRICS = [
    "n_requests", "n_allocated", "welfare", "value_welfare", "efficiency", "efficiency_served", "satisfaction",
    "jain", "jain_winners", "jain_users", "gini", "gini_requests", "utilization",
    "resource_share", "revenue", "energy", "mean_price", "ir_violations", "ir_excess",
    "user_surplus", "budget_balance", "spilled", "price_change", "mechanism_failed",
    "mechanism_time_limited", "bid_to_value",
    "reserve_level",
]
#: the clearing-price distance (``[pricing] clearing = true``)
PRICING_METRICS = ["price_gap"]
#: the whole-market oracle's columns (:mod:`market.core.oracle`)
ORACLE_METRICS = [
    "opt_welfare", "bound_welfare", "alg_opt", "alg_bound", "opt_proven", "opt_status", "opt_scope",
    "bound_value_welfare", "alg_value_bound", "opt_time_limited",
]
FLAT_METRICS = ["flat_welfare", "cluster_loss"]
#: the arrival round of a request whose predecessor is not served (after every run)
NEVER = np.iinfo(np.int64).max // 2


def dimension_metrics(dimensions: tuple[str, ...]) -> list[str]:
    """The ``rounds`` columns that depend on a market's dimensions.

    ``utilization_<dim>`` for each, then the multi-resource metrics
    (:func:`market.core.multiresource.round_multiresource`).
    """
    return [*(f"utilization_{d}" for d in dimensions), *multiresource_columns(dimensions)]
TIMINGS = ["candidates_ms", "alloc_ms", "validate_ms", "oracle_ms", "settle_price_ms", "metrics_ms"]
KEYS = ["mechanism", "seed", "round"]


def _stream(seed: int, *labels: str) -> np.random.Generator:
    """An independent generator for (seed, labels): same everywhere, any worker."""
    words = [seed] + [zlib.crc32(label.encode()) for label in labels]
    return np.random.default_rng(np.random.SeedSequence(words))


def auto_clusters(m: int) -> int:
    """Default number of clusters: about 100 resources each."""
    return max(1, round(m / 100))


def auto_candidates(m: int) -> int:
    """Default K: every resource up to 22 (``min(M, 22)``, at least 1).

    A small market keeps all its resources as candidates: cutting it to a few (the
    earlier ``ceil(sqrt(M / 2))``, 5 of 41 machines) sent every request to the same best
    machines and left the rest idle (MOHAF at 0.47 of the whole-market bound on
    ``google2011-real``, 0.94 with every machine a candidate).
    """
    return int(min(22, max(1, m)))


@dataclass
class MarketState:
    """Everything a round changes: prices, request status, the resources' and users' ledgers.

    Attributes:
        round: the next round to play.
        price: ``(M,)`` posted unit prices.
        status: ``(N,)`` per market request: 0 waiting, 1 served, 2 gave up.
        resources: the resources' ledger (load, running requests, energy, revenue).
        users: the users' ledger (wins, spend, utility, fairness memory).
        served_round: ``(N,)`` the round each request was served in, -1 if not (requests
            with ``after`` arrive from it).
        served_resource: ``(N,)`` the resource each request was served on, -1 if not.
        serving: an LLM-serving market's per-request latencies (:mod:`market.core.serving`),
            else empty.
    """

    round: int
    price: np.ndarray
    status: np.ndarray
    resources: ResourceLedger
    users: UserLedger
    served_round: np.ndarray
    served_resource: np.ndarray
    serving: dict[str, np.ndarray] = field(default_factory=dict)

    def copy(self) -> MarketState:
        """An independent copy (a what-if round leaves the original untouched)."""
        return MarketState(self.round, self.price.copy(), self.status.copy(), self.resources.copy(), self.users.copy(),
                           self.served_round.copy(), self.served_resource.copy(),
                           {k: v.copy() for k, v in self.serving.items()})


@dataclass
class RoundRecord:
    """What one round was and what it did: the one account every reader uses.

    Attributes:
        round: the round.
        rows: ``(N,)`` market request rows of the order book.
        book: the order book (bids scaled by the users' strategies this round).
        prices: ``(M,)`` posted unit prices the round cleared at (before the update): the
            price rule's price floored by the owners' reserves.
        resource_matrix: ``(M, 8)`` resource columns the candidate kernel saw.
        free: ``(M, 2)`` free capacity the round cleared on.
        start_won: ``(U,)`` priority mass users carried into the round.
        outcome: who got what, per order-book row.
        bid_scale: ``(U,)`` the scale every user's bids carried this round.
        reserve: ``(O,)`` every owner's reserve multiplier this round.
        groups: the users by strategy this round (:func:`agents.user.strategy_groups`).
        metrics: the round's metrics by name (``rounds`` columns).
        timings: milliseconds per phase.
    """

    round: int
    rows: np.ndarray
    book: OrderBook
    prices: np.ndarray
    resource_matrix: np.ndarray
    free: np.ndarray
    start_won: np.ndarray
    outcome: RoundOutcome
    bid_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reserve: np.ndarray = field(default_factory=lambda: np.zeros(0))
    groups: dict[Any, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def user_population(scenario: Scenario, seed: int = 0) -> tuple[list[tuple[str, float]], dict[str, dict[str, Any]]]:
    """The users' strategy mix (``[users] mix`` or the older ``shading_share``), checked, and each strategy's parameters.

    Raises:
        MarketInputError: one line naming the key (unknown strategy, a share or parameter
            out of range).
    """
    u = scenario.users
    share = float(u.shading_share)
    mix = dict(u.mix) if u.mix is not None else {"truthful": 1.0 - share, "shading": share}
    for name in u.params or {}:
        if name in BUILT_IN:  # one spelling of each parameter
            raise MarketInputError(f"key 'users.params.{name}': the built-in strategy {name!r} takes its "
                                   f"parameters from users.{name}_<param>", source=scenario.path or None)
        if name not in mix:  # a typo would leave the strategy at its defaults without a word
            raise MarketInputError(f"key 'users.params.{name}': no strategy {name!r} in users.mix "
                                   f"({', '.join(mix)})", source=scenario.path or None)
    params: dict[str, dict[str, Any]] = {
        "shading": {"factor": float(u.shading_factor)},
        "learning": {"grid": tuple(float(g) for g in u.learning_grid), "eta": float(u.learning_eta),
                     "gamma": float(u.learning_gamma), "truthful_bias": float(u.learning_truthful_bias), "seed": seed},
        "pacing": {"budget_share": float(u.pacing_budget_share), "eta": float(u.pacing_eta),
                   # the market's span, not the rounds played: a run of R rounds is the first R
                   # rounds of the full run (README, Contract 1: horizon), pacers included
                   "rounds": int(scenario.horizon), "target": str(u.pacing_target)},
        # a plug-in strategy's own ([users.params.<name>]; none may name a built-in one)
        **{name: dict(table) for name, table in (u.params or {}).items()},
    }
    return strategy_mix(mix, params, source=scenario.path or None), params


def owner_strategy(scenario: Scenario, seed: int = 0) -> OwnerStrategy:
    """The owners' reserve strategy of ``[owners]``.

    Raises:
        MarketInputError: one line naming the key.
    """
    o = scenario.owners
    params = ({"reserve": float(o.reserve)} if o.strategy == "fixed" else
              {"grid": tuple(o.grid), "eta": float(o.eta), "gamma": float(o.gamma), "seed": seed})
    return create_owner_strategy(o.strategy, scenario.path or None, **params)


def check_population(scenario: Scenario) -> None:
    """Check the users' and owners' strategies before any run (what the model would refuse).

    Raises:
        MarketInputError: one line naming the key.
    """
    user_population(scenario)
    owner_strategy(scenario)


class MarketModel(mesa.Model):
    """A market of resources, users and planners, cleared round after round.

    Args:
        scenario: a :class:`Scenario`, a scenario file or a shipped scenario name.
        mechanism: name of the allocation mechanism.
        rng: an integer seed (fixes the market and every draw); None means 0.
        market: a prebuilt market (else built from the scenario and the seed).

    Every other setting comes from the scenario; to change one, pass a changed copy
    (:meth:`Scenario.replace`), e.g. ``scenario.replace(oracle=False,
    pricing=scenario.pricing.replace(eta=0.05))``.

    Attributes:
        record: the last round's :class:`RoundRecord` (None before the first round).
        metrics: the last round's metrics by name.
        timings: the last round's phase timings in milliseconds.
        datacollector: its tables ``rounds`` and ``timings`` hold one row per round.
    """

    def __init__(
        self,
        scenario: Scenario | str = "default",
        mechanism: str = "mohaf",
        rng: int | None = None,
        market: MarketData | None = None,
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
        self.workspace = Workspace()  # the rounds' candidate tables, kept mapped between rounds
        self.oracle = cfg.oracle
        self.compare_flat = cfg.compare_flat
        p = cfg.pricing
        self.price_rule = price_rule(p.rule, eta=p.eta, target=p.target, schedule=p.schedule, lower=p.lower, upper=p.upper,
                                     mode=p.mode)
        self._rng_round = _stream(seed, "mechanism", mechanism)
        resources = self._setup_resources()
        users = self._setup_requests(cfg.weights)
        n = len(self.market.requests)
        self.serving = self.market.extension if isinstance(self.market.extension, LLMServing) else None
        self.state = MarketState(0, self.resource_columns["unit_cost"].copy(), np.zeros(n, dtype=np.int8), resources, users,
                                 np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64),
                                 serving.new_ledger(self.serving) if self.serving else {})
        self.record: RoundRecord | None = None
        self.metrics: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self._served: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._users: list[tuple[Any, ...]] = []
        columns = [*KEYS, *METRICS, *dimension_metrics(self.dimensions),
                   *(LLMServing.COLUMNS if self.serving else ()), *(ORACLE_METRICS if self.oracle else []), *(FLAT_METRICS if self.compare_flat else []), *(PRICING_METRICS if cfg.pricing.clearing else [])]
        self.datacollector = mesa.DataCollector(tables={"rounds": columns, "timings": [*KEYS, *TIMINGS]})

    # --- set-up -----------------------------------------------------------------------
    def _setup_resources(self) -> ResourceLedger:
        cfg = self.config
        res = self.market.resources
        self.dimensions = self.market.dimensions
        features = features_of(self.dimensions)
        self.resource_columns = {c: res[c].to_numpy(dtype=float) for c in features}
        cols = self.resource_columns
        m = len(res)
        # (M, D) capacity in every dimension; (M,) type code (eligibility; 0 = untyped)
        cols["capacity"] = self.market.capacity()
        cols["type"], self.type_names = type_codes(self.market.resource_types())
        self.n_resources = m
        energy = cols["energy_efficiency"]
        span = energy.max() - energy.min() if m else 0.0
        self.energy_norm = (energy - energy.min()) / span if span > 0 else np.ones(m)
        self.slots = cfg.capacity.mode == "slots"
        real = cols["capacity"]
        # allocation units: the dimensions, or (slots, unused)
        alloc = np.column_stack([np.full(m, float(cfg.capacity.slots)), np.ones(m)]) if self.slots else real
        n_clusters = cfg.clustering.clusters or auto_clusters(m)
        matrix = np.column_stack([cols[c] for c in features])
        self.hierarchy = build_hierarchy(matrix, n_clusters, _stream(self.seed, "clusters"))
        self.flat_hierarchy = build_hierarchy(matrix, 1, _stream(self.seed, "clusters"))
        self.params_k = cfg.clustering.candidates or auto_candidates(m)
        self.resource_agents = [
            ResourceAgent(self, j, rid) for j, rid in enumerate(res["resource_id"].to_numpy())
        ]
        self._setup_owners()
        self.root = PlannerAgent(self, None, np.arange(m))
        self.planners = [PlannerAgent(self, c, self.hierarchy.members(c)) for c in range(self.hierarchy.n_clusters)]
        self.hierarchy_graph = self.hierarchy.graph()
        return ResourceLedger(alloc, real, cols["energy_efficiency"])

    def _setup_owners(self) -> None:
        """The sellers: one OwnerAgent per ``owner_id`` and the scenario's ``[owners]`` strategy."""
        self.owner_strategy = owner_strategy(self.config, self.seed)
        res = self.market.resources  # a hand-made MarketData may have no owner_id: each resource its own owner
        ids = res["owner_id"].to_numpy() if "owner_id" in res else np.full(len(res), -1)
        self.resource_owner, owner_ids = owner_index(ids)
        order = np.argsort(self.resource_owner, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(self.resource_owner, minlength=len(owner_ids)))[:-1])
        self.owner_agents = [OwnerAgent(self, k, oid, members[k]) for k, oid in enumerate(owner_ids)]

    def reserve_multipliers(self, state: MarketState | None = None) -> np.ndarray:
        """``(O,)`` each owner's reserve multiplier for the next round of ``state`` (default: the model's)."""
        state = self.state if state is None else state
        return self.owner_strategy.multipliers(state.resources.owner_state, state.round, len(self.owner_agents))

    def posted_prices(self, state: MarketState | None = None, reserve: np.ndarray | None = None) -> np.ndarray:
        """``(M,)`` the unit prices posted in the next round: ``max(price_j, r_o(j) * unit_cost_j)``.

        Args:
            state: the state (default: the model's).
            reserve: ``(O,)`` the owners' multipliers (default: :meth:`reserve_multipliers`).
        """
        state = self.state if state is None else state
        reserve = self.reserve_multipliers(state) if reserve is None else reserve
        if not reserve.any():  # no reserve anywhere: the rule's prices as they are
            return state.price
        return np.maximum(state.price, reserve[self.resource_owner] * self.resource_columns["unit_cost"])

    def _setup_requests(self, weights: tuple[float, float, float, float]) -> UserLedger:
        cfg = self.config
        req = self.market.requests
        cols = self.market.request_arrays()
        self.predecessor = self.market.predecessor()
        self.has_predecessors = bool((self.predecessor >= 0).any())
        if "cpu" in cols:
            cols["cpu"] = np.maximum(cols["cpu"], float(cfg.capacity.min_cpu))
        cols["priority"] = cols["priority"] / float(self.market.priority_max)
        # (N, D) demand in every dimension, (N,) priced quantity q = sum_d w_d demand_d,
        # (N, W) eligibility masks
        cols["demand"] = np.ascontiguousarray(np.column_stack([cols[d] for d in self.dimensions]).reshape(-1, len(self.dimensions)))
        own = self.market.price_weights
        priced = own if own is not None and "price_weights" not in cfg.market else cfg.price_weights(self.dimensions)
        self.price_weights = np.asarray(priced, dtype=float)
        cols["priced"] = cols["demand"] @ self.price_weights
        cols["allowed"] = allowed_masks(self.market.allowed_types(), self.type_names)
        self.request_columns = cols
        # (N, 8 + D) every request's row for the candidate kernel: a round's book takes its rows
        self.request_matrix_all = request_matrix(cols)
        self.request_ids = req["request_id"].to_numpy()
        user_ids, self.request_user = np.unique(req["user_id"].to_numpy(), return_inverse=True)
        n_users = user_ids.size
        mix, params = user_population(self.config, self.seed)
        strategies = assign_strategies(mix, params, n_users, _stream(self.seed, "strategies"))
        self.user_agents = [UserAgent(self, u, uid, strategies[u]) for u, uid in enumerate(user_ids)]
        # what each user could spend over the market's span (pacing budgets; the horizon, so
        # that --rounds R plays the first R rounds of the full run)
        in_run = cols["round"] < int(cfg.horizon)
        self.user_budget = np.bincount(self.request_user[in_run], cols["budget"][in_run], minlength=n_users)
        n = len(req)
        self.need = np.column_stack([np.ones(n), np.zeros(n)]) if self.slots else cols["demand"]
        self.round_params = RoundParams(
            weights=weights, d_max=float(cfg.utility.d_max), candidates=int(self.params_k),
            spill_neighbors=int(cfg.clustering.spill_neighbors),
        )
        return UserLedger.empty(n_users, budget_total=self.user_budget)

    # --- state, as agents and readers see it -------------------------------------------
    def rounds_left(self, t: int) -> int:
        """Rounds from round ``t`` to the end of the market's span (``horizon``), ``t`` included.

        The market's span, not the rounds played, so that a run of R rounds plays the first R
        rounds of the full run (README, Contract 1: horizon); at least 1 (a run played past
        its market's span).
        """
        return max(1, int(self.config.horizon) - int(t))

    @property
    def round(self) -> int:
        """The next round to play (rounds played so far)."""
        return self.state.round

    @property
    def price(self) -> np.ndarray:
        """``(M,)`` the price rule's unit prices (the owners' reserves floor them: :meth:`posted_prices`)."""
        return self.state.price

    @property
    def status(self) -> np.ndarray:
        """``(N,)`` per market request: 0 waiting, 1 served, 2 gave up."""
        return self.state.status

    @property
    def resource_ledger(self) -> ResourceLedger:
        """The resources' state (load, energy, revenue, running requests)."""
        return self.state.resources

    @property
    def user_ledger(self) -> UserLedger:
        """The users' state (wins, spend, utility, fairness memory)."""
        return self.state.users

    @property
    def round_records(self) -> list[dict[str, Any]]:
        """Every round's row of ``rounds`` (keys and metrics), as dicts."""
        return self.rounds_table().to_dict("records")

    def rounds_table(self) -> pd.DataFrame:
        """The ``rounds`` table of this run (one row per round), from the DataCollector."""
        return self.datacollector.get_table_dataframe("rounds")

    def timings_table(self) -> pd.DataFrame:
        """The ``timings`` table of this run (one row per round), from the DataCollector."""
        return self.datacollector.get_table_dataframe("timings")

    def arrival(self, state: MarketState | None = None) -> np.ndarray:
        """``(N,)`` the round each request enters the book (README, contract 2: precedence).

        Its ``round``; for a request with ``after``, ``after_lag`` rounds after that request
        was served (not before its own ``round``), and never (a round past every run) while
        that one is not served.
        """
        state = self.state if state is None else state
        arrival = self.request_columns["round"]
        if not self.has_predecessors:
            return arrival
        pred = self.predecessor
        done = np.where(pred >= 0, state.served_round[np.maximum(pred, 0)], 0)
        after = np.where(done >= 0, np.maximum(arrival, done + self.request_columns["after_lag"]), NEVER)
        return np.where(pred >= 0, after, arrival)

    def waiting(self, t: int, state: MarketState | None = None, arrival: np.ndarray | None = None) -> np.ndarray:
        """Market request rows in the order book of round ``t``.

        Waiting (not served, not given up), arrived by ``t`` (:meth:`arrival`, or the
        ``arrival`` given: the round computes it once), at most ``patience`` rounds ago, and
        ``t`` not past its ``deadline``.
        """
        state = self.state if state is None else state
        patience = int(self.config.settlement.patience)
        arrival = self.arrival(state) if arrival is None else arrival
        return np.flatnonzero((state.status == 0) & (arrival <= t) & (t - arrival <= patience)
                              & (t <= self.request_columns["deadline"]))

    def resource_matrix(self, price: np.ndarray | None = None) -> np.ndarray:
        """``(M, 7 + D)`` resource rows for the candidate kernel at ``price`` (default: current).

        The layout of :mod:`market.core.candidates` ("Layouts").
        """
        c = self.resource_columns
        price = self.price if price is None else price
        return resource_rows(c["x"], c["y"], price, c["reliability"], c["availability"], self.energy_norm, c["type"],
                             c["capacity"])

    # --- one round --------------------------------------------------------------------
    def step(self) -> None:
        """One round: bids, auction, validation, settlement, pricing, metrics; see the module."""
        raise_if_interrupted()  # a Ctrl-C that a library swallowed in the previous round
        record = self._play(self.state, self.mechanism, self._rng_round, planners=[*self.planners, self.root])
        self.record, self.metrics, self.timings = record, record.metrics, record.timings
        keys = {"mechanism": self.mechanism_name, "seed": self.seed, "round": record.round}
        self.datacollector.add_table_row("rounds", {**keys, **record.metrics})
        self.datacollector.add_table_row("timings", {**keys, **record.timings})
        hit = np.flatnonzero(record.outcome.resource >= 0)
        out = record.outcome
        self._served.append((record.round, record.rows[hit], out.resource[hit], out.payment[hit], out.utility[hit]))
        led = self.state.users
        names = np.empty(len(self.user_agents), dtype=object)
        for strategy, idx in record.groups.items():
            names[idx] = strategy.name
        self._users.append((record.round, record.bid_scale, led.last_requests.copy(), led.last_wins.copy(),
                            led.last_spend.copy(), led.last_utility.copy(), led.spend.copy(),
                            run_budgets(self.user_agents, led, record.groups), names.tolist()))
        if self.workspace is not None and self.state.round >= int(self.config.rounds):
            # the run's last round: its tables go back now rather than when the garbage collector
            # frees the finished model (1.3 GB at 1M; a round played past the end lends them anew)
            self.workspace.release()

    def preview(self, mechanism: str | Mechanism) -> RoundRecord:
        """The next round as ``mechanism`` would play it, on a copy of the state.

        The same pipeline as :meth:`step` (one code path); nothing of the model changes.

        Args:
            mechanism: a registered name (with the scenario's parameters) or an instance.
        """
        if isinstance(mechanism, str):
            name = mechanism
            mechanism = self._oracle_mechanism() if name == "optimal" else create(name, **self.config.mechanism_params.get(name, {}))
        else:
            name = mechanism.name
        rng = _stream(self.seed, "compare", name, str(self.round))
        return self._play(self.state.copy(), mechanism, rng, planners=None)

    def reopen(self) -> None:
        """Every request back in the book, every resource idle; prices and round kept.

        For ``market bench``, which re-auctions one instance round after round.
        """
        self.state.status[:] = 0
        self.state.served_round[:] = -1
        self.state.served_resource[:] = -1
        if self.serving:
            self.state.serving = serving.new_ledger(self.serving)
        self.state.resources.reset()
        self.state.users = UserLedger.empty(len(self.user_agents), budget_total=self.user_budget)

    def _play(self, state: MarketState, mechanism: Mechanism, rng: np.random.Generator,
              planners: list[PlannerAgent] | None) -> RoundRecord:
        """Play round ``state.round`` on ``state`` (changed in place) and account for it."""
        t = state.round
        state.resources.release(t)
        arrival = self.arrival(state)  # once a round: the book, patience and drops read it
        rows = self.waiting(t, state, arrival)
        groups = strategy_groups(self.user_agents)  # once a round: every strategy call below reads them
        remaining = remaining_budgets(self.user_agents, state.users, groups)
        dropped = rows[:0]
        if np.isfinite(remaining).any():  # paced users bid only for what they can still pay
            keep = affordable(self.request_user[rows], self.request_columns["budget"][rows], remaining)
            rows, dropped = rows[keep], rows[~keep]
        entered = arrival[rows]
        user = self.request_user[rows]
        scale = bid_scales(self.user_agents, state.users, groups)
        reserve = self.reserve_multipliers(state)
        posted = self.posted_prices(state, reserve)
        # np.take along axis 0: the rows of ``a[rows]``, several times faster for 2-d arrays; a
        # book of every request (market bench) reads the kernel's rows as they are (read-only)
        every = rows.size == self.request_matrix_all.shape[0]  # rows are ascending: 0..N-1
        kernel_rows = self.request_matrix_all if every else self.request_matrix_all.take(rows, axis=0)
        book = OrderBook({name: col.take(rows, axis=0) for name, col in self.request_columns.items()}, user,
                         scale[user], self.need.take(rows, axis=0), rows=rows, matrix=kernel_rows)
        start_won = state.users.memory * float(self.config.settlement.fairness_memory)
        free = state.resources.free
        matrix = self.resource_matrix(posted)
        with self._refused(mechanism, t):
            outcome = clear_round(book, matrix, self.resource_columns, free, self.hierarchy, mechanism, rng,
                                  self.round_params, start_won, planners, self.rounds_left(t), self.workspace)
        record = RoundRecord(t, rows, book, posted, matrix, free, start_won, outcome, scale, reserve, groups)
        extra: dict[str, Any] = {}
        t_oracle = time.perf_counter()
        if self.compare_flat:
            flat = self._clear(record, mechanism, self.flat_hierarchy, _stream(self.seed, "flat", str(t)))
            extra["flat_welfare"] = flat.welfare
            extra["cluster_loss"] = 1.0 - outcome.welfare / flat.welfare if flat.welfare > 0 else 0.0
        oracle_ms = 1e3 * (time.perf_counter() - t_oracle)
        t_settle = time.perf_counter()
        served = outcome.resource >= 0
        hit = np.flatnonzero(served)
        energy = state.resources.settle(t, outcome.resource[hit], book.need.take(hit, axis=0),
                                        book.columns["demand"].take(hit, axis=0), outcome.payment[hit],
                                        book.columns["duration"][hit])
        state.status[rows[hit]] = 1
        state.served_round[rows[hit]] = t
        state.served_resource[rows[hit]] = outcome.resource[hit]
        patience = int(self.config.settlement.patience)
        gave_up = ~served & ((t - entered >= patience) | (t >= book.columns["deadline"]))
        state.status[rows[gave_up]] = 2
        patience_late = (t - arrival[dropped] >= patience) | (t >= self.request_columns["deadline"][dropped])
        state.status[dropped[patience_late]] = 2  # unaffordable requests age out as if they had bid and lost
        state.users.settle(book.user, served, outcome.payment, outcome.utility, outcome.won,
                           value=book.columns["budget"] * outcome.base_utility, budget=book.columns["budget"])
        update_strategies(self.user_agents, state.users, groups)
        revenue = np.bincount(self.resource_owner, state.resources.credit, minlength=len(self.owner_agents))
        self.owner_strategy.update(state.resources.owner_state, t, revenue)
        unit_cost = self.resource_columns["unit_cost"]
        rule_price = state.price
        if isinstance(self.price_rule, Tatonnement):
            res = state.resources
            if self.slots:  # slots: requests and capacity in slots
                q, free_q, cap_q = book.need[:, 0], res.free[:, 0], res.capacity[:, 0]
            else:  # the priced quantity q = demand . price_weights, capacity likewise
                q = book.columns["priced"]
                free_q, cap_q = res.free @ self.price_weights, res.capacity @ self.price_weights
            unmet = ~served & (outcome.best >= 0)
            unserved = np.bincount(outcome.best[unmet], weights=q[unmet], minlength=self.n_resources)
            state.price = self.price_rule.step(state.price, unserved, free_q, cap_q, t, unit_cost)
        else:
            state.price = self.price_rule.step(state.price, state.resources.load, t, unit_cost)
        t_metrics = time.perf_counter()
        metrics = round_metrics(
            outcome.utility, served, outcome.payment, book.columns["budget"] * outcome.base_utility, book.user,
            state.resources.used_real, self.resource_columns["capacity"], state.resources.load, energy, record.prices,
            self.dimensions,
        )
        metrics.update(round_multiresource(book.user, book.columns["demand"], served, self.resource_columns["capacity"],
                                           state.resources.used_real, self.dimensions))
        if self.serving:  # an LLM-serving market: the latencies this round fixes, its SLO metrics
            batch = state.resources.used_real[:, self.dimensions.index("batch")]
            serving.settle(self.serving, t, state.serving, rows[hit], outcome.resource[hit], batch, rows[gave_up])
            metrics.update(serving.metrics(self.serving, t, state.serving))
        # this round's credits alone (a difference of running totals would carry their round-off)
        metrics["budget_balance"] = float(state.resources.credit.sum() - outcome.payment.sum())
        metrics["spilled"] = outcome.spilled
        metrics["price_change"] = float(np.abs(state.price - rule_price).max()) if self.n_resources else 0.0
        metrics["mechanism_failed"] = bool(outcome.failed)
        metrics["mechanism_time_limited"] = bool(outcome.time_limited)
        # reported over true value of the round's bids: min(scale * value, budget) / value of
        # each request's best candidate, i.e. min(scale, 1 / b); 1.0 for an empty book
        best_b = np.where(outcome.best >= 0, outcome.best_utility, 0.0) if outcome.best is not None else np.zeros(0)
        ratio = np.minimum(book.bid_scale, 1.0 / np.maximum(best_b, 1e-12))[best_b > 0]
        metrics["bid_to_value"] = float(ratio.mean()) if ratio.size else 1.0
        metrics["reserve_level"] = float(reserve.mean()) if reserve.size else 0.0
        if self.config.pricing.clearing:
            market = RoundMarket.of_book(book, record.resource_matrix, record.free, start_won, self.round_params)
            metrics["price_gap"] = price_gap(record.prices, clearing_prices(market, self.config.pricing.clearing_time_limit))
        t_oracle = time.perf_counter()
        metrics_ms = 1e3 * (t_oracle - t_metrics)
        if self.oracle:  # the yardstick: needs the round's welfare in both objectives
            extra.update(self.optimum(record).metrics(metrics["welfare"], metrics["value_welfare"]))
            oracle_ms += 1e3 * (time.perf_counter() - t_oracle)
        metrics.update(extra)
        state.round = t + 1
        record.metrics = metrics
        record.timings = {
            **outcome.timings, "oracle_ms": oracle_ms, "settle_price_ms": 1e3 * (t_metrics - t_settle),
            "metrics_ms": metrics_ms,
        }
        return record

    def _clear(self, record: RoundRecord, mechanism: Mechanism, hierarchy: Any, rng: np.random.Generator) -> RoundOutcome:
        """Clear ``record``'s order book again (another mechanism or hierarchy), same state."""
        with self._refused(mechanism, record.round):
            return clear_round(record.book, record.resource_matrix, self.resource_columns, record.free, hierarchy,
                               mechanism, rng, self.round_params, record.start_won,
                               rounds_left=self.rounds_left(record.round))

    @contextlib.contextmanager
    def _refused(self, mechanism: Mechanism, t: int) -> Iterator[None]:
        """A malformed or infeasible allocation (a plug-in breaking the rules) as one line naming it.

        Raises:
            MarketInputError: naming mechanism, round and seed, and the broken invariant or
                constraint (:func:`mechanisms.checks.check_form`, :mod:`market.core.feasibility`).
        """
        try:
            yield
        except (InfeasibleAllocationError, InvariantError) as exc:
            raise MarketInputError(
                f"mechanism {mechanism.name!r} returned an infeasible allocation in round {t} of seed {self.seed}: "
                f"{exc} (market check-mechanism {mechanism.name} names the broken invariant)"
            ) from None

    def _oracle_mechanism(self) -> Optimal:
        """``optimal`` with the scenario's oracle limits (the dashboard's exact comparison)."""
        params = self.config.oracle_params
        return Optimal(float(params.time_limit), node_limit=int(params.node_limit))

    def optimum(self, record: RoundRecord) -> OracleResult:
        """The round's whole-market optimum and proven bounds (:mod:`market.core.oracle`).

        The one yardstick (the model's rounds and ``market bench --oracle``): every feasible
        request-resource pair of the round, not only the mechanisms' candidates, searched
        from the mechanism's own allocation with the scenario's ``[oracle_params]``.

        Args:
            record: the round (its order book, prices, free capacity and outcome).
        """
        book, out = record.book, record.outcome
        market = RoundMarket.of_book(book, record.resource_matrix, record.free, record.start_won, self.round_params)
        served = out.resource >= 0
        params = self.config.oracle_params
        return solve_round(
            market, out.resource, out.base_utility, out.welfare,
            float(np.sum(book.columns["budget"][served] * out.base_utility[served])),
            float(params.time_limit), int(params.node_limit),
        )

    # --- helpers ----------------------------------------------------------------------
    def users_table(self) -> pd.DataFrame:
        """The ``users`` table of this run: one row per round and user (README, contract 3).

        Columns: ``mechanism, seed, round, user_id`` (as the market table holds it),
        ``strategy`` (its name that round), ``bid_scale`` (the scale its bids carried),
        ``requests`` (its requests in the book), ``wins``, ``spend`` and ``utility`` of the
        round, ``spend_total`` (paid so far, this round included) and ``run_budget`` (what
        it may spend over the run; empty (null) for users without one, i.e. not pacing).
        """
        n = len(self.user_agents)
        parts = self._users
        dtype = self.market.requests["user_id"].dtype
        user_ids = np.array([a.user_id for a in self.user_agents], dtype=object)

        def col(k: int, kind: type = float) -> np.ndarray:
            return np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, dtype=kind)

        budget = col(7)
        return pd.DataFrame({
            "mechanism": self.mechanism_name,
            "seed": np.int64(self.seed),
            "round": np.repeat(np.asarray([p[0] for p in parts], dtype=np.int64), n),
            "user_id": pd.Series(np.tile(user_ids, len(parts)), dtype=dtype),
            "strategy": [name for p in parts for name in p[8]],
            "bid_scale": col(1),
            "requests": col(2, np.int64),
            "wins": col(3, np.int64),
            "spend": col(4),
            "utility": col(5),
            "spend_total": col(6),
            "run_budget": pd.arrays.FloatingArray(np.where(np.isnan(budget), 0.0, budget), np.isnan(budget)),
        })

    def allocations_table(self) -> pd.DataFrame:
        """The ``allocations`` table of this run: one row per served request, in round order."""
        rounds = [np.full(rows.size, t, dtype=np.int64) for t, rows, *_ in self._served]
        rows, resource, payment, utility = (np.concatenate([part[k] for part in self._served]) if self._served
                                            else np.zeros(0, dtype=np.int64 if k < 3 else float) for k in (1, 2, 3, 4))
        return pd.DataFrame({
            "mechanism": self.mechanism_name,
            "seed": np.int64(self.seed),
            "round": np.concatenate(rounds) if rounds else np.zeros(0, dtype=np.int64),
            # ids as the market table holds them (int64 or str, even with no row)
            "request_id": pd.Series(self.request_ids[rows], dtype=self.market.requests["request_id"].dtype),
            "resource_id": pd.Series(self.market.resources["resource_id"].to_numpy()[resource],
                                     dtype=self.market.resources["resource_id"].dtype),
            "payment": payment,
            "utility": utility,
        })
