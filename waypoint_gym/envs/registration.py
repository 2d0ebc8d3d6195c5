"""Gymnasium ids of the Waypoint environments: `Waypoint-v0`, `Waypoint-Small-v0`, `Waypoint-1.5-v0` and
`Waypoint-1.5-360P-v0`."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENTRY_POINT = "waypoint_gym.envs.world_env:WaypointWorldEnv"
VECTOR_ENTRY_POINT = "waypoint_gym.envs.vector_env:WaypointVectorEnv"

ENVS: dict[str, dict] = {
    # The bundled default world unless `model=` names another.
    "Waypoint-v0": {},
    # The published 2.3B model from the hub, on a GPU in bfloat16.
    "Waypoint-Small-v0": {"model": "Overworld/Waypoint-1-Small", "device": "cuda", "dtype": "bfloat16"},
    # Waypoint-1.5 (1.2B, TAEHV): one step is one action and one latent frame, i.e. 4 video frames at 60 fps.
    "Waypoint-1.5-v0": {"model": "Overworld/Waypoint-1.5-1B", "device": "cuda", "dtype": "bfloat16"},
    "Waypoint-1.5-360P-v0": {"model": "Overworld/Waypoint-1.5-1B-360P", "device": "cuda", "dtype": "bfloat16"},
}


def register_envs() -> None:
    """Register the ids with Gymnasium (idempotent: ids already registered are left as they are)."""
    for env_id, kwargs in ENVS.items():
        if env_id in registry:
            continue
        register(
            id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, kwargs=dict(kwargs),
            order_enforce=False, disable_env_checker=True,
        )
