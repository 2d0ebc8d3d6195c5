"""The Gymnasium ids registered on `import waypoint_gym`."""

from __future__ import annotations

import gymnasium as gym
import pytest

import waypoint_gym  # noqa: F401
from waypoint_gym.envs.registration import ENTRY_POINT, VECTOR_ENTRY_POINT, register_envs


def test_ids_are_registered_once():
    register_envs()  # again: idempotent
    spec = gym.spec("Waypoint-v0")
    assert spec.entry_point == ENTRY_POINT and spec.vector_entry_point == VECTOR_ENTRY_POINT
    small = gym.spec("Waypoint-Small-v0")
    assert small.kwargs == {"model": "Overworld/Waypoint-1-Small", "device": "cuda", "dtype": "bfloat16"}
    assert small.vector_entry_point == VECTOR_ENTRY_POINT


def test_gym_make_takes_prompt_and_seed_frames_as_reset_keywords():
    """gym.make hands back the env itself (no order or checker wrappers), so the README's reset(prompt=...) works
    as it does on the class, and gives what options={"prompt": ...} gives."""
    import numpy as np

    seed_frame, _ = gym.make("WaypointArena-v0").reset(seed=1)
    env = gym.make("Waypoint-v0")
    step = {"keys": np.zeros(6, np.int8), "mouse": np.array([0.5, 0.0], np.float32)}
    first_by_keyword, _ = env.reset(seed=0, prompt="a snowy ice cave at night", seed_frames=seed_frame)
    next_by_keyword = env.step(step)[0]
    first_by_options, _ = env.reset(seed=0, options={"prompt": "a snowy ice cave at night", "seed_frames": seed_frame})
    np.testing.assert_array_equal(first_by_keyword, first_by_options)
    np.testing.assert_array_equal(next_by_keyword, env.step(step)[0])  # the same prompt reached the model
    env.reset(seed=0, seed_frames=seed_frame)  # the default prompt
    assert not np.array_equal(next_by_keyword, env.step(step)[0])  # and the prompt matters
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):  # what OrderEnforcing would say
        gym.make("Waypoint-v0").step(step)
    env.close()
