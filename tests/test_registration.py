"""The Gymnasium ids registered on `import waypoint_gym`."""

from __future__ import annotations

import gymnasium as gym

import waypoint_gym  # noqa: F401
from waypoint_gym.envs.registration import ENTRY_POINT, VECTOR_ENTRY_POINT, register_envs


def test_ids_are_registered_once():
    register_envs()  # again: idempotent
    spec = gym.spec("Waypoint-v0")
    assert spec.entry_point == ENTRY_POINT and spec.vector_entry_point == VECTOR_ENTRY_POINT
    small = gym.spec("Waypoint-Small-v0")
    assert small.kwargs == {"model": "Overworld/Waypoint-1-Small", "device": "cuda", "dtype": "bfloat16"}
    assert small.vector_entry_point == VECTOR_ENTRY_POINT
