"""A rollout of a checkpoint under random controls: frames and latent statistics, to see that a world runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .controls import control_vectors
from .keycodes import keycode
from .world_engine import WorldEngine


def random_rollout(checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike, frames: int = 32,
                   batch_size: int = 1, n_denoise_steps: int | None = None, prompt: str | None = None,
                   device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Generate `frames` frames in `batch_size` envs of a checkpoint (None: the bundled world) under random keys
    and mouse, from the world's start frames if it ships some. Writes `out_dir/rollout.json` (the returned
    summary, with latent statistics per frame) and, with an autoencoder, `out_dir/frames.png` (8 frames of env 0).
    """
    eng = WorldEngine(checkpoint, device=device, batch_size=batch_size, n_denoise_steps=n_denoise_steps,
                      seed=seed)
    B = eng.batch_size
    prompt = prompt or eng.config.extra.get("default_prompt")
    if prompt and eng.config.prompt_conditioning:
        eng.set_prompt(prompt)
    start = eng.folder / "start_frames.npy" if eng.folder is not None else None
    k = eng.frames_per_latent  # video frames per latent (4 for Waypoint-1.5)
    if eng.autoencoder is not None and start is not None and start.is_file():
        seed_frames = np.load(start)  # the world's own start, as Waypoint-v0 begins: k frames per latent, or one image
        groups = (seed_frames.reshape(-1, k, *seed_frames.shape[1:]) if k > 1 and len(seed_frames) % k == 0
                  else seed_frames)
        for group in groups:
            eng.append_frame(np.repeat(group[None], B, axis=0), env_ids=list(range(B)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = eng.config.extra.get("default_keys")  # the world's own keys, else a few random keycodes
    keycodes = np.array([keycode(k) for k in names] if names else sorted(
        rng.choice(eng.config.n_buttons, size=min(8, eng.config.n_buttons), replace=False).tolist()))
    stats, shown = [], []
    t0 = time.perf_counter()
    for t in tqdm(range(frames), desc="rollout", unit="frame"):
        pressed, mouse = np.zeros((B, len(keycodes)), bool), np.zeros((B, 2))
        for i in range(B):  # each key held with chance 0.2, the mouse drawn around rest
            pressed[i] = rng.random(len(keycodes)) < 0.2
            mouse[i] = rng.normal(0, 0.3, 2)
        z = eng.gen_latent(control_vectors(pressed, mouse, keycodes, eng.config.n_buttons), env_ids=list(range(B)))
        stats.append({"frame": t, "mean": z.mean().item(), "std": z.std().item(),
                      "abs_max": z.abs().max().item(), "finite": bool(torch.isfinite(z).all())})
        if eng.autoencoder is not None:
            img = eng.autoencoder.decode(z.to(eng.dtype))[0]  # env 0: a frame, or a latent's k frames
            shown.append(img[-1] if k > 1 else img)
    seconds = time.perf_counter() - t0
    summary = {
        "checkpoint": str(eng.folder or checkpoint), "frames": frames, "batch_size": B,
        "denoising_steps": eng.n_denoise_steps, "seconds": seconds, "frames_per_s": frames * B / seconds,
        "latent_shape": list(eng.latent_shape), "per_frame": stats,
    }
    (out / "rollout.json").write_text(json.dumps(summary, indent=2))
    if shown:
        strip = np.concatenate(shown[:: max(1, len(shown) // 8)][:8], axis=1)
        if not cv2.imwrite(str(out / "frames.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {out / 'frames.png'}")
    return summary
