"""Scenario files: TOML with fixed keys (README, "Architecture", contract 1), validated on load.

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

SCENARIO_DIR = Path(__file__).resolve().parent
SOURCES = ("synthetic", "tabular", "google2011")
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
_TABLES: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "utility": {"weights": (list, [0.4, 0.3, 0.1, 0.2]), "d_max": (_NUMBER, 200 * math.sqrt(2)),
                "priority_max": (_NUMBER, 10.0)},
    "pricing": {"eta": (_NUMBER, 0.01), "target": (_NUMBER, 0.8), "schedule": (str, "constant"),
                "lower": (_NUMBER, 0.5), "upper": (_NUMBER, 2.0)},
    "clustering": {"clusters": (int, 0), "candidates": (int, 0), "spill_neighbors": (int, 3)},
    "capacity": {"mode": (str, "sum"), "slots": (int, 1), "min_cpu": (_NUMBER, 0.0)},
    "settlement": {"patience": (int, 2), "fairness_memory": (_NUMBER, 0.0)},
    "users": {"shading_share": (_NUMBER, 0.0), "shading_factor": (_NUMBER, 0.8)},
    "oracle_params": {"time_limit": (_NUMBER, 60.0), "node_limit": (int, 1000)},
}
#: numeric ranges ``key -> (low, high, low_open, high_open)``; ``None`` = unbounded
_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "rounds": (1, None, False, False),
    "utility.d_max": (0, None, True, False),
    "utility.priority_max": (0, None, True, False),
    "pricing.eta": (0, None, False, False),
    "pricing.target": (0, 1, True, False),
    "pricing.lower": (0, None, False, False),
    "pricing.upper": (0, None, True, False),
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
    "oracle_params.node_limit": (1, None, False, False),
}
_CHOICES = {"pricing.schedule": ("constant", "sqrt"), "capacity.mode": ("sum", "slots")}
#: keys of ``[market]`` for each source that this module checks (google2011: its loader does)
_MARKET_KEYS = {"tabular": ("source", "requests", "resources")}


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

    def with_overrides(self, **changes: Any) -> Scenario:
        """A copy with top-level fields replaced (``rounds``, ``seeds``, ``mechanisms``).

        New ``rounds``, ``seeds`` and ``mechanisms`` are checked like the file's keys
        (they usually come from the command line).

        Raises:
            MarketInputError: on a bad value, naming the key.
        """
        if "rounds" in changes:
            _check(changes["rounds"], int, "rounds", None)
            _check_range(changes["rounds"], "rounds", None)
        if "seeds" in changes:
            changes["seeds"] = _check_seeds(changes["seeds"], None)
        if "mechanisms" in changes:
            changes["mechanisms"] = _check_mechanisms(changes["mechanisms"], None)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the manifest)."""
        from dataclasses import asdict

        return asdict(self)


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
    spec = _TABLES[name]
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise MarketInputError(f"unknown key {name}.{unknown[0]} (known: {', '.join(spec)})", source=source)
    out = {}
    for key, (typ, default) in spec.items():
        full = f"{name}.{key}"
        out[key] = _check(given[key], typ, full, source) if key in given else default
        if full in _RANGES:
            _check_range(out[key], full, source)
        if full in _CHOICES and out[key] not in _CHOICES[full]:
            choices = " or ".join(repr(c) for c in _CHOICES[full])
            raise MarketInputError(f"key {full!r} must be {choices}, got {out[key]!r}", source=source)
    return out


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


def _check_weights(weights: list[Any], source: str) -> None:
    numbers = all(isinstance(w, _NUMBER) and not isinstance(w, bool) and math.isfinite(w) and w >= 0 for w in weights)
    if len(weights) != 4 or not numbers:
        raise MarketInputError(f"key 'utility.weights' must be 4 non-negative numbers, got {weights!r}", source=source)
    if sum(weights) > 1 + 1e-9:
        raise MarketInputError(f"key 'utility.weights' must sum to at most 1 (utility in [0, 1]), got {sum(weights)}", source=source)


def _mechanism_params(raw: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
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
        for param, value in table.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise MarketInputError(f"key '{key}.{param}' must be a finite number, got {value!r}", source=source)
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
    known = [*_TOP, *_TABLES, "market", "mechanism_params"]
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
    top["seeds"] = _check_seeds(top["seeds"], source)
    top["mechanisms"] = _check_mechanisms(top["mechanisms"], source)
    tables = {name: _table(raw, name, source) for name in _TABLES}
    _check_weights(tables["utility"]["weights"], source)
    if tables["pricing"]["lower"] > tables["pricing"]["upper"]:
        raise MarketInputError(
            f"key 'pricing.lower' must be at most 'pricing.upper' ({tables['pricing']['upper']!r}), "
            f"got {tables['pricing']['lower']!r}", source=source,
        )
    mech_params = _mechanism_params(raw, source)
    market = _market(raw, source, base_dir)
    return Scenario(**top, market=market, mechanism_params=mech_params, path=source, **tables)


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
    if kind in _MARKET_KEYS:
        unknown = sorted(set(market) - set(_MARKET_KEYS[kind]))
        if unknown:
            known = ", ".join(_MARKET_KEYS[kind])
            raise MarketInputError(f"unknown key market.{unknown[0]} for source {kind!r} (known: {known})", source=source)
    if kind == "synthetic":
        _synthetic(market, source)
    if kind == "tabular":
        for key in ("requests", "resources"):
            market[key] = str(_table_path(market.get(key), f"market.{key}", source, base_dir))
    return market


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
