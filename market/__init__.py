"""Multi-agent market allocation framework: the core (model, round loop, pricing, metrics, runner)."""

__version__ = "0.1.0"
