"""Per-round metrics (README, "Architecture", contract 4), one function per formula.

- ``efficiency = welfare / n_requests`` (the paper's), ``welfare = sum of utility``;
  ``value_welfare`` = social welfare in money, the winners' summed values ``budget * b_ij``
  (what auctions maximise; ``welfare`` counts every served request alike);
- ``jain`` over **all** requests with 0 for the unserved (headline), ``jain_winners``
  over served requests only (the paper's way), ``jain_users`` over users' totals;
- ``gini`` over users' received utility; ``satisfaction = served / requests``;
- ``utilization`` = used cpu / total cpu (running requests included; a market without a
  cpu dimension: its first dimension), ``utilization_<dim>`` the same for every
  dimension of the market,
  ``resource_share`` = share of resources holding any load;
- ``revenue`` = sum of payments; ``energy`` = sum over resources of the linear power
  model :func:`agents.resource.power` (Fan, Weber and Barroso, ISCA 2007);
- ``ir_violations`` = winners paying more than their value ``budget * b_ij``
  (individual rationality; 0 for first- and second-price with bids at most the value),
  ``ir_excess`` = the total they pay above their value, ``user_surplus`` = sum of
  ``value - payment`` over winners;
  ``budget_balance`` = payments received by resources minus payments made by users
  (0 when the books balance, up to round-off of the cumulative credits).
Conventions: Jain of an empty or all-zero vector is 1 (everyone equal); Gini of an
all-zero vector is 0. No metric is ever NaN.
"""

from __future__ import annotations

import numpy as np

from market.core.dense import unique_inverse


def _scale_free(x: np.ndarray) -> np.ndarray:
    """``x`` divided by its largest magnitude when squares or sums of it could under- or overflow.

    Jain's index and the Gini coefficient do not change when ``x`` is scaled; values of
    ordinary size are left as they are (bit for bit the same results).
    """
    top = float(np.abs(x).max()) if x.size else 0.0
    return x / top if top > 1e150 or 0.0 < top < 1e-140 else x


def jain(x: np.ndarray) -> float:
    """Jain's index ``(sum x)^2 / (n sum x^2)`` in [1/n, 1].

    R. Jain, D. Chiu and W. Hawe, "A quantitative measure of fairness and discrimination
    for resource allocation in shared computer systems", DEC-TR-301, 1984.
    """
    x = _scale_free(np.asarray(x, dtype=float))
    sq = float(np.dot(x, x))
    if x.size == 0 or sq == 0.0:
        return 1.0
    # equal values give exactly 1 in exact arithmetic; round-off may overshoot it
    return min(1.0, float(x.sum() ** 2 / (x.size * sq)))


def gini(x: np.ndarray) -> float:
    """Gini coefficient ``sum_ab |x_a - x_b| / (2 n^2 mean)`` in [0, 1).

    Half the relative mean absolute difference (Gini, 1912), computed from the sorted
    values in O(n log n).
    """
    x = _scale_free(np.sort(np.asarray(x, dtype=float)))
    n = x.size
    total = float(x.sum())
    if n == 0 or total <= 0.0:
        return 0.0
    # sum_ab |xa - xb| = 2 sum_i (2i - n - 1) x_(i), i = 1..n
    ranks = np.arange(1, n + 1)
    # equal values give 0 up to round-off, which may be slightly negative
    return max(0.0, float(np.dot(2 * ranks - n - 1, x) / (n * total)))


def share(part: float, whole: float) -> float:
    """``part / whole``, 0 when ``whole`` is 0 (no capacity: nothing is used)."""
    return part / whole if whole > 0 else 0.0


def round_metrics(
    utility: np.ndarray,
    served: np.ndarray,
    payment: np.ndarray,
    value: np.ndarray,
    user: np.ndarray,
    used: np.ndarray,
    capacity: np.ndarray,
    load: np.ndarray,
    energy: np.ndarray,
    price: np.ndarray,
    dimensions: tuple[str, ...] = ("cpu", "mem"),
) -> dict[str, float]:
    """All metrics of one round.

    Args:
        utility: ``(N,)`` utility received by each order-book request (0 if unserved).
        served: ``(N,)`` bool.
        payment: ``(N,)`` payments.
        value: ``(N,)`` value ``budget * b_ij`` of the won pair (0 if unserved).
        user: ``(N,)`` user index of each request.
        used: ``(M, D)`` capacity in use in every dimension after settlement (running
            requests included).
        capacity: ``(M, D)`` capacity in every dimension.
        load: ``(M,)`` utilisation of each resource (max over dimensions).
        energy: ``(M,)`` energy used by each resource this round.
        price: ``(M,)`` unit prices this round.
        dimensions: the ``D`` dimension names (columns of ``used`` and ``capacity``).

    Returns:
        A flat dict of floats (and counts).
    """
    n = utility.size
    welfare = float(utility.sum())
    n_served = int(served.sum())
    _, per_user = unique_inverse(user)
    user_utility = np.bincount(per_user, weights=utility) if n else np.zeros(0)
    over = served & (payment > value * (1 + 1e-9) + 1e-9)  # individual rationality broken
    per_dim = {f"utilization_{d}": share(float(used[:, k].sum()), float(capacity[:, k].sum()))
               for k, d in enumerate(dimensions)}
    primary = f"utilization_{'cpu' if 'cpu' in dimensions else dimensions[0]}"
    return {
        "n_requests": n,
        "n_allocated": n_served,
        "welfare": welfare,
        "value_welfare": float(np.sum(np.where(served, value, 0.0))),
        "efficiency": welfare / n if n else 0.0,
        "efficiency_served": welfare / n_served if n_served else 0.0,
        "satisfaction": n_served / n if n else 0.0,
        "jain": jain(utility),
        "jain_winners": jain(utility[served]),
        "jain_users": jain(user_utility),
        "gini": gini(user_utility),
        "gini_requests": gini(utility),
        "utilization": per_dim[primary],
        "resource_share": float(np.mean(load > 0)) if load.size else 0.0,
        "revenue": float(payment.sum()),
        "energy": float(energy.sum()),
        "mean_price": float(price.mean()) if price.size else 0.0,
        "ir_violations": int(np.sum(over)),
        "ir_excess": float(np.sum(np.where(over, payment - value, 0.0))),
        "user_surplus": float(np.sum(np.where(served, value - payment, 0.0))),
        **per_dim,
    }
