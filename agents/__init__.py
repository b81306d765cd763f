"""Mesa agents: resources, users (with bidding strategies) and planners."""

from agents.planner import PlannerAgent
from agents.resource import ResourceAgent
from agents.strategies import (
    BiddingStrategy,
    Learning,
    Pacing,
    Shading,
    Truthful,
    assign_strategies,
    available_strategies,
    create_strategy,
    register_strategy,
    strategy_class,
    strategy_mix,
)
from agents.user import UserAgent

__all__ = [
    "BiddingStrategy", "Learning", "Pacing", "PlannerAgent", "ResourceAgent", "Shading", "Truthful", "UserAgent",
    "assign_strategies", "available_strategies", "create_strategy", "register_strategy", "strategy_class",
    "strategy_mix",
]
