"""Train PPO from stable-baselines3 inside the dreamed world, all environments in one batched forward pass.

The reward is the world's reward head (orbs collected, as the world learned them from the real game);
actions are a small discrete table of navigation macros. For the full experiment, see agents/train.py.

    python examples/vector_env_ppo.py --steps 2048 --n-envs 8
"""

import argparse
from pathlib import Path

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import waypoint_gym  # noqa: F401
from waypoint_gym.envs import SB3VecEnv, VectorDiscreteActions
from waypoint_gym.envs.wrappers import TURN, MacroAction

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=2048)
parser.add_argument("--n-envs", type=int, default=8)
parser.add_argument("--out", default="runs/examples/ppo_dream.zip")
args = parser.parse_args()
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

macros = [MacroAction("forward", ("W",)), MacroAction("turn_left", (), (-TURN, 0)),
          MacroAction("turn_right", (), (TURN, 0))]
venv = gym.make_vec("Waypoint-v0", num_envs=args.n_envs, vectorization_mode="vector_entry_point", max_episode_steps=128)
env = VecMonitor(SB3VecEnv(VectorDiscreteActions(venv, macros)))  # a stable-baselines3 VecEnv

model = PPO("CnnPolicy", env, n_steps=64, batch_size=128, n_epochs=2, seed=0, verbose=1)
model.learn(args.steps)
model.save(out)
env.close()
print("saved", out)
