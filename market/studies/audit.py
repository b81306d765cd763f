"""Strategic audit: can a user gain by misreporting? (``market audit``).

For one scenario, seed and mechanism, each user in turn misreports while everything else
(every other user, the market, the seed) stays fixed, and the market is run again:

- ``bid``: the user's bid scale becomes ``f`` (1 is truthful). First-price bids
  ``f * value``; second-price reports ``f * budget`` (capped at the budget, so ``f > 1``
  changes nothing there); posted-price mechanisms ignore bids.
- ``budget``: the budget the market sees for each of the user's requests becomes
  ``f * budget``. The budget enters the cost utility ``u_cost = 1 - cost / budget``,
  which candidates are affordable and the cap on payments, so this misreport reaches
  every mechanism.

Every outcome is scored with the user's **true** utility: the sum over its served requests
of ``value - payment``, where ``value = B * b_ij`` uses the true budget ``B`` in
``b_ij`` too (a user's private value for resource ``j``; README, "Architecture": the
mechanism interface). The gain of a misreport is its true utility minus the true
utility of reporting truthfully, everything else equal; ``relative_gain`` divides it by
``max(|truthful utility|, the user's total budget)``. A misreport is *profitable* when
``relative_gain > 1e-9``.

Only the rounds in which the user still has a request waiting are replayed (its utility
cannot depend on later rounds). Outputs (``--out DIR``, written atomically): ``audit.csv``
(one row per user, kind and factor), ``summary.csv`` (per kind: users, profitable
misreports, the largest gain and who got it) and ``audit.md`` (both as Markdown).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scenarios.tables import MarketData

#: misreport factors tried by default (1 = truthful is the reference)
DEFAULT_FACTORS = (0.5, 0.75, 0.9, 0.95, 1.05, 1.1, 1.5, 2.0)
KINDS = ("bid", "budget")
#: a misreport is profitable when its gain exceeds this share of the user's scale
RELATIVE_TOLERANCE = 1e-9

AUDIT_COLUMNS = [
    "mechanism", "seed", "user_id", "requests", "kind", "factor", "served", "value", "payment",
    "utility", "truthful_served", "truthful_utility", "gain", "relative_gain", "profitable",
]
SUMMARY_COLUMNS = [
    "mechanism", "seed", "kind", "users", "misreports", "profitable", "users_with_profitable",
    "max_gain", "max_relative_gain", "best_user_id", "best_factor",
]


@dataclass(frozen=True)
class UserOutcome:
    """What one user got over a run, scored with its true values."""

    served: int
    value: float
    payment: float

    @property
    def utility(self) -> float:
        """True utility: value minus payment."""
        return self.value - self.payment


def true_base_utility(
    base: np.ndarray, cost: np.ndarray, reported: np.ndarray, true: np.ndarray, alpha: float
) -> np.ndarray:
    """``b_ij`` at the true budget, from ``b_ij`` at the reported one.

    Only the cost term ``alpha * clip(1 - cost / budget, 0, 1)`` of the pair utility
    depends on the budget (market/candidates.py), so the difference is that term's.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        u_rep = np.clip(1.0 - cost / reported, 0.0, 1.0)
        u_true = np.clip(1.0 - cost / true, 0.0, 1.0)
    return base + alpha * (u_true - u_rep)


