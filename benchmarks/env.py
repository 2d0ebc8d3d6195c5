"""Environment throughput: env steps/s of WaypointWorldEnv, of WaypointVectorEnv (one batched engine) and of
SyncVectorEnv (one engine per env) at the same env counts, all in one run.

    python benchmarks/env.py                  # CPU, env counts 1,2,4,8,16,32
    python benchmarks/env.py --quick          # env counts 1,4,16, fewer steps
    python benchmarks/env.py --device cuda    # on a GPU (bf16; the engine compiles its passes there)

The world is the waypoint-cpu-small preset with RANDOM weights and a RANDOM 64x64 autoencoder, built in a
temporary folder: speed does not depend on the weights' values, but the frames are noise. Every step is a
full env step: action check, the denoising passes and cache pass, decoding, observation, reward (zero).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import torch

from waypoint_gym.engine import random_checkpoint
from waypoint_gym.envs import WaypointVectorEnv, WaypointWorldEnv

PRESET, IMAGE_SIZE = "waypoint-cpu-small", (64, 64)


def steps_per_s(env, actions: list, n_envs: int, warmup: int) -> float:
    """Env steps per second (vector steps x envs) over `actions`, after `warmup` untimed steps."""
    env.reset(seed=0)
    for a in actions[:warmup]:
        env.step(a)
    t0 = time.perf_counter()
    for a in actions[warmup:]:
        env.step(a)
    return n_envs * (len(actions) - warmup) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--counts", default="1,2,4,8,16,32", help="env counts of the vector envs")
    ap.add_argument("--quick", action="store_true", help="env counts 1,4,16 and fewer steps")
    ap.add_argument("--steps", type=int, default=20, help="timed vector steps per setting")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default="benchmarks/results/env.json")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    counts = [1, 4, 16] if args.quick else [int(c) for c in args.counts.split(",")]
    steps = 8 if args.quick else args.steps
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = "bfloat16" if cuda else "float32"
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine()
    world = f"{PRESET} with RANDOM weights and a RANDOM {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} autoencoder"
    results = {
        "device": name, "threads": torch.get_num_threads(), "world": world, "dtype": dtype,
        "torch": torch.__version__, "timed_steps": steps, "single_env": None, "vector": [],
    }
    print(f"{world}, on {name} ({dtype}, {torch.get_num_threads()} threads)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = random_checkpoint(Path(tmp) / "world", PRESET, seed=0, image_size=IMAGE_SIZE)
        kwargs = dict(model=folder, device=device, dtype=dtype)

        single = WaypointWorldEnv(**kwargs)
        single.action_space.seed(0)
        actions = [single.action_space.sample() for _ in range(args.warmup + steps)]
        results["single_env"] = steps_per_s(single, actions, 1, args.warmup)
        del single
        print(f"single env: {results['single_env']:.1f} steps/s")
        print(f"{'envs':>5} {'batched steps/s':>16} {'sync steps/s':>13} {'batched/sync':>13} {'batched/single':>15}")

        for n in counts:
            batched = WaypointVectorEnv(n, **kwargs)
            batched.action_space.seed(n)
            vec_actions = [batched.action_space.sample() for _ in range(args.warmup + steps)]
            b = steps_per_s(batched, vec_actions, n, args.warmup)
            del batched
            sync_env = gym.vector.SyncVectorEnv([lambda: WaypointWorldEnv(**kwargs) for _ in range(n)])
            s = steps_per_s(sync_env, vec_actions, n, args.warmup)
            sync_env.close()
            del sync_env
            row = {"envs": n, "batched_steps_per_s": b, "sync_steps_per_s": s, "batched_over_sync": b / s,
                   "batched_over_single": b / results["single_env"]}
            results["vector"].append(row)
            print(f"{n:5d} {b:16.1f} {s:13.1f} {b / s:13.2f} {row['batched_over_single']:15.2f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
