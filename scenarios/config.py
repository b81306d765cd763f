"""Scenario files: TOML with fixed keys (DESIGN.md §5.1), validated on load.

Fixed keys (other tools write them): ``name, rounds, seeds, mechanisms, oracle`` and a
``[market]`` table with ``source`` (``synthetic``, ``tabular``, ``google2011``) and, for
``tabular``, ``requests`` and ``resources`` paths relative to the scenario file. Our own
optional tables: ``[utility]``, ``[pricing]``, ``[clustering]``, ``[settlement]``,
``[users]``, ``[oracle_params]`` and ``[mechanism_params.<name>]``. Every error names the
file, the key and the bad value, in one line.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from market.errors import MarketInputError
from market.pricing import PriceRule

SCENARIO_DIR = Path(__file__).resolve().parent
SOURCES = ("synthetic", "tabular", "google2011")

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
_TABLES: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "utility": {"weights": (list, [0.4, 0.3, 0.1, 0.2]), "d_max": ((int, float), 200 * math.sqrt(2)),
                "priority_max": ((int, float), 10.0)},
    "pricing": {"eta": ((int, float), 0.01), "target": ((int, float), 0.8), "schedule": (str, "constant"),
                "lower": ((int, float), 0.5), "upper": ((int, float), 2.0)},
    "clustering": {"clusters": (int, 0), "candidates": (int, 0), "spill_neighbors": (int, 3)},
    "capacity": {"mode": (str, "sum"), "slots": (int, 1), "min_cpu": ((int, float), 0.0)},
    "settlement": {"patience": (int, 2), "fairness_memory": ((int, float), 0.0)},
    "users": {"shading_share": ((int, float), 0.0), "shading_factor": ((int, float), 0.8)},
    "oracle_params": {"time_limit": ((int, float), 20.0)},
}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. ``market`` keeps the source table as given (paths resolved)."""

    name: str
    rounds: int
    seeds: list[int]
    mechanisms: list[str]
    market: dict[str, Any]
    oracle: bool = False
    compare_flat: bool = False
    description: str = ""
    utility: dict[str, Any] = field(default_factory=dict)
    pricing: dict[str, Any] = field(default_factory=dict)
    clustering: dict[str, Any] = field(default_factory=dict)
    capacity: dict[str, Any] = field(default_factory=dict)
    settlement: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    oracle_params: dict[str, Any] = field(default_factory=dict)
    mechanism_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = ""

    @property
    def weights(self) -> tuple[float, float, float, float]:
        """``(alpha, beta, gamma, delta)``."""
        return tuple(float(w) for w in self.utility["weights"])  # type: ignore[return-value]

    @property
    def price_rule(self) -> PriceRule:
        """The pricing rule."""
        return PriceRule(**self.pricing)

    def with_overrides(self, **changes: Any) -> Scenario:
        """A copy with top-level fields replaced (``rounds``, ``seeds``, ``mechanisms``)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the manifest)."""
        from dataclasses import asdict

        return asdict(self)