class Auditor:
    """Replays one scenario's market with one user misreporting at a time.

    Args:
        scenario: the validated scenario.
        mechanism: the mechanism's name.
        seed: the seed (fixes the market and every draw).
    """

    def __init__(self, scenario, mechanism: str, seed: int) -> None:
        from mechanisms import mechanism_class
        from scenarios.sources import build_market

        mechanism_class(mechanism)  # unknown names raise here, before any work
        self.scenario = scenario
        self._run_scenario = scenario.replace(oracle=False, compare_flat=False)  # what each run plays
        self.mechanism = mechanism
        self.seed = seed
        self.market = build_market(scenario, seed)
        req = self.market.requests
        self.true_budget = req["budget"].to_numpy(dtype=float)
        self.user_ids, self.request_user = np.unique(req["user_id"].to_numpy(), return_inverse=True)
        patience = int(scenario.settlement.patience)
        arrival = req["round"].to_numpy()
        live = arrival < scenario.rounds
        self.last_round = np.full(self.user_ids.size, -1)
        np.maximum.at(self.last_round, self.request_user[live], np.minimum(arrival[live] + patience, scenario.rounds - 1))
        self.alpha = float(scenario.weights[0])

    @property
    def users(self) -> np.ndarray:
        """Dense indices of users with at least one request inside the horizon."""
        return np.flatnonzero(self.last_round >= 0)

    def outcome(self, user: int, kind: str = "bid", factor: float = 1.0) -> UserOutcome:
        """Run the market with ``user`` (dense index) misreporting; score it truthfully."""
        from market.core.model import MarketModel

        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        mine = self.request_user == user
        market = self.market
        if kind == "budget":
            req = market.requests.copy()
            # as floats: a table of whole-number budgets is read as integers, which a scaled
            # budget cannot be written into
            budget = req["budget"].to_numpy(dtype=float, copy=True)
            budget[mine] = self.true_budget[mine] * factor
            req["budget"] = budget
            market = MarketData(req, market.resources, priority_max=market.priority_max)
        model = MarketModel(self._run_scenario, mechanism=self.mechanism, rng=self.seed, market=market)
        # the user's bid scale: its misreport, or 1 (truthful); everybody else keeps theirs
        scale = factor if kind == "bid" else 1.0
        model.user_agents[user].strategy = _strategy(scale)
        served = 0
        value = payment = 0.0
        for _ in range(int(self.last_round[user]) + 1):
            model.step()
            # the round's record: its order book and the prices it cleared at
            rec = model.record
            rows, book, out = rec.rows, rec.book, rec.outcome
            hit = np.flatnonzero((out.resource >= 0) & mine[rows])
            if hit.size == 0:
                continue
            r = rows[hit]
            cost = rec.prices[out.resource[hit]] * book.columns["priced"][hit] * book.columns["duration"][hit]
            base = true_base_utility(out.base_utility[hit], cost, book.columns["budget"][hit], self.true_budget[r], self.alpha)
            served += hit.size
            value += float(np.sum(self.true_budget[r] * base))
            payment += float(np.sum(out.payment[hit]))
        return UserOutcome(served, value, payment)

    def audit(
        self,
        factors: Sequence[float] = DEFAULT_FACTORS,
        kinds: Sequence[str] = KINDS,
        users: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """Every (user, kind, factor) misreport against the user's truthful outcome.

        Args:
            factors: misreport factors (1 is skipped: it is the reference).
            kinds: ``"bid"`` and/or ``"budget"``.
            users: dense user indices (default: every user with a request in the horizon).
            progress: called with (done, total) after each run.

        Returns:
            One row per misreport, columns :data:`AUDIT_COLUMNS`.
        """
        factors = [float(f) for f in factors if f != 1.0]
        users = list(self.users if users is None else users)
        total = len(users) * (1 + len(kinds) * len(factors))
        done = 0
        rows = []
        for u in users:
            truth = self.outcome(u)
            done += 1
            n_requests = int(np.sum(self.request_user == u))
            scale = max(abs(truth.utility), float(self.true_budget[self.request_user == u].sum()))
            for kind in kinds:
                for f in factors:
                    lie = self.outcome(u, kind, f)
                    gain = lie.utility - truth.utility
                    rows.append({
                        "mechanism": self.mechanism, "seed": self.seed, "user_id": self.user_ids[u:u + 1].tolist()[0],
                        "requests": n_requests, "kind": kind, "factor": f, "served": lie.served,
                        "value": lie.value, "payment": lie.payment, "utility": lie.utility,
                        "truthful_served": truth.served, "truthful_utility": truth.utility, "gain": gain,
                        "relative_gain": gain / scale, "profitable": bool(gain / scale > RELATIVE_TOLERANCE),
                    })
                    done += 1
                    if progress:
                        progress(done, total)
        return pd.DataFrame(rows, columns=AUDIT_COLUMNS)


def _strategy(scale: float):
    from agents import Shading, Truthful

    return Truthful() if scale == 1.0 else Shading(scale)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per (mechanism, seed, kind): misreports tried, profitable ones, the largest gain."""
    out = []
    for (mech, seed, kind), g in table.groupby(["mechanism", "seed", "kind"], sort=False):
        best = g.loc[g["gain"].idxmax()]
        out.append({
            "mechanism": mech, "seed": seed, "kind": kind, "users": g["user_id"].nunique(),
            "misreports": len(g), "profitable": int(g["profitable"].sum()),
            "users_with_profitable": g.loc[g["profitable"], "user_id"].nunique(),
            "max_gain": float(best["gain"]), "max_relative_gain": float(g["relative_gain"].max()),
            "best_user_id": best["user_id"], "best_factor": float(best["factor"]),
        })
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def markdown(table: pd.DataFrame, summary: pd.DataFrame, title: str, top: int = 10) -> str:
    """The audit as Markdown: the summary, then the ``top`` largest gains."""
    lines = [
        f"# Strategic audit: {title}",
        "",
        "Each user misreports alone (everything else fixed, same seed): `bid` scales its bids,",
        "`budget` scales the budget the market sees. Gains are in true utility (true value minus",
        f"payment); a misreport is profitable when its gain exceeds {RELATIVE_TOLERANCE:g} of",
        "max(|truthful utility|, the user's budget).",
        "",
        _md_table(summary),
        "",
        f"## Largest {top} gains",
        "",
        _md_table(table.sort_values(["gain", "user_id", "factor"], ascending=[False, True, True]).head(top)[
            ["kind", "user_id", "factor", "truthful_utility", "utility", "gain", "relative_gain", "profitable"]
        ]),
        "",
    ]
    return "\n".join(lines)


def _md_table(df: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return f"{v:.6g}"
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def write(table: pd.DataFrame, summary: pd.DataFrame, text: str, out: Path) -> None:
    """Write ``audit.csv``, ``summary.csv`` and ``audit.md`` into ``out`` atomically."""
    from market.core.io import atomic_directory, write_table

    with atomic_directory(out, "audit") as tmp:
        write_table(table, tmp / "audit", "csv")
        write_table(summary, tmp / "summary", "csv")
        (tmp / "audit.md").write_text(text)
