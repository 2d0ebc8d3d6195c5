"""Ray vector env throughput: env steps/s of RayVectorEnv with 1 and 2 workers against the local WaypointVectorEnv
of the same envs, all in one run, and the time Ray adds to each step.

    python benchmarks/ray_env.py                      # Waypoint-v0 (the bundled world), 4 and 16 envs, CPU
    python benchmarks/ray_env.py --envs 8 --steps 40

The envs run with `timing=True`, so each reports `info["step_time"]`: the seconds its vector env's batched step
took, inside its worker. The overhead of a RayVectorEnv step is the driver's wall time of the step less the
slowest worker's step time: checking and splitting the action, the calls through Ray, the observations, rewards
and infos coming back through Ray's object store, and merging them. The local env's own overhead (its wall time
less its step time) is given beside it. Each Ray worker is given one CPU (so torch runs on one thread there);
the local env is measured on 1 and on 2 torch threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import ray
import torch

import waypoint_gym  # noqa: F401  (registers Waypoint-v0)
from waypoint_gym.distributed import RayVectorEnv
from waypoint_gym.envs import WaypointVectorEnv


def measure(env, actions: list, warmup: int) -> dict:
    """Steps/s, and the median wall and in-env milliseconds of a step, over `actions` after `warmup` steps."""
    env.reset(seed=0)
    walls, inside = [], []
    for i, a in enumerate(actions):
        t0 = time.perf_counter()
        *_, info = env.step(a)
        wall = time.perf_counter() - t0
        if i >= warmup:
            walls.append(wall)
            inside.append(float(np.max(info["step_time"])))
    walls, inside = np.array(walls), np.array(inside)
    return {
        "env_steps_per_s": env.num_envs * len(walls) / walls.sum(),
        "ms_per_step": 1000 * float(np.median(walls)),
        "env_ms_per_step": 1000 * float(np.median(inside)),
        "overhead_ms_per_step": 1000 * float(np.median(walls - inside)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", default="4,16", help="env counts")
    ap.add_argument("--workers", default="1,2", help="Ray worker counts")
    ap.add_argument("--steps", type=int, default=30, help="timed vector steps per setting")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the bundled world)")
    ap.add_argument("--out", default="benchmarks/results/ray_env.json")
    args = ap.parse_args()

    counts = [int(c) for c in args.envs.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=max(cpus, max(worker_counts)), include_dashboard=False, log_to_driver=False)
    world = args.model or "Waypoint-v0 (the bundled world)"
    results = {
        "device": platform.processor() or platform.machine(), "cpus": cpus, "world": world,
        "torch": torch.__version__, "ray": ray.__version__, "timed_steps": args.steps, "rows": [],
    }
    print(f"{world} on {results['device']} ({cpus} CPUs), ray {ray.__version__}")
    print(f"{'envs':>5} {'setting':>22} {'env steps/s':>12} {'ms/step':>8} {'in env':>7} {'overhead':>9}")
    kwargs = dict(model=args.model, timing=True)
    for n in counts:
        sampler = WaypointVectorEnv(n, **kwargs)
        sampler.action_space.seed(n)
        actions = [sampler.action_space.sample() for _ in range(args.warmup + args.steps)]
        settings = [("local, 1 thread", 0, 1), ("local, 2 threads", 0, 2)]
        settings += [(f"ray, {w} worker{'s' * (w > 1)}", w, 1) for w in worker_counts]
        for name, workers, threads in settings:
            torch.set_num_threads(threads)  # the local env's; each worker has its one CPU
            env = RayVectorEnv("Waypoint-v0", n, workers, **kwargs) if workers else sampler
            row = {"envs": n, "setting": name, "workers": workers, **measure(env, actions, args.warmup)}
            if workers:
                env.close()
            results["rows"].append(row)
            print(f"{n:5d} {name:>22} {row['env_steps_per_s']:12.1f} {row['ms_per_step']:8.1f} "
                  f"{row['env_ms_per_step']:7.1f} {row['overhead_ms_per_step']:9.2f}")
        sampler.close()
    results["obs_bytes_per_env_step"] = int(np.prod(sampler.single_observation_space.shape))
    ray.shutdown()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
