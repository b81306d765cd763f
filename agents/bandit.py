"""EXP3, the adversarial multi-armed bandit every learning agent plays (users and owners).

Auer, Cesa-Bianchi, Freund and Schapire, "The nonstochastic multiarmed bandit problem",
SIAM J. Computing 32(1), 2002. Each learner keeps ``G`` log-weights; it plays arm ``k``
with probability ``p = (1 - gamma) * softmax(log_w) + gamma / G`` and after the round moves
only the played arm's log-weight by the importance-weighted reward
``log_w[k] += eta * x / p[k]`` (``x`` in ``[-1, 1]``). Its expected regret against the best
fixed arm grows as ``O(sqrt(T G log G))`` for a suitable ``eta``.

Learners are rows of arrays, one call for all of them. Draws are pure functions of
``(seed, round, learner, salt)`` (:func:`uniforms`): there is no generator state to copy, a
what-if round plays what the real round plays, and the update recovers the arm played from
the same draw.
"""

from __future__ import annotations

import numpy as np


def uniforms(seed: int, rounds: int, index: np.ndarray, salt: int) -> np.ndarray:
    """``(n,)`` one uniform in ``[0, 1)`` per learner ``index``, a pure function of its arguments.

    Args:
        seed: the run's seed.
        rounds: the round the draw is for.
        index: ``(n,)`` dense learner indices (>= 0).
        salt: separates the streams of different kinds of learner (users, owners).
    """
    size = int(index.max()) + 1 if index.size else 0
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(rounds), int(salt)]).random(size)[index]


def initial(n: int, arms: int, prior: np.ndarray | None = None) -> np.ndarray:
    """``(n, G)`` the log-weights before any update: ``prior`` (``(G,)``) for every learner, or zeros."""
    return np.zeros((n, arms)) if prior is None else np.tile(np.asarray(prior, dtype=float), (n, 1))


def probabilities(log_w: np.ndarray | None, n: int, arms: int, gamma: float,
                  prior: np.ndarray | None = None) -> np.ndarray:
    """``(n, G)`` each learner's probability of each arm.

    Args:
        log_w: ``(n, G)`` log-weights, or None (no update yet: :func:`initial`).
        n: learners.
        arms: ``G``.
        gamma: exploration share in ``[0, 1)``.
        prior: ``(G,)`` initial log-weights (None: uniform).
    """
    if log_w is None:
        log_w = initial(n, arms, prior)
    z = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return (1.0 - gamma) * z / z.sum(axis=1, keepdims=True) + gamma / arms


def draw(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``(n,)`` the arm each learner plays: the inverse CDF of ``p`` (``(n, G)``) at ``u`` (``(n,)``)."""
    cdf = np.cumsum(p, axis=1)
    return np.minimum((cdf <= u[:, None]).sum(axis=1), p.shape[1] - 1)


def update(log_w: np.ndarray, rows: np.ndarray, arm: np.ndarray, reward: np.ndarray, p: np.ndarray,
           eta: float, active: np.ndarray) -> None:
    """One EXP3 step, in place, for the learners ``rows`` of ``log_w``.

    Args:
        log_w: ``(L, G)`` log-weights of every learner (changed in place).
        rows: ``(n,)`` the learners updated.
        arm: ``(n,)`` the arm each played.
        reward: ``(n,)`` its reward, clipped to ``[-1, 1]`` here.
        p: ``(n, G)`` the probabilities it played with.
        eta: learning rate > 0.
        active: ``(n,)`` bool; inactive learners (nothing at stake) learn nothing.
    """
    x = np.clip(reward, -1.0, 1.0)
    i = np.arange(rows.size)
    new = log_w[rows].copy()
    new[i, arm] += np.where(active, eta * x / p[i, arm], 0.0)
    log_w[rows] = new - new.max(axis=1, keepdims=True)  # keep them bounded
