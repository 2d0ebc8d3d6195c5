"""PPO from RLlib in the dreamed world, each RLlib env runner (a Ray actor) hosting one batched WaypointVectorEnv.

RLlib's env runners make their envs with `gymnasium.make_vec`. With `gym_env_vectorize_mode="vector_entry_point"`
each runner calls the creator registered below once for all its envs, so its `num_envs_per_env_runner` envs step
in one batched forward pass (RLlib's default, "sync", would build one world per env). Actions are a discrete macro
table (`VectorDiscreteActions`); frames are scaled to float32 in [0, 1] for RLlib's default CNN. On a GPU cluster,
give each runner a GPU (`--gpus-per-runner 1`): the world then runs on it.

RLlib (`ray[rllib]`) pins an older gymnasium than this package's tests use, so install it in an environment of
its own:

    python3 -m venv .venv-rllib && .venv-rllib/bin/pip install -e . "ray[rllib]"
    .venv-rllib/bin/python examples/rllib_ppo.py --iterations 3
"""

import argparse
import time
from pathlib import Path

import numpy as np
import ray
from gymnasium.spaces import Box
from gymnasium.wrappers.vector import TransformObservation
from ray.rllib.algorithms.ppo import PPOConfig
from ray.tune.registry import register_env

from waypoint_gym.envs import VectorDiscreteActions, WaypointVectorEnv

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--iterations", type=int, default=3, help="PPO training iterations")
parser.add_argument("--env-runners", type=int, default=2, help="Ray actors sampling, each with one batched world")
parser.add_argument("--envs-per-runner", type=int, default=4)
parser.add_argument("--gpus-per-runner", type=float, default=0)
parser.add_argument("--batch", type=int, default=256, help="env steps per training iteration")
parser.add_argument("--max-episode-steps", type=int, default=32)
parser.add_argument("--reward-fn", default=None, help="e.g. 'novelty'; default: the world's reward head")
parser.add_argument("--out", default="runs/examples/rllib_ppo", help="folder for the final checkpoint")
args = parser.parse_args()


def batched_dream(config: dict):
    """RLlib's vector entry point: `config` is the env_config plus `num_envs`; one batched world for them all."""
    kwargs = dict(config)
    envs = VectorDiscreteActions(WaypointVectorEnv(kwargs.pop("num_envs", 1), **kwargs))
    frames = Box(0.0, 1.0, envs.single_observation_space.shape, np.float32)
    return TransformObservation(envs, lambda obs: obs.astype(np.float32) / 255, single_observation_space=frames)


register_env("waypoint-dream", batched_dream)
env_config = {"max_episode_steps": args.max_episode_steps, "reward_fn": args.reward_fn}
if args.gpus_per_runner > 0:
    env_config.update(device="cuda", dtype="bfloat16")
ray.init(num_cpus=max(2, args.env_runners), include_dashboard=False)
config = (
    PPOConfig()
    .environment("waypoint-dream", env_config=env_config)
    .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner,
                 gym_env_vectorize_mode="vector_entry_point", num_gpus_per_env_runner=args.gpus_per_runner)
    .training(train_batch_size_per_learner=args.batch, minibatch_size=64, num_epochs=2, lr=3e-4)
)
algo = config.build_algo()
hosted = algo.env_runner_group.foreach_env_runner(
    lambda runner: f"{type(runner.env.unwrapped).__name__} of {runner.env.unwrapped.num_envs}", local_env_runner=False)
print("env runners host:", ", ".join(hosted))
start = time.perf_counter()
for i in range(args.iterations):
    result = algo.train()
    runners = result["env_runners"]
    print(f"iteration {i + 1}: {runners['num_env_steps_sampled_lifetime']} env steps, "
          f"episode return mean {runners.get('episode_return_mean', float('nan')):.3f}, "
          f"{time.perf_counter() - start:.1f} s")
out = Path(args.out).resolve()
out.mkdir(parents=True, exist_ok=True)
algo.save(str(out))
algo.stop()
ray.shutdown()
print("saved", out)
