"""Give a dreamed world your own reward: a callable `reward_fn(prev_obs, action, obs, info) -> float`.

This one rewards looking at something red (the orbs of the default world glow orange-red) and moving,
and is compared with the world's own reward head over the same random actions.

    python examples/custom_reward.py --steps 100
"""

import argparse

import gymnasium as gym
import numpy as np

import waypoint_gym  # noqa: F401
from waypoint_gym.envs import NoveltyReward


def redness(prev_obs, action, obs, info):
    """Share of pixels that are clearly red, plus a little for moving (latent change), per step."""
    r, g, b = (obs[..., c].astype(np.int16) for c in range(3))
    red = np.mean((r > 150) & (r > g + 60) & (r > b + 60))
    return float(red) + 0.1 * NoveltyReward()(prev_obs, action, obs, info)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=100)
args = parser.parse_args()

for name, reward_fn in (("reward head (default)", None), ("redness + novelty", redness)):
    env = gym.make("Waypoint-v0", reward_fn=reward_fn, max_episode_steps=args.steps)
    env.action_space.seed(0)
    env.reset(seed=0)
    rewards = []
    for _ in range(args.steps):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(reward)
        if terminated or truncated:
            break
    env.close()
    print(f"{name:>22}: return {np.sum(rewards):.3f} over {len(rewards)} steps, max step reward {np.max(rewards):.3f}")
