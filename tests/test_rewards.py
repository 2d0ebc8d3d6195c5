"""The reward_fn protocol's built-ins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from waypoint_gym.envs.rewards import GoalImageReward, NoveltyReward, make_reward_fn, zero_reward


def test_zero_and_names():
    assert make_reward_fn(None) is zero_reward and make_reward_fn("zero") is zero_reward
    assert isinstance(make_reward_fn("novelty"), NoveltyReward)
    with pytest.raises(ValueError, match="unknown reward_fn 'score'"):
        make_reward_fn("score")
    with pytest.raises(TypeError, match="must be callable"):
        make_reward_fn(3.0)


def test_novelty_is_the_latent_change():
    z0, z1 = torch.zeros(4, 8, 8), torch.full((4, 8, 8), 2.0)
    obs = np.zeros((8, 8, 3), np.uint8)
    reward = NoveltyReward(scale=0.5)
    assert reward(obs, {}, obs, {"latent": z1, "prev_latent": z0}) == pytest.approx(2.0)
    assert reward(obs, {}, obs, {"latent": z1, "prev_latent": z1}) == 0.0


def test_goal_image_similarity():
    goal = np.zeros((64, 64, 3), np.uint8)
    goal[:, 32:] = 255
    reward = GoalImageReward(goal)
    same = np.zeros((16, 16, 3), np.uint8)
    same[:, 8:] = 255
    assert reward(same, {}, same, {}) == pytest.approx(1.0)
    assert reward(same, {}, 255 - same, {}) == pytest.approx(0.0)
    assert 0.4 < reward(same, {}, np.full((16, 16, 3), 128, np.uint8), {}) < 0.6
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        GoalImageReward(np.zeros((8, 8), np.float32))