def _type_name(t: type | tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


def _check(value: Any, expected: type | tuple[type, ...], key: str, source: str) -> Any:
    ok = isinstance(value, expected) and not (isinstance(value, bool) and expected in (int, (int, float)))
    if not ok:
        raise MarketInputError(f"key {key!r} must be {_type_name(expected)}, got {value!r}", source=source)
    return value


def _table(raw: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    given = raw.get(name, {})
    if not isinstance(given, dict):
        raise MarketInputError(f"[{name}] must be a table, got {given!r}", source=source)
    spec = _TABLES[name]
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise MarketInputError(f"unknown key {name}.{unknown[0]} (known: {', '.join(spec)})", source=source)
    out = {}
    for key, (typ, default) in spec.items():
        out[key] = _check(given[key], typ, f"{name}.{key}", source) if key in given else default
    return out


def parse(raw: dict[str, Any], source: str, base_dir: Path) -> Scenario:
    """Validate a scenario dict (as read from TOML).

    Args:
        raw: the parsed TOML.
        source: the file name for messages.
        base_dir: folder that relative paths are resolved against.

    Raises:
        MarketInputError: on the first bad key or value.
    """
    from mechanisms import available, mechanism_class

    known = set(_TOP) | set(_TABLES) | {"market", "mechanism_params"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise MarketInputError(f"unknown key {unknown[0]!r}", source=source)
    top: dict[str, Any] = {}
    for key, (typ, default) in _TOP.items():
        if key in raw:
            top[key] = _check(raw[key], typ, key, source)
        elif default is None:
            raise MarketInputError(f"missing required key {key!r}", source=source)
        else:
            top[key] = default
    if top["rounds"] < 1:
        raise MarketInputError(f"key 'rounds' must be >= 1, got {top['rounds']}", source=source)
    if not top["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in top["seeds"]):
        raise MarketInputError(f"key 'seeds' must be a non-empty list of non-negative integers, got {top['seeds']!r}", source=source)
    if not top["mechanisms"] or not all(isinstance(m, str) for m in top["mechanisms"]):
        raise MarketInputError(f"key 'mechanisms' must be a non-empty list of names, got {top['mechanisms']!r}", source=source)
    for m in top["mechanisms"]:
        if m not in available():
            raise MarketInputError(f"key 'mechanisms': unknown mechanism {m!r} (available: {', '.join(available())})", source=source)
    tables = {name: _table(raw, name, source) for name in _TABLES}
    weights = tables["utility"]["weights"]
    if len(weights) != 4 or not all(isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights):
        raise MarketInputError(f"key 'utility.weights' must be 4 non-negative numbers, got {weights!r}", source=source)
    if sum(weights) > 1 + 1e-9:
        raise MarketInputError(f"key 'utility.weights' must sum to at most 1 (utility in [0, 1]), got {sum(weights)}", source=source)
    if tables["pricing"]["schedule"] not in ("constant", "sqrt"):
        raise MarketInputError(f"key 'pricing.schedule' must be 'constant' or 'sqrt', got {tables['pricing']['schedule']!r}", source=source)
    if not 0 < tables["pricing"]["target"] <= 1:
        raise MarketInputError(f"key 'pricing.target' must be in (0, 1], got {tables['pricing']['target']}", source=source)
    if tables["capacity"]["mode"] not in ("sum", "slots"):
        raise MarketInputError(f"key 'capacity.mode' must be 'sum' or 'slots', got {tables['capacity']['mode']!r}", source=source)
    if tables["capacity"]["slots"] < 1:
        raise MarketInputError(f"key 'capacity.slots' must be >= 1, got {tables['capacity']['slots']}", source=source)
    for key in ("clusters", "candidates"):
        if tables["clustering"][key] < 0:
            raise MarketInputError(f"key 'clustering.{key}' must be >= 0 (0 = automatic), got {tables['clustering'][key]}", source=source)
    mech_params = raw.get("mechanism_params", {})
    if not isinstance(mech_params, dict) or not all(isinstance(v, dict) for v in mech_params.values()):
        raise MarketInputError("[mechanism_params] must hold one table per mechanism", source=source)
    for m in mech_params:
        mechanism_class(m)  # unknown names raise
    market = _market(raw, source, base_dir)
    return Scenario(**top, market=market, mechanism_params=mech_params, path=source, **tables)


def _market(raw: dict[str, Any], source: str, base_dir: Path) -> dict[str, Any]:
    market = raw.get("market")
    if not isinstance(market, dict):
        raise MarketInputError("missing required table [market]", source=source)
    kind = market.get("source")
    if kind not in SOURCES:
        raise MarketInputError(f"key 'market.source' must be one of {', '.join(SOURCES)}, got {kind!r}", source=source)
    market = dict(market)
    if kind == "tabular":
        for key in ("requests", "resources"):
            if not isinstance(market.get(key), str):
                raise MarketInputError(f"missing required key 'market.{key}' (a CSV or Parquet path)", source=source)
            path = (base_dir / market[key]).resolve()
            if not path.is_relative_to(base_dir.resolve()):
                raise MarketInputError(f"key 'market.{key}': path {market[key]!r} leaves the scenario's folder", source=source)
            if not path.is_file():
                raise MarketInputError(f"key 'market.{key}': no such file {market[key]!r}", source=source)
            market[key] = str(path)
    return market


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
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise MarketInputError(f"not valid TOML: {exc}", source=str(path)) from None
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
