"""Play a policy in the dream and in the real game from the same starts, and compare the returns.

    python -m agents.evaluate runs/agents/ppo_dream/model.zip --episodes 32 --out runs/agents/ppo_dream/eval
    python -m agents.evaluate random --episodes 32 --out runs/agents/random
    python -m agents.evaluate scripted --episodes 32 --out runs/agents/scripted   # real game only

Episode i starts from arena seed EVAL_SEED + i with a caption drawn from `--prompt`: the real game opens
that map; the dream starts from its first frame, with the same caption. Prints and saves (`eval.json`) the
mean return of each with a 95% confidence interval and the dream-to-real gap, and writes a video of the
first episodes with the dream on the left and reality on the right (`dream_vs_real.mp4`), and the first
episode as a PNG strip (`dream_vs_real.png`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `agents` importable from the repository root
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.common import (
    EVAL_SEED,
    PolicyAgent,
    RandomAgent,
    ScriptedAgent,
    episode_starts,
    load_policy,
    mean_ci,
    play_dream,
    play_real,
)
from waypoint_gym.worlds.arena import DEFAULT_PROMPT


def side_by_side_video(path: Path, dream: list[np.ndarray], real: list[np.ndarray], fps: int = 15,
                       scale: int = 4) -> Path:
    """Write episodes one after another, each frame the dream (left) beside reality (right), upscaled."""
    writer = None
    for d, r in zip(dream, real):
        for t in range(max(len(d), len(r))):
            left, right = d[min(t, len(d) - 1)], r[min(t, len(r) - 1)]  # a finished episode holds its last frame
            frame = np.concatenate([left, np.zeros((left.shape[0], 2, 3), np.uint8), right], axis=1)
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            if writer is None:
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
    return path


def side_by_side_strip(path: Path, dream: np.ndarray, real: np.ndarray, every: int = 25, scale: int = 2) -> Path:
    """One episode as a PNG: every `every`-th frame, the dream on the top row and reality below."""
    n = min(len(dream), len(real))
    rows = [np.concatenate(list(frames[:n:every]), axis=1) for frames in (dream, real)]
    strip = cv2.resize(np.concatenate(rows, axis=0), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    return path


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("policy", help="a model.zip saved by agents/train.py, or 'random' or 'scripted'")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--max-episode-steps", type=int, default=200)
    p.add_argument("--prompt", action="append", help="caption(s) to draw from (repeat); default: the default prompt")
    p.add_argument("--model", help="the dreamed world: a Waypoint checkpoint folder or hub id (default: bundled)")
    p.add_argument("--n-denoise-steps", type=int)
    p.add_argument("--n-envs", type=int, default=16, help="dreamed episodes run at once in one batched pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--deterministic", action="store_true", help="take the policy's most likely action")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help="arena seed of the first episode")
    p.add_argument("--video-episodes", type=int, default=4, help="episodes in the side-by-side video (0: none)")
    p.add_argument("--real-only", action="store_true", help="skip the dream")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.policy == "random":
        agent = RandomAgent(args.seed)
    elif args.policy == "scripted":
        agent, args.real_only = ScriptedAgent(), True  # it reads the game's state: there is none in a dream
    else:
        agent = PolicyAgent(load_policy(args.policy, args.device), args.deterministic)
    starts = episode_starts(args.episodes, args.seed, args.prompt or [DEFAULT_PROMPT])

    report = {"policy": args.policy, "episodes": args.episodes, "max_episode_steps": args.max_episode_steps,
              "first_seed": args.seed, "deterministic": args.deterministic}
    real, real_frames = play_real(agent, starts, args.max_episode_steps, record=args.video_episodes)
    report["real"] = {**mean_ci(real), "returns": real.tolist()}
    if not args.real_only:
        dream, dream_frames = play_dream(agent, starts, args.max_episode_steps, args.n_envs, args.model,
                                         args.device, args.n_denoise_steps, record=args.video_episodes)
        report["dream"] = {**mean_ci(dream), "returns": dream.tolist()}
        report["dream_minus_real"] = report["dream"]["mean"] - report["real"]["mean"]
        if args.video_episodes:
            video = side_by_side_video(args.out / "dream_vs_real.mp4", dream_frames, real_frames)
            report["video"] = str(video)
            report["strip"] = str(side_by_side_strip(args.out / "dream_vs_real.png", dream_frames[0], real_frames[0]))
    (args.out / "eval.json").write_text(json.dumps(report, indent=2))
    for world in ("dream", "real"):
        if world in report:
            r = report[world]
            print(f"{world:>5}: mean return {r['mean']:.2f} +- {r['ci95']:.2f} (95% CI, {r['n']} episodes)")
    if "dream_minus_real" in report:
        print(f"dream - real: {report['dream_minus_real']:+.2f}")
    return report


if __name__ == "__main__":
    main()
