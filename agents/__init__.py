"""Mesa agents: resources, users (with bidding strategies) and planners."""

from agents.planner import PlannerAgent
from agents.resource import ResourceAgent
from agents.strategies import BiddingStrategy, Shading, Truthful
from agents.user import UserAgent

__all__ = ["BiddingStrategy", "PlannerAgent", "ResourceAgent", "Shading", "Truthful", "UserAgent"]
