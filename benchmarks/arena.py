"""Steps per second of the ground-truth arena: one `ArenaEnv`, and `ArenaBatch` at several batch sizes.

    .venv/bin/python benchmarks/arena.py   # prints, and writes benchmarks/results/arena.json
    .venv/bin/python benchmarks/arena.py --theme-strip docs/images/arena_themes.png

Random actions (each key held with probability 1/2, mouse uniform in [-1, 1]); episodes that end are reset
inside the timed loop, as a data collector would. The batch draws one caption of the grammar per world.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from waypoint_gym.worlds import ArenaBatch, ArenaEnv, sample_caption

STRIP_PROMPTS = ("a mossy stone dungeon", "a sunny desert canyon at noon", "a snowy ice cave at night")


def single_env_steps_per_second(steps: int, size: int, prompt: str) -> float:
    env = ArenaEnv(size=size, prompt=prompt)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def batch_steps_per_second(num_envs: int, steps: int, size: int) -> float:
    """Environment steps per second (batch steps x num_envs)."""
    rng = np.random.default_rng(0)
    batch = ArenaBatch(num_envs, size=size)
    batch.reset(seed=0, prompt=[sample_caption(rng) for _ in range(num_envs)])
    keys = rng.integers(0, 2, size=(steps, num_envs, len(batch.keys)))
    mouse = rng.uniform(-1, 1, size=(steps, num_envs, 2))
    start = time.perf_counter()
    for step in range(steps):
        _, _, terminated, truncated, _ = batch.step(keys[step], mouse[step])
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            batch.reset(seed=None, prompt=[sample_caption(rng) for _ in done], env_indices=done)
    return steps * num_envs / (time.perf_counter() - start)


def save_theme_strip(path: Path, prompts: tuple[str, ...] = STRIP_PROMPTS, frames: int = 4, seed: int = 1,
                     scale: int = 3) -> None:
    """A row of frames per prompt, walking along the waypoint bearing to the orbs; caption above each row."""
    rows = []
    for prompt in prompts:
        env = ArenaEnv(prompt=prompt)
        observation, info = env.reset(seed=seed)
        shots = [observation]
        for step in range(1, 12 * (frames - 1) + 1):
            bearing = info["waypoint_bearing"]
            walk = int(abs(bearing) < 0.4)
            turn = np.clip(bearing / 0.2, -1, 1)
            action = {"keys": np.array([walk, 0, 0, 0, 0, 0]), "mouse": np.array([turn, 0.0])}
            observation, _, terminated, _, info = env.step(action)
            if step % 12 == 0:
                shots.append(observation)
            if terminated:
                break
        row = np.concatenate(shots, axis=1)
        row = cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        label = np.full((22, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, prompt, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([label, row]))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="timed steps for the single env")
    parser.add_argument("--batch-steps", type=int, default=300, help="timed batch steps per batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "arena.json")
    parser.add_argument("--theme-strip", type=Path, help="also save a PNG strip of frames for three prompts")
    args = parser.parse_args()

    single_env_steps_per_second(200, args.size, STRIP_PROMPTS[0])  # warm-up: theme textures, caches
    results = {
        "size": args.size,
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "single_env_steps_per_s": {},
        "batch_env_steps_per_s": {},
    }
    for prompt in STRIP_PROMPTS:
        rate = single_env_steps_per_second(args.steps, args.size, prompt)
        results["single_env_steps_per_s"][prompt] = round(rate, 1)
        print(f"ArenaEnv {args.size}x{args.size} {prompt!r}: {rate:,.0f} steps/s")
    for num_envs in args.batch_sizes:
        rate = batch_steps_per_second(num_envs, args.batch_steps, args.size)
        results["batch_env_steps_per_s"][str(num_envs)] = round(rate, 1)
        print(f"ArenaBatch N={num_envs}: {rate:,.0f} env steps/s ({rate / num_envs:,.0f} batch steps/s)")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    if args.theme_strip is not None:
        save_theme_strip(args.theme_strip)
        print(f"wrote {args.theme_strip}")


if __name__ == "__main__":
    main()
