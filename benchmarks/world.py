"""Speed of the bundled world as RL sees it: `gymnasium.make("Waypoint-v0")` steps/s for one env, the batched
vector env at 16 envs, and the step time early versus late in one long episode.

    python benchmarks/world.py                      # the bundled world, its default denoising steps
    python benchmarks/world.py --steps 1 --long 10000
    python benchmarks/world.py --baseline runs/world_b  # and the 16-env ratio to another checkpoint, interleaved

Targets (issue 5): >= 30 env steps/s for one env, >= 200 env steps/s in total for 16 batched envs, and a flat
per-step time over a 10,000-step episode (the median of each tenth of it shows a trend, if any). Prints a
table and writes benchmarks/results/world.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import waypoint_gym  # noqa: F401  (registers Waypoint-v0)


def steps_per_second(env, n: int, batch: int) -> float:
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(n)]
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    return n * batch / (time.perf_counter() - t0)


def interleaved(models: list, envs: int, rounds: int = 6, n: int = 15, **kwargs) -> list[list[float]]:
    """Batched env steps/s of each checkpoint in alternating rounds, so the machine's drift hits them alike."""
    venvs = []
    for model in models:
        venv = gym.make_vec("Waypoint-v0", num_envs=envs, vectorization_mode="vector_entry_point", model=model,
                            **kwargs)
        venv.reset(seed=0)
        steps_per_second(venv, 3, envs)
        venvs.append(venv)
    return [[steps_per_second(v, n, envs) for v in venvs] for _ in range(rounds)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="default: the bundled world")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")
    ap.add_argument("--n", type=int, default=60, help="timed env steps per setting")
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--long", type=int, default=10_000, help="steps of the long episode (0: skip)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--baseline", default=None, help="another checkpoint to compare 16 batched envs with")
    ap.add_argument("--out", default="benchmarks/results/world.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kwargs = {"model": args.model, "n_denoise_steps": args.steps}
    env = gym.make("Waypoint-v0", **kwargs)
    env.reset(seed=0)
    steps_per_second(env, 5, 1)  # warm-up
    single = steps_per_second(env, args.n, 1)
    venv = gym.make_vec("Waypoint-v0", num_envs=args.envs, vectorization_mode="vector_entry_point", **kwargs)
    venv.reset(seed=0)
    steps_per_second(venv, 3, args.envs)
    batched = steps_per_second(venv, max(5, args.n // 4), args.envs)
    engine = env.unwrapped.engine
    result = {"model": str(engine.folder), "denoising_steps": engine.n_denoise_steps,
              "threads": torch.get_num_threads(), "single_env_steps_per_s": single,
              f"batched_{args.envs}_env_steps_per_s": batched}
    print(f"{engine.folder} at {engine.n_denoise_steps} denoising steps, {torch.get_num_threads()} threads")
    print(f"one env: {single:.1f} steps/s;  {args.envs} batched envs: {batched:.1f} env steps/s")
    if args.long:
        env = gym.make("Waypoint-v0", disable_env_checker=True, **kwargs).unwrapped
        env.reset(seed=1)
        a = env.action_space.sample()
        times = []
        for _ in range(args.long):
            t0 = time.perf_counter()
            env.step(a)  # a reward head's termination is ignored: the same episode goes on
            times.append(time.perf_counter() - t0)
        times = np.array(times) * 1e3
        early, late = statistics.median(times[10:60]), statistics.median(times[-50:])
        blocks = [float(np.median(b)) for b in np.array_split(times, 10)]  # a trend shows here, noise does not
        result["long_episode"] = {"steps": len(times), "ms_early": early, "ms_late": late,
                                  "late_over_early": late / early, "ms_median_per_tenth": blocks}
        print(f"one episode of {len(times)} steps: {early:.2f} ms/step near step 10, {late:.2f} ms at the end "
              f"(ratio {late / early:.2f}); median of each tenth: {' '.join(f'{b:.1f}' for b in blocks)} ms")
    if args.baseline:
        rounds = interleaved([args.model, args.baseline], args.envs, n_denoise_steps=args.steps)
        mine, base = (statistics.median(r[i] for r in rounds) for i in (0, 1))
        result["interleaved_vs_baseline"] = {"baseline": args.baseline, "rounds": rounds, "median": mine,
                                             "baseline_median": base, "ratio": mine / base}
        print(f"{args.envs} batched envs, {len(rounds)} interleaved rounds: {mine:.1f} against {base:.1f} env "
              f"steps/s for {args.baseline} (ratio {mine / base:.2f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
