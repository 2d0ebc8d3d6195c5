"""Ground-truth worlds: games rendered without a model, to collect data from and compare world models with."""

from __future__ import annotations

import gymnasium

from waypoint_gym.worlds.arena import ArenaBatch, ArenaEnv, ArenaStarts
from waypoint_gym.worlds.captions import THEMES, Theme, all_captions, parse_caption, sample_caption

__all__ = [
    "THEMES", "ArenaBatch", "ArenaEnv", "ArenaStarts", "Theme",
    "all_captions", "parse_caption", "register_worlds", "sample_caption",
]


def register_worlds() -> None:
    """Register `WaypointArena-v0` with Gymnasium (once; the env truncates episodes itself)."""
    if "WaypointArena-v0" not in gymnasium.registry:
        gymnasium.register(id="WaypointArena-v0", entry_point="waypoint_gym.worlds.arena:ArenaEnv")
