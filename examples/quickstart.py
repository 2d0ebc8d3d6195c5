"""Make the default world, step it with random actions, and save what the agent saw as a GIF.

    python examples/quickstart.py --steps 64 --out runs/examples/quickstart.gif
"""

import argparse
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio

import waypoint_gym  # noqa: F401  (registers Waypoint-v0: the bundled world, trained on WaypointArena-v0)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=64)
parser.add_argument("--out", default="runs/examples/quickstart.gif")
args = parser.parse_args()
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

env = gym.make("Waypoint-v0", max_episode_steps=args.steps)  # CPU, float32, the world's default prompt
obs, info = env.reset(seed=0)
print("observation", env.observation_space, "action", env.action_space, "prompt", info["prompt"])

frames, total = [obs], 0.0
for _ in range(args.steps):
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    frames.append(obs)
    total += reward
    if terminated or truncated:
        break
env.close()

imageio.mimsave(out, frames, duration=1 / 15, loop=0)
print(f"{len(frames) - 1} steps, return {total:.2f}, frames saved to {out}")
