"""stable-baselines3 on Waypoint worlds: check_env with the action wrappers, PPO runs, and the SB3VecEnv adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from waypoint_gym.envs import (
    DiscreteActions,
    FlatBoxActions,
    SB3VecEnv,
    VectorDiscreteActions,
    WaypointVectorEnv,
    WaypointWorldEnv,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("wrapper", [DiscreteActions, FlatBoxActions])
def test_sb3_check_env_with_action_wrappers(ckpt, wrapper):
    check_env(wrapper(WaypointWorldEnv(ckpt, obs_size=40)), warn=False)


def test_ppo_cnn_policy_trains_on_the_batched_core(ckpt):
    core = WaypointVectorEnv(2, ckpt, obs_size=40, max_episode_steps=16, reward_fn="novelty")
    venv = VecMonitor(SB3VecEnv(VectorDiscreteActions(core)))
    model = PPO("CnnPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert len(model.ep_info_buffer) >= 4  # episodes ended and were reset by the adapter
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (2,)


class ImageAndClock(gym.ObservationWrapper):
    """Dict observations: the frame and the fraction of the episode gone."""

    def __init__(self, env: gym.Env, horizon: int):
        super().__init__(env)
        self.horizon, self.t = horizon, 0
        self.observation_space = gym.spaces.Dict(
            {"image": env.observation_space, "clock": gym.spaces.Box(0.0, 1.0, (1,), np.float32)}
        )

    def reset(self, **kwargs):
        self.t = 0
        return super().reset(**kwargs)

    def step(self, action):
        self.t += 1
        return super().step(action)

    def observation(self, obs):
        return {"image": obs, "clock": np.array([min(self.t / self.horizon, 1.0)], np.float32)}


def test_ppo_multi_input_policy_with_dict_observations(ckpt):
    def make():
        return ImageAndClock(FlatBoxActions(WaypointWorldEnv(ckpt, obs_size=40, max_episode_steps=8)), 8)

    check_env(make(), warn=False)
    model = PPO("MultiInputPolicy", DummyVecEnv([make]), n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    assert model.num_timesteps >= 64


def test_sb3_adapter_matches_dummy_vec_env(ckpt):
    """SB3 semantics (reset in the step that ends an episode, terminal_observation, TimeLimit.truncated) on the
    batched core give what DummyVecEnv gives on single envs with the same seeds."""
    dummy = DummyVecEnv([lambda: DiscreteActions(WaypointWorldEnv(ckpt, max_episode_steps=2))] * 2)
    ours = SB3VecEnv(VectorDiscreteActions(WaypointVectorEnv(2, ckpt, max_episode_steps=2)))
    dummy.seed(3)
    ours.seed(3)
    np.testing.assert_array_equal(ours.reset(), dummy.reset())
    for t in range(5):
        actions = np.array([t % 3, (t + 4) % 7])
        obs_o, rew_o, done_o, infos_o = ours.step(actions)
        obs_d, rew_d, done_d, infos_d = dummy.step(actions)
        assert np.abs(obs_o.astype(int) - obs_d).max() <= 1
        np.testing.assert_array_equal(done_o, done_d)
        np.testing.assert_array_equal(rew_o, rew_d)
        for io, id_ in zip(infos_o, infos_d):
            assert io.get("TimeLimit.truncated") == id_.get("TimeLimit.truncated")
            assert ("terminal_observation" in io) == ("terminal_observation" in id_)
            if "terminal_observation" in io:
                assert np.abs(io["terminal_observation"].astype(int) - id_["terminal_observation"]).max() <= 1
    assert done_o.any() or t == 4
    assert ours.get_attr("render_mode") == [None, None] and ours.env_is_wrapped(gym.Wrapper) == [False, False]
    ours.close()
