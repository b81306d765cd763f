"""Studies built on the round: the paper replica, reproduction, ablation, audit, scaling, bench, sweeps.

Imports :mod:`market.core` and below, never :mod:`market.apps`.
"""
