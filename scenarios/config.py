"""Scenario files: TOML with fixed keys (README, "Architecture", contract 1), validated on load.

Fixed keys (other tools write them): ``name, rounds, seeds, mechanisms, oracle`` and a
``[market]`` table with ``source`` (``synthetic``, ``tabular``, ``google2011``,
``alibaba_gpu``) and, for ``tabular``, ``requests`` and ``resources`` paths relative to the
scenario file. Every source takes ``dimensions`` (the resource kinds, default ``["cpu",
"mem"]``) and ``price_weights`` (:attr:`Scenario.price_weights`). Our own
optional key ``horizon`` (the rounds the market spans; default ``rounds``) and tables:
``[utility]``, ``[pricing]``, ``[clustering]``, ``[settlement]``, ``[users]``, ``[owners]``,
``[oracle_params]`` and ``[mechanism_params.<name>]``. Every error names the file, the
key and the bad value, in one line.

In Python a scenario is a frozen :class:`Scenario`; each optional table is a frozen
dataclass with the file's keys as typed fields and the file's defaults
(``scenario.settlement.patience``, ``scenario.pricing.eta``); ``market`` and
``mechanism_params`` stay dicts. A changed scenario is a validated copy, checked with the
file's messages: ``scenario.replace(rounds=3, pricing=scenario.pricing.replace(eta=0.1))``.

``rounds`` is how many rounds a run plays; ``horizon`` how many rounds the market spans
(the synthetic generator spreads its arrivals and scales capacity over them; the
google2011 ``real`` market takes its trace window and machine count from them). A file
without ``horizon`` has ``horizon = rounds``; changing ``rounds`` later
(``replace(rounds=5)``, ``market run --rounds 5``, a sweep's ``rounds``) keeps the
horizon, so a run of R rounds plays the first R rounds of the same market.

:meth:`Scenario.to_dict` gives the resolved scenario as plain data (the manifest's).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Self

from market.errors import MarketInputError

SCENARIO_DIR = Path(__file__).resolve().parent
SOURCES = ("synthetic", "tabular", "google2011", "alibaba_gpu", "azure_llm")
#: ``[market]`` keys of every source (the engine's, not the source's): the resource
#: dimensions and how a price applies to them
COMMON_MARKET_KEYS = ("dimensions", "price_weights")
_NUMBER = (int, float)

# key -> (python type(s), default); None default = required
_TOP = {
    "name": (str, None),
    "description": (str, ""),
    "rounds": (int, None),
    "seeds": (list, [0]),
    "mechanisms": (list, None),
    "oracle": (bool, False),
    "compare_flat": (bool, False),
}

#: the most rounds a scenario may play or span: more is taken for a typo (a run keeps each
#: round's record: a count near 2**63 grew by gigabytes before anything was written)
ROUNDS_MAX = 1_000_000

#: numeric ranges ``key -> (low, high, low_open, high_open)``; ``None`` = unbounded
_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "rounds": (1, ROUNDS_MAX, False, False),
    "horizon": (1, ROUNDS_MAX, False, False),
    "utility.d_max": (0, None, True, False),
    "utility.priority_max": (0, None, True, False),
    "pricing.eta": (0, None, False, False),
    "pricing.target": (0, 1, True, False),
    "pricing.lower": (0, None, False, False),
    "pricing.upper": (0, None, True, False),
    "pricing.clearing_time_limit": (0, None, True, False),
    "clustering.clusters": (0, None, False, False),
    "clustering.candidates": (0, None, False, False),
    "clustering.spill_neighbors": (-1, None, False, False),
    "capacity.slots": (1, None, False, False),
    "capacity.min_cpu": (0, None, False, False),
    "settlement.patience": (0, None, False, False),
    "settlement.fairness_memory": (0, 1, False, False),
    "users.shading_share": (0, 1, False, False),
    "users.shading_factor": (0, 1, True, False),
    "oracle_params.time_limit": (0, None, True, False),
    "oracle_params.node_limit": (0, None, False, False),
    "users.learning_eta": (0, 10, True, False),
    "users.learning_gamma": (0, 1, False, True),
    "users.learning_truthful_bias": (0, 50, False, False),
    "users.pacing_budget_share": (0, None, False, False),
    "users.pacing_eta": (0, 10, True, False),
    "owners.reserve": (0, None, False, False),
    "owners.eta": (0, 10, True, False),
    "owners.gamma": (0, 1, False, True),
}
_CHOICES = {"pricing.schedule": ("constant", "sqrt"), "pricing.rule": ("utilization", "tatonnement"),
            "pricing.mode": ("multiplicative", "additive"), "capacity.mode": ("sum", "slots"),
            "owners.strategy": ("fixed", "learning"), "users.pacing_target": ("remaining", "fixed")}
#: keys of ``[market]`` for each source that this module checks (google2011: its loader does)
_MARKET_KEYS = {"tabular": ("source", "requests", "resources")}


class _Table:
    """A scenario's optional table (``[utility]``, ``[pricing]``, ...): frozen, validated.

    Fields carry the file's defaults; numbers stay as the file gave them (an ``int`` where
    the file wrote one), so :meth:`to_dict` gives back the resolved table.
    """

    #: the table's name in the file (``pricing``)
    NAME: ClassVar[str]

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (the table's keys), checked like the file's keys.

        Example: ``scenario.pricing.replace(eta=0.1, target=0.7)``.

        Raises:
            MarketInputError: on an unknown key or a bad value, naming the key
                (``'pricing.eta'``) with the file's message.
        """
        types = _TABLES[self.NAME][1]
        unknown = sorted(set(changes) - set(types))
        if unknown:
            raise MarketInputError(f"unknown key {self.NAME}.{unknown[0]} (known: {', '.join(types)})")
        given = {key: changes.get(key, getattr(self, key)) for key in types}
        for key, value in given.items():  # a tuple for a list key (``weights=(...)``)
            if types[key] is list and isinstance(value, tuple):
                given[key] = list(value)
        values = _table_values(self.NAME, given, None)
        _check_table(self.NAME, values, None)
        return _build_table(self.NAME, values)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """The table as the manifest has it (lists, not tuples)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Utility(_Table):
    """``[utility]``: weights ``(alpha, beta, gamma, delta)``, ``D_max``, priority scale."""

    NAME: ClassVar[str] = "utility"
    weights: tuple[float, ...] = (0.4, 0.3, 0.1, 0.2)
    d_max: float = 200 * math.sqrt(2)
    priority_max: float = 10.0


@dataclass(frozen=True)
class Pricing(_Table):
    """``[pricing]``: the posted-price rule (:class:`market.core.pricing.PriceRule`)."""

    NAME: ClassVar[str] = "pricing"
    eta: float = 0.01
    target: float = 0.8
    schedule: str = "constant"
    lower: float = 0.5
    upper: float = 2.0
    rule: str = "utilization"
    mode: str = "multiplicative"
    clearing: bool = False
    clearing_time_limit: float = 2.0


@dataclass(frozen=True)
class Clustering(_Table):
    """``[clustering]``: clusters and candidates K (0 = automatic), spill-over neighbours."""

    NAME: ClassVar[str] = "clustering"
    clusters: int = 0
    candidates: int = 0
    spill_neighbors: int = 3


@dataclass(frozen=True)
class Capacity(_Table):
    """``[capacity]``: ``sum`` of demands or unit ``slots`` per resource; minimum cpu demand."""

    NAME: ClassVar[str] = "capacity"
    mode: str = "sum"
    slots: int = 1
    min_cpu: float = 0.0


@dataclass(frozen=True)
class Settlement(_Table):
    """``[settlement]``: rounds a request waits, share of the fairness memory carried over."""

    NAME: ClassVar[str] = "settlement"
    patience: int = 2
    fairness_memory: float = 0.0


@dataclass(frozen=True)
class Users(_Table):
    """``[users]``: the users' bidding strategies (:mod:`agents.strategies`).

    ``mix`` gives each registered strategy's share of the users (``{truthful = 0.5,
    learning = 0.5}``; shares sum to 1); without it ``shading_share`` of the users shade by
    ``shading_factor`` and the rest are truthful, as before. ``learning_*`` are the EXP3
    learners' grid of bid-shading factors, rate, exploration and initial lean towards the
    truth (:class:`agents.strategies.Learning`); ``pacing_*`` the pacing
    users' run budget (a share of their requests' budgets), step and target rate
    (:class:`agents.strategies.Pacing`). ``params`` gives a registered strategy that is not
    built in its keyword parameters (``[users.params.win_shy]``, ``factor = 0.5``).
    """

    NAME: ClassVar[str] = "users"
    shading_share: float = 0.0
    shading_factor: float = 0.8
    mix: dict[str, float] | None = None
    learning_grid: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    learning_eta: float = 0.2
    learning_gamma: float = 0.05
    learning_truthful_bias: float = 0.0
    pacing_budget_share: float = 0.5
    pacing_eta: float = 0.1
    pacing_target: str = "remaining"
    params: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Owners(_Table):
    """``[owners]``: the resource owners' reserve prices (:mod:`agents.owner`).

    ``strategy = "fixed"`` keeps every owner's reserve multiplier at ``reserve`` (0: no
    reserve, the posted price alone); ``"learning"`` makes every owner an EXP3 learner
    over the multipliers ``grid``, rewarded by its revenue (rate ``eta``, exploration
    ``gamma``). An owner's reserve unit price is its multiplier times a resource's
    ``unit_cost``; the market posts the larger of that and the price rule's price.
    """

    NAME: ClassVar[str] = "owners"
    strategy: str = "fixed"
    reserve: float = 0.0
    grid: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    eta: float = 0.05
    gamma: float = 0.1


@dataclass(frozen=True)
class OracleParams(_Table):
    """``[oracle_params]``: the whole-market oracle's limits (:mod:`market.core.oracle`).

    ``time_limit`` seconds per round for the whole oracle (a safety net: a round that hits
    it depends on the machine's speed), ``node_limit`` branch-and-bound nodes of its MILP
    (deterministic; 0 = no MILP: the proven bounds and the best allocation known,
    ``opt_status = feasible``).
    """

    NAME: ClassVar[str] = "oracle_params"
    time_limit: float = 60.0
    node_limit: int = 1000


#: table name -> (class, key -> python type(s) a file value must have); defaults: the class's
_TABLES: dict[str, tuple[type[_Table], dict[str, type | tuple[type, ...]]]] = {
    "utility": (Utility, {"weights": list, "d_max": _NUMBER, "priority_max": _NUMBER}),
    "pricing": (Pricing, {"eta": _NUMBER, "target": _NUMBER, "schedule": str, "lower": _NUMBER, "upper": _NUMBER,
                           "rule": str, "mode": str, "clearing": bool, "clearing_time_limit": _NUMBER}),
    "clustering": (Clustering, {"clusters": int, "candidates": int, "spill_neighbors": int}),
    "capacity": (Capacity, {"mode": str, "slots": int, "min_cpu": _NUMBER}),
    "settlement": (Settlement, {"patience": int, "fairness_memory": _NUMBER}),
    "users": (Users, {"shading_share": _NUMBER, "shading_factor": _NUMBER, "mix": (dict, type(None)),
                      "learning_grid": (list, tuple), "learning_eta": _NUMBER, "learning_gamma": _NUMBER, "learning_truthful_bias": _NUMBER,
                      "pacing_budget_share": _NUMBER, "pacing_eta": _NUMBER,
                      "pacing_target": str, "params": (dict, type(None))}),
    "owners": (Owners, {"strategy": str, "reserve": _NUMBER, "grid": (list, tuple), "eta": _NUMBER,
                        "gamma": _NUMBER}),
    "oracle_params": (OracleParams, {"time_limit": _NUMBER, "node_limit": int}),
}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. ``market`` keeps the source table as given (paths resolved).

    The optional tables are frozen dataclasses (``scenario.settlement.patience``);
    ``mechanism_params`` and ``market`` stay dicts (their keys depend on the mechanism and
    the source). Change a scenario with :meth:`replace`, never in place.

    ``rounds`` is the number of rounds a run plays, ``horizon`` the number of rounds the
    market spans (arrivals, capacity sizing, a trace window): the file's ``horizon`` key,
    else its ``rounds``. ``horizon=None`` when constructing means ``rounds``; after
    construction ``horizon`` is always an int. ``rounds`` may exceed ``horizon``: the
    rounds after the last arrival have only the requests still waiting.
    """

    name: str
    rounds: int
    seeds: list[int]
    mechanisms: list[str]
    market: dict[str, Any]
    horizon: int | None = None
    oracle: bool = False
    compare_flat: bool = False
    description: str = ""
    utility: Utility = field(default_factory=Utility)
    pricing: Pricing = field(default_factory=Pricing)
    clustering: Clustering = field(default_factory=Clustering)
    capacity: Capacity = field(default_factory=Capacity)
    settlement: Settlement = field(default_factory=Settlement)
    users: Users = field(default_factory=Users)
    owners: Owners = field(default_factory=Owners)
    oracle_params: OracleParams = field(default_factory=OracleParams)
    mechanism_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = ""
    #: ``[llm]``: an LLM-serving market's pools, instances and performance overrides
    #: (:mod:`scenarios.azure_llm`; only with ``source = "azure_llm"``)
    llm: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.horizon is None:  # a market spans the rounds played unless told otherwise
            object.__setattr__(self, "horizon", self.rounds)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The market's resource dimensions (``[market] dimensions``, default ``("cpu", "mem")``)."""
        from scenarios.tables import DEFAULT_DIMENSIONS

        return tuple(self.market.get("dimensions", DEFAULT_DIMENSIONS))

    def price_weights(self, dimensions: tuple[str, ...] | None = None) -> tuple[float, ...]:
        """``(D,)`` weight ``w_d`` of each dimension in a request's priced quantity ``q = sum_d w_d demand_d``.

        ``[market] price_weights``, a table from dimension to weight (dimensions left out
        weigh 0); default: 1 for the first dimension, 0 for the others (cpu: the paper's
        rule, a price per unit of cpu per round). A resource's unit price is a price per
        unit of ``q`` per round: a request pays ``price_j * q_i * duration_i`` (times the
        posted markup).

        Args:
            dimensions: the market's dimensions (default: the scenario's).
        """
        given = self.market.get("price_weights")
        dims = self.dimensions if dimensions is None else tuple(dimensions)
        if given is None:
            return tuple(1.0 if d == 0 else 0.0 for d in range(len(dims)))
        return tuple(float(given.get(name, 0.0)) for name in dims)

    def source_params(self) -> dict[str, Any]:
        """The ``[market]`` table without the keys every source shares (what the source reads)."""
        return {k: v for k, v in self.market.items() if k not in COMMON_MARKET_KEYS}

    @property
    def weights(self) -> tuple[float, float, float, float]:
        """``(alpha, beta, gamma, delta)``."""
        return tuple(float(w) for w in self.utility.weights)  # type: ignore[return-value]

    def replace(self, **changes: Any) -> Scenario:
        """A validated copy with top-level fields replaced.

        Top-level fields are the scenario's own keys (``rounds``, ``horizon``, ``seeds``,
        ``mechanisms``, ``oracle``, ``compare_flat``, ``name``, ``description``,
        ``mechanism_params``, ``market``, ``path``); a table is replaced by a table, usually
        made with the table's own ``replace``::

            scenario.replace(
                oracle=False,
                utility=scenario.utility.replace(weights=(0.5, 0.2, 0.1, 0.2)),
                pricing=scenario.pricing.replace(eta=0.05, target=0.7),
            )

        Values are checked like the file's keys, with the same messages (they usually come
        from the command line, a sweep file or the dashboard). ``market`` and ``path`` are
        taken as given: the market's source checks its table when the market is built.

        ``rounds`` alone changes the rounds played and keeps the horizon (the market): the
        copy's run is the first ``rounds`` rounds of the original's, or runs on past the
        last arrival. To build the market over the new number of rounds instead, give the
        horizon too: ``replace(rounds=5, horizon=5)`` (or ``horizon=None``: the rounds).

        Raises:
            MarketInputError: on an unknown field or a bad value, naming the key.
        """
        known = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise MarketInputError(f"unknown key {unknown[0]!r} (known: {', '.join(known)})")
        for key, value in changes.items():
            if key in _TABLES:
                cls = _TABLES[key][0]
                if not isinstance(value, cls):
                    raise MarketInputError(f"key {key!r} must be {cls.__name__}, got {value!r}")
                changes[key] = value.replace()  # checked even if built directly
            elif key in _TOP and key not in ("seeds", "mechanisms"):  # those: their own checks below
                _check(value, _TOP[key][0], key, None)
            elif key in ("market", "mechanism_params", "llm"):
                _check(value, dict, key, None)
            elif key == "path":
                _check(value, str, key, None)
        if "name" in changes and not changes["name"].strip():
            raise MarketInputError("key 'name' must not be empty")
        if "rounds" in changes:
            _check_range(changes["rounds"], "rounds", None)
        if changes.get("horizon") is not None:
            _check(changes["horizon"], int, "horizon", None)
            _check_range(changes["horizon"], "horizon", None)
        if "seeds" in changes:
            changes["seeds"] = _check_seeds(changes["seeds"], None)
        if "mechanisms" in changes:
            changes["mechanisms"] = _check_mechanisms(changes["mechanisms"], None)
        if "mechanism_params" in changes:
            changes["mechanism_params"] = _mechanism_params({"mechanism_params": changes["mechanism_params"]}, None)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the manifest): tables as dicts, ``utility.weights`` a list."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    """A field's value as plain data: tables as dicts, tuples as lists, containers copied."""
    if isinstance(value, _Table):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _type_name(t: type | tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


def _check(value: Any, expected: type | tuple[type, ...], key: str, source: str | None) -> Any:
    ok = isinstance(value, expected) and not (isinstance(value, bool) and expected in (int, _NUMBER))
    if not ok:
        raise MarketInputError(f"key {key!r} must be {_type_name(expected)}, got {value!r}", source=source)
    if isinstance(value, float) and not math.isfinite(value):
        raise MarketInputError(f"key {key!r} must be a finite number, got {value!r}", source=source)
    return value


def _check_range(value: float, key: str, source: str | None) -> None:
    low, high, low_open, high_open = _RANGES[key]
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not (too_low or too_high):
        return
    if high is None:
        want = f"{'>' if low_open else '>='} {low}"
    else:
        want = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    raise MarketInputError(f"key {key!r} must be {want}, got {value!r}", source=source)


def _table(raw: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    given = raw.get(name, {})
    if not isinstance(given, dict):
        raise MarketInputError(f"[{name}] must be a table, got {given!r}", source=source)
    return _table_values(name, given, source)


def _table_values(name: str, given: dict[str, Any], source: str | None) -> dict[str, Any]:
    """Table ``name``'s values: ``given`` checked (type, range, choice), defaults filled in."""
    cls, types = _TABLES[name]
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise MarketInputError(f"unknown key {name}.{unknown[0]} (known: {', '.join(types)})", source=source)
    out = {}
    for f in fields(cls):
        key, full = f.name, f"{name}.{f.name}"
        out[key] = _check(given[key], types[key], full, source) if key in given else f.default
        if full in _RANGES:
            _check_range(out[key], full, source)
        if full in _CHOICES and out[key] not in _CHOICES[full]:
            choices = " or ".join(repr(c) for c in _CHOICES[full])
            raise MarketInputError(f"key {full!r} must be {choices}, got {out[key]!r}", source=source)
    return out


def _check_grid(values: dict[str, Any], key: str, low: float, high: float, closed: bool, source: str | None) -> None:
    """``values[key]``: increasing numbers in ``(low, high]`` (``[low, high]`` if ``closed``), as a tuple."""
    name = key.split(".", 1)[1]
    grid = values[name]
    inside = (lambda g: low <= g <= high) if closed else (lambda g: low < g <= high)
    numbers = all(isinstance(g, int | float) and not isinstance(g, bool) and inside(g) for g in grid)
    if not grid or not numbers or any(b <= a for a, b in itertools.pairwise(grid)):
        span = f"{'[' if closed else '('}{low:g}, {high:g}]"
        raise MarketInputError(f"key {key!r} must be increasing numbers in {span}, got {list(grid)!r}", source=source)
    values[name] = tuple(float(g) for g in grid)


def _check_users(values: dict[str, Any], source: str | None) -> None:
    """``[users]``: an increasing learning grid in (0, 1.5]; mix shares finite, >= 0, summing to 1.

    Strategy names are checked when the model is built (plug-ins may add names).
    """
    _check_grid(values, "users.learning_grid", 0.0, 1.5, False, source)
    _check_strategy_params(values["params"], source)
    mix = values["mix"]
    if mix is None:
        return
    if values["shading_share"] != 0:
        raise MarketInputError(f"key 'users.shading_share' ({values['shading_share']!r}) cannot be given with users.mix "
                               "(put the shading share in users.mix)", source=source)
    if not mix:
        raise MarketInputError("key 'users.mix' must be a table of shares, got {}", source=source)
    for key, value in mix.items():
        if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0):
            raise MarketInputError(f"key 'users.mix.{key}' must be a finite number >= 0, got {value!r}", source=source)
    total = math.fsum(mix.values())
    if abs(total - 1.0) > 1e-9:
        raise MarketInputError(f"key 'users.mix' shares must sum to 1, got {total!r}", source=source)


def _check_strategy_params(params: dict[str, Any] | None, source: str | None) -> None:
    """``[users.params.<name>]``: a table per strategy, finite values.

    Names, and whether the class accepts the parameters, are checked with the mix when the
    model is built (plug-ins may add names; a built-in strategy takes its parameters from
    ``users.<name>_<param>``: :func:`market.core.model.user_population`).
    """
    for name, table in (params or {}).items():
        key = f"users.params.{name}"
        if not isinstance(table, dict):
            raise MarketInputError(f"key {key!r} must be a table of parameters, got {table!r}", source=source)
        _check_finite_params(key, table, source)


def _check_finite_params(key: str, table: dict[str, Any], source: str | None) -> None:
    """A plug-in's parameter table ``[<key>]`` (a mechanism's or a strategy's): no NaN or infinite float."""
    for param, value in table.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise MarketInputError(f"key '{key}.{param}' must be a finite number, got {value!r}", source=source)


def _check_table(name: str, values: dict[str, Any], source: str | None) -> None:
    """The checks across a table's keys (weights, price bounds)."""
    if name == "utility":
        _check_weights(values["weights"], source)
    if name == "users":
        _check_users(values, source)
    if name == "owners":
        _check_grid(values, "owners.grid", 0.0, 100.0, True, source)
    if name == "pricing" and values["lower"] >= values["upper"]:  # equal bounds: a price that never moves
        raise MarketInputError(
            f"key 'pricing.lower' must be below 'pricing.upper' ({values['upper']!r}), "
            f"got {values['lower']!r}", source=source,
        )


def _build_table(name: str, values: dict[str, Any]) -> _Table:
    """The table object of checked ``values`` (lists become tuples)."""
    return _TABLES[name][0](**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _check_seeds(seeds: Any, source: str | None) -> list[int]:
    ok = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if not ok or not seeds:
        raise MarketInputError(f"key 'seeds' must be a non-empty list of non-negative integers, got {seeds!r}", source=source)
    dup = [s for i, s in enumerate(seeds) if s in seeds[:i]]
    if dup:
        raise MarketInputError(f"key 'seeds': seed {dup[0]} is listed twice", source=source)
    return list(seeds)


def _check_mechanisms(mechanisms: Any, source: str | None) -> list[str]:
    from mechanisms import available

    if not isinstance(mechanisms, list) or not mechanisms or not all(isinstance(m, str) for m in mechanisms):
        raise MarketInputError(f"key 'mechanisms' must be a non-empty list of names, got {mechanisms!r}", source=source)
    for i, m in enumerate(mechanisms):
        if m not in available():
            raise MarketInputError(f"key 'mechanisms': unknown mechanism {m!r} (available: {', '.join(available())})", source=source)
        if m in mechanisms[:i]:
            raise MarketInputError(f"key 'mechanisms': mechanism {m!r} is listed twice", source=source)
    return list(mechanisms)


def _check_weights(weights: list[Any], source: str | None) -> None:
    numbers = all(isinstance(w, _NUMBER) and not isinstance(w, bool) and math.isfinite(w) and w >= 0 for w in weights)
    if len(weights) != 4 or not numbers:
        raise MarketInputError(f"key 'utility.weights' must be 4 non-negative numbers, got {weights!r}", source=source)
    if sum(weights) > 1 + 1e-9:
        raise MarketInputError(f"key 'utility.weights' must sum to at most 1 (utility in [0, 1]), got {sum(weights)}", source=source)


def _mechanism_params(raw: dict[str, Any], source: str | None) -> dict[str, dict[str, Any]]:
    """``[mechanism_params.<name>]`` tables: known mechanisms, finite values, accepted by the class."""
    from mechanisms import create, mechanism_class

    params = raw.get("mechanism_params", {})
    if not isinstance(params, dict):
        raise MarketInputError(f"[mechanism_params] must be a table, got {params!r}", source=source)
    for name, table in params.items():
        key = f"mechanism_params.{name}"
        try:
            mechanism_class(name)
        except MarketInputError as exc:
            raise MarketInputError(f"key {key!r}: {exc}", source=source) from None
        if not isinstance(table, dict):
            raise MarketInputError(f"[{key}] must be a table of parameters, got {table!r}", source=source)
        _check_finite_params(key, table, source)
        try:
            create(name, **table)
        except MarketInputError as exc:
            raise MarketInputError(f"key {key!r}: {exc}", source=source) from None
        except (TypeError, ValueError) as exc:  # a mechanism's own check of its parameters
            raise MarketInputError(f"key {key!r}: bad parameters {table}: {exc}", source=source) from None
    return params


def parse(raw: dict[str, Any], source: str, base_dir: Path) -> Scenario:
    """Validate a scenario dict (as read from TOML).

    Every key is checked for type, range and finiteness (TOML allows ``nan`` and
    ``inf``); seeds and mechanisms must be distinct; unknown keys and mechanisms are
    errors; table paths must stay inside the scenario's folder.

    Args:
        raw: the parsed TOML.
        source: the file name for messages.
        base_dir: folder that relative paths are resolved against.

    Raises:
        MarketInputError: on the first bad key or value.
    """
    known = [*_TOP, "horizon", *_TABLES, "market", "mechanism_params", "llm"]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise MarketInputError(f"unknown key {unknown[0]!r} (known: {', '.join(known)})", source=source)
    top: dict[str, Any] = {}
    for key, (typ, default) in _TOP.items():
        if key in raw:
            top[key] = _check(raw[key], typ, key, source)
        elif default is None:
            raise MarketInputError(f"missing required key {key!r}", source=source)
        else:
            top[key] = default
    if not top["name"].strip():
        raise MarketInputError("key 'name' must not be empty", source=source)
    _check_range(top["rounds"], "rounds", source)
    if "horizon" in raw:
        top["horizon"] = _check(raw["horizon"], int, "horizon", source)
        _check_range(top["horizon"], "horizon", source)
    top["seeds"] = _check_seeds(top["seeds"], source)
    top["mechanisms"] = _check_mechanisms(top["mechanisms"], source)
    values = {name: _table(raw, name, source) for name in _TABLES}
    for name in _TABLES:
        _check_table(name, values[name], source)
    tables = {name: _build_table(name, values[name]) for name in _TABLES}
    mech_params = _mechanism_params(raw, source)
    market = _market(raw, source, base_dir)
    llm = raw.get("llm", {})
    if not isinstance(llm, dict):
        raise MarketInputError(f"[llm] must be a table, got {llm!r}", source=source)
    if "llm" in raw and market["source"] != "azure_llm":
        raise MarketInputError(f"[llm] is for source 'azure_llm', not {market['source']!r}", source=source)
    if market["source"] == "azure_llm":
        from scenarios import azure_llm

        azure_llm.options({k: v for k, v in market.items() if k not in COMMON_MARKET_KEYS}, llm, source)
    return Scenario(**top, market=market, mechanism_params=mech_params, path=source, llm=llm, **tables)


def _market(raw: dict[str, Any], source: str, base_dir: Path) -> dict[str, Any]:
    market = raw.get("market")
    if not isinstance(market, dict):
        raise MarketInputError("missing required table [market]", source=source)
    kind = market.get("source")
    if kind not in SOURCES:
        raise MarketInputError(f"key 'market.source' must be one of {', '.join(SOURCES)}, got {kind!r}", source=source)
    for key, value in market.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise MarketInputError(f"key 'market.{key}' must be a finite number, got {value!r}", source=source)
    market = dict(market)
    _common_market_keys(market, source)
    if kind in _MARKET_KEYS:
        unknown = sorted(set(market) - {*_MARKET_KEYS[kind], *COMMON_MARKET_KEYS})
        if unknown:
            known = ", ".join(_MARKET_KEYS[kind])
            raise MarketInputError(f"unknown key market.{unknown[0]} for source {kind!r} (known: {known})", source=source)
    if kind == "synthetic":
        _synthetic({k: v for k, v in market.items() if k not in COMMON_MARKET_KEYS}, source)
        missing = [d for d in ("cpu", "mem") if d not in market.get("dimensions", ("cpu", "mem"))]
        if missing:
            raise MarketInputError(f"key 'market.dimensions': a synthetic market has cpu and mem; {missing[0]!r} is missing",
                                   source=source)
    if kind == "tabular":
        for key in ("requests", "resources"):
            market[key] = str(_table_path(market.get(key), f"market.{key}", source, base_dir))
    return market


def _common_market_keys(market: dict[str, Any], source: str) -> None:
    """Check ``market.dimensions`` and ``market.price_weights`` in place (one line naming the key)."""
    from scenarios.tables import DEFAULT_DIMENSIONS, check_dimensions

    if "dimensions" in market:
        market["dimensions"] = list(check_dimensions(market["dimensions"], source))
    dims = market.get("dimensions", list(DEFAULT_DIMENSIONS))
    if "price_weights" in market:
        weights = market["price_weights"]
        if not isinstance(weights, dict) or not weights:
            raise MarketInputError(f"key 'market.price_weights' must be a table of dimension = weight, got {weights!r}",
                                   source=source)
        for name, w in weights.items():
            key = f"market.price_weights.{name}"
            if name not in dims:
                raise MarketInputError(f"key {key!r}: {name!r} is not a dimension of the market ({', '.join(dims)})",
                                       source=source)
            if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
                raise MarketInputError(f"key {key!r} must be a finite number >= 0, got {w!r}", source=source)
        if not any(w > 0 for w in weights.values()):
            raise MarketInputError("key 'market.price_weights' must give some dimension a weight > 0 "
                                   f"(else every price is 0), got {weights!r}", source=source)
        market["price_weights"] = {name: float(w) for name, w in weights.items()}


def _synthetic(market: dict[str, Any], source: str) -> None:
    """The generator's own checks, plus whole numbers for counts and shares in [0, 1]."""
    from scenarios import synthetic

    for key, value in market.items():
        default = synthetic.DEFAULTS.get(key)
        if isinstance(default, int) and not isinstance(default, bool) and (not isinstance(value, int) or isinstance(value, bool)):
            raise MarketInputError(f"key 'market.{key}' must be int, got {value!r}", source=source)
    try:
        params = synthetic.params(market)
    except MarketInputError as exc:
        raise MarketInputError(str(exc), source=source) from None
    if not 0 <= params["qos_share"] <= 1:
        raise MarketInputError(f"key 'market.qos_share' must be in [0, 1], got {params['qos_share']!r}", source=source)


def _table_path(value: Any, key: str, source: str, base_dir: Path) -> Path:
    """A table path of the scenario, resolved; it must stay inside the scenario's folder."""
    from scenarios.tables import TABLE_SUFFIXES, has_table_suffix

    if not isinstance(value, str) or not value.strip():
        raise MarketInputError(f"missing required key {key!r} (a CSV or Parquet path)", source=source)
    path = (base_dir / value).resolve()
    if not path.is_relative_to(base_dir.resolve()):
        raise MarketInputError(f"key {key!r}: path {value!r} leaves the scenario's folder", source=source)
    if not has_table_suffix(path):
        raise MarketInputError(f"key {key!r}: {value!r} is not a table file ({', '.join(TABLE_SUFFIXES)})", source=source)
    if not path.is_file():
        raise MarketInputError(f"key {key!r}: no such file {value!r}", source=source)
    return path


def load(path_or_name: str | Path) -> Scenario:
    """Load a scenario from a file path or the name of a shipped scenario.

    Raises:
        MarketInputError: if the file is missing, is not TOML or fails validation.
    """
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{path_or_name}.toml"
    if not path.is_file():
        raise MarketInputError(f"no such scenario file or shipped scenario: {path_or_name} (see: market scenarios)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MarketInputError(f"not valid TOML: {exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise MarketInputError(f"not a UTF-8 text file: {exc}", source=str(path)) from None
    except OSError as exc:
        raise MarketInputError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    return parse(raw, str(path), path.parent)


def shipped() -> list[tuple[str, str]]:
    """``(name, description)`` of the scenarios that come with the package."""
    out = []
    for p in sorted(SCENARIO_DIR.glob("*.toml")):
        try:
            out.append((p.stem, load(p).description))
        except MarketInputError as exc:
            out.append((p.stem, f"(invalid: {exc})"))
    return out
