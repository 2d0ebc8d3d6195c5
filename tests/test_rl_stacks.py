"""The envs work unchanged with RL stacks other than stable-baselines3: TorchRL's GymEnv, and Gymnasium's own
vector envs under the discrete-action wrapper (what a CleanRL-style loop uses; examples/cleanrl_ppo.py runs
one, in tests/test_examples.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import waypoint_gym  # noqa: F401  (registers the ids)
from waypoint_gym.envs import VectorDiscreteActions


@pytest.mark.parametrize("env_id", ["Waypoint-v0", "WaypointArena-v0"])
def test_torchrl_gym_env(env_id):
    torchrl_envs = pytest.importorskip("torchrl.envs", reason="TorchRL is in the dev extra")
    from torchrl.envs.utils import check_env_specs

    env = torchrl_envs.GymEnv(env_id)
    check_env_specs(env)  # a short rollout checked against the specs TorchRL reads from the spaces
    rollout = env.rollout(6)
    assert rollout["next", "pixels"].shape == (6, 64, 64, 3) and rollout["keys"].shape == (6, 6)
    assert rollout["next", "reward"].shape == (6, 1)
    env.close()


@pytest.mark.parametrize("env_id", ["Waypoint-v0", "WaypointArena-v0"])
def test_discrete_actions_over_gymnasiums_sync_vector_env(env_id):
    venv = VectorDiscreteActions(gym.make_vec(env_id, num_envs=2, vectorization_mode="sync"))
    obs, _ = venv.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, truncated, _ = venv.step(venv.action_space.sample())
    assert obs.shape == (2, 64, 64, 3) and reward.shape == (2,) and venv.single_action_space.n >= 5
    assert np.isfinite(reward).all()
    venv.close()
