"""Train a stable-baselines3 agent in a dreamed world (Waypoint-v0) or in the real game (WaypointArena-v0).

    python -m agents.train --world dream --horizon 16 --starts runs/data/starts_mossy --steps 50000 \
        --out runs/agents/ppo_dream
    python -m agents.train --world real --algo ppo --steps 50000 --out runs/agents/ppo_real

Both worlds use the same discrete navigation actions (agents.common.NAV_MACROS) and 64x64 RGB observations.
In the dream the reward and termination come from the world's reward head, and episodes are short imagined
rollouts: `--horizon` steps (truncated), each started from the first frame of a new map, or with `--starts`
from 6 real frames at a random point of a recorded segment. In the real game episodes last
`--max-episode-steps` and reward and termination come from the game.
Every `--eval-every` steps the policy plays `--eval-episodes` held-out episodes of the real game (for the
learning curve only: a dream-trained agent never learns from them). Writes into `--out`: `model.zip`,
checkpoints, `curve.csv` (steps, wall seconds, training return, real-game return), `train.json`, and
tensorboard logs in `tb/` (`tensorboard --logdir runs/agents`).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback

if __package__ in (None, ""):  # run as a script: make `agents` importable from the repository root
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.common import ALGOS, WORLDS, PolicyAgent, episode_starts, make_vec_env, mean_ci, play_real
from waypoint_gym.worlds.arena import DEFAULT_PROMPT

# Hyperparameters per algorithm, for small-image navigation on a CPU budget.
ALGO_KWARGS = {
    "ppo": dict(n_steps=128, batch_size=256, n_epochs=4, learning_rate=3e-4, gamma=0.97, gae_lambda=0.95,
                ent_coef=0.01, clip_range=0.2),
    "a2c": dict(n_steps=16, learning_rate=7e-4, gamma=0.97, ent_coef=0.01),
    "dqn": dict(buffer_size=50_000, learning_starts=2_000, batch_size=64, learning_rate=2.5e-4, gamma=0.97,
                train_freq=4, target_update_interval=1_000, exploration_fraction=0.3, exploration_final_eps=0.05),
}


class RealGameCurve(BaseCallback):
    """Every `every` environment steps: play held-out real-game episodes and log the mean return."""

    def __init__(self, out: Path, every: int, episodes: int, max_steps: int, prompts: list[str]):
        super().__init__()
        self.path, self.every, self.max_steps = out / "curve.csv", every, max_steps
        self.starts = episode_starts(episodes, prompts=prompts)
        self.next_at, self.t0 = 0, time.time()
        self.rows: list[dict] = []

    def _on_training_start(self) -> None:
        self.t0 = time.time()
        self.evaluate()  # the untrained policy
        self.next_at = self.num_timesteps + self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at:
            self.evaluate()
            self.next_at += self.every
        return True

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["steps"] != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> None:
        train_wall = time.time() - self.t0
        returns, _ = play_real(PolicyAgent(self.model), self.starts, self.max_steps)
        real = mean_ci(returns)
        ep = [e["r"] for e in self.model.ep_info_buffer] if self.model.ep_info_buffer else []
        row = {"steps": self.num_timesteps, "wall_s": round(train_wall, 1),
               "train_return": float(np.mean(ep)) if ep else float("nan"),
               "real_return": real["mean"], "real_ci95": real["ci95"]}
        self.rows.append(row)
        self.logger.record("real/mean_return", real["mean"])
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(self.rows)
        print(f"[{self.num_timesteps} steps, {train_wall:.0f} s] training return {row['train_return']:.2f}, "
              f"real-game return {real['mean']:.2f} +- {real['ci95']:.2f}", flush=True)


def tensorboard_dir(out: Path) -> str | None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        print("tensorboard is not installed (pip install 'waypoint-gym[agents]'): logging to stdout only")
        return None
    return str(out / "tb")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", choices=WORLDS, default="dream")
    p.add_argument("--algo", choices=sorted(ALGOS), default="ppo")
    p.add_argument("--steps", type=int, default=50_000, help="environment steps in all")
    p.add_argument("--n-envs", type=int, default=16)
    p.add_argument("--max-episode-steps", type=int, default=200, help="real game: steps per episode (and evaluations)")
    p.add_argument("--horizon", type=int, default=16, help="dream: imagined steps per episode (then truncated)")
    p.add_argument("--starts", help="dream: a folder of recorded play (train collect) to start episodes from")
    p.add_argument("--context-frames", type=int, default=6, help="dream with --starts: real frames per start")
    p.add_argument("--prompt", action="append", help="caption(s) of the worlds (repeat); default: the default prompt")
    p.add_argument("--model", help="dream: a Waypoint checkpoint folder or hub id (default: the bundled world)")
    p.add_argument("--n-denoise-steps", type=int, help="dream: denoising steps per frame (default: the model's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=10_000, help="steps between real-game evaluations (0: none)")
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--checkpoint-every", type=int, default=25_000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.steps < 1 or args.n_envs < 1 or args.horizon < 1:
        p.error("--steps, --n-envs and --horizon must be positive")
    if args.starts and args.world != "dream":
        p.error("--starts is for --world dream; the real game starts each episode on a new map")
    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = args.prompt or [DEFAULT_PROMPT]
    args.out.mkdir(parents=True, exist_ok=True)

    episode_steps = args.horizon if args.world == "dream" else args.max_episode_steps
    env = make_vec_env(args.world, args.n_envs, args.seed, prompts, episode_steps, args.model, args.device,
                       args.n_denoise_steps, args.starts, args.context_frames)
    agent = ALGOS[args.algo]("CnnPolicy", env, seed=args.seed, device=args.device, verbose=0,
                             tensorboard_log=tensorboard_dir(args.out), **ALGO_KWARGS[args.algo])
    callbacks = [CheckpointCallback(max(args.checkpoint_every // args.n_envs, 1), str(args.out / "checkpoints"),
                                    name_prefix=args.algo)]
    curve = None
    if args.eval_every > 0:
        curve = RealGameCurve(args.out, args.eval_every, args.eval_episodes, args.max_episode_steps, prompts)
        callbacks.append(curve)
    # The agent collects whole rollouts (on-policy: n_steps in each env; otherwise a step of every env), so
    # it runs to the next whole one: say so and tell the progress bar, instead of letting it overshoot.
    chunk = getattr(agent, "n_steps", 1) * args.n_envs
    steps = -(-args.steps // chunk) * chunk
    if steps != args.steps:
        print(f"--steps {args.steps} rounded up to {steps}: whole rollouts of {chunk} steps ({args.n_envs} envs)")
    t0 = time.time()
    agent.learn(steps, callback=CallbackList(callbacks), progress_bar=not args.no_progress,
                tb_log_name=f"{args.algo}_{args.world}")
    wall = time.time() - t0
    agent.save(args.out / "model.zip")
    env.close()
    summary = {
        "world": args.world, "algo": args.algo, "steps": int(agent.num_timesteps), "n_envs": args.n_envs,
        "max_episode_steps": episode_steps, "horizon": args.horizon if args.world == "dream" else None,
        "starts": args.starts if args.world == "dream" else None, "prompts": prompts, "model": args.model,
        "n_denoise_steps": args.n_denoise_steps, "seed": args.seed, "wall_s": round(wall, 1),
        "steps_per_s": round(agent.num_timesteps / wall, 1), "torch_threads": torch.get_num_threads(),
        "final_real_return": curve.rows[-1]["real_return"] if curve and curve.rows else None,
    }
    (args.out / "train.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
