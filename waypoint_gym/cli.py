"""The `waypoint-gym` command line."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("waypoint_gym")


def rollout(args: argparse.Namespace) -> None:
    """Generate frames from a checkpoint with random controls; save frames (PNG) or latent statistics."""
    import cv2
    import torch
    from tqdm import tqdm

    from waypoint_gym.engine import CtrlInput, WorldEngine

    eng = WorldEngine(args.checkpoint, device=args.device, batch_size=args.batch_size,
                      n_denoise_steps=args.steps, seed=args.seed)
    if args.prompt and eng.config.prompt_conditioning:
        eng.set_prompt(args.prompt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    keys = sorted(rng.choice(eng.config.n_buttons, size=min(8, eng.config.n_buttons), replace=False).tolist())
    stats, frames = [], []
    t0 = time.perf_counter()
    for t in tqdm(range(args.frames), desc="rollout", unit="frame"):
        ctrl = [CtrlInput(button={int(k) for k in keys if rng.random() < 0.2},
                          mouse=tuple(rng.normal(0, 0.3, 2).tolist())) for _ in range(eng.batch_size)]
        z = eng.gen_latent(ctrl, env_ids=list(range(eng.batch_size)))  # [B, C, H, W]
        stats.append({"frame": t, "mean": z.mean().item(), "std": z.std().item(),
                      "abs_max": z.abs().max().item(), "finite": bool(torch.isfinite(z).all())})
        if eng.autoencoder is not None:
            frames.append(eng.autoencoder.decode(z.to(eng.dtype))[0])
    seconds = time.perf_counter() - t0
    summary = {
        "checkpoint": str(args.checkpoint), "frames": args.frames, "batch_size": eng.batch_size,
        "denoising_steps": eng.n_denoise_steps, "seconds": seconds,
        "frames_per_s": args.frames * eng.batch_size / seconds, "latent_shape": list(eng.latent_shape),
        "per_frame": stats,
    }
    (out / "rollout.json").write_text(json.dumps(summary, indent=2))
    if frames:
        strip = np.concatenate(frames[:: max(1, len(frames) // 8)][:8], axis=1)
        cv2.imwrite(str(out / "frames.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    print(f"{args.frames} frames x {eng.batch_size} envs in {seconds:.1f} s "
          f"({summary['frames_per_s']:.1f} frames/s); latent std first/last "
          f"{stats[0]['std']:.3f}/{stats[-1]['std']:.3f}; all finite: {all(s['finite'] for s in stats)}; "
          f"saved to {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="waypoint-gym", description="Waypoint world models as Gymnasium envs")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rollout", help="generate frames from a checkpoint (folder, hub id or preset:NAME)")
    p.add_argument("checkpoint")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")
    p.add_argument("--prompt", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/rollout")
    p.set_defaults(func=rollout)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    args.func(args)


if __name__ == "__main__":
    main()
