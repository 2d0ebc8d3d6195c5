"""Gymnasium environments inside Waypoint world models, their batched vector env, and SB3 adapters.

Names are imported on first use, so `import waypoint_gym` (which registers the ids) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .registration import register_envs

if TYPE_CHECKING:
    from .rewards import GoalImageReward, NoveltyReward, RewardFn, zero_reward
    from .sb3 import SB3VecEnv
    from .spaces import action_space
    from .vector_env import WaypointVectorEnv
    from .world_env import WaypointWorldEnv
    from .wrappers import (
        DEFAULT_MACROS,
        DiscreteActions,
        FlatBoxActions,
        MacroAction,
        VectorDiscreteActions,
        VectorFlatBoxActions,
    )

_WHERE = {
    "WaypointWorldEnv": "world_env", "WaypointVectorEnv": "vector_env", "SB3VecEnv": "sb3",
    "DiscreteActions": "wrappers", "FlatBoxActions": "wrappers", "VectorDiscreteActions": "wrappers",
    "VectorFlatBoxActions": "wrappers", "MacroAction": "wrappers", "DEFAULT_MACROS": "wrappers",
    "RewardFn": "rewards", "zero_reward": "rewards", "NoveltyReward": "rewards", "GoalImageReward": "rewards",
    "action_space": "spaces",
}

__all__ = [
    "register_envs", "WaypointWorldEnv", "WaypointVectorEnv", "SB3VecEnv", "DiscreteActions", "FlatBoxActions",
    "VectorDiscreteActions", "VectorFlatBoxActions", "MacroAction", "DEFAULT_MACROS", "RewardFn", "zero_reward",
    "NoveltyReward", "GoalImageReward", "action_space",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
