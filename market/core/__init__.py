"""The round itself: model, engine, candidates, hierarchy, feasibility, settlement, pricing, metrics, io, runner.

Imports nothing from :mod:`market.studies` or :mod:`market.apps`.
"""
