"""How close dreamed frames are to the real ones: one-step (teacher-forced) and open-loop PSNR.

* One-step PSNR (teacher forced): the model's history holds the real frames; each generated frame is compared
  with the real frame it should be. The autoencoder's reconstruction PSNR of the same frames is the ceiling.
* Open-loop PSNR: from the seed frames the model runs on its own outputs for `horizon` steps; PSNR per step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from waypoint_gym.engine import WorldEngine

from .harness import EVAL_SEED, Harness, PolicyFactory, exploration, strip_samples

log = logging.getLogger(__name__)

MAX_PSNR = 100.0  # what identical images score


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 images [..., H, W, C], one value per image; identical images give MAX_PSNR."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"need two image arrays [..., H, W, C] of one shape, got {a.shape} and {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.mean(diff * diff, axis=(-3, -2, -1))
    floor = 255.0**2 * 10 ** (-MAX_PSNR / 10)
    return 10 * np.log10(255.0**2 / np.maximum(mse, floor))


def one_step_psnr(
    engine: WorldEngine,
    n_worlds: int | None = None,
    n_steps: int = 32,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    policy: PolicyFactory | None = None,
    *,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Teacher-forced PSNR: each frame generated from the REAL history and its action, against the real frame.

    `policy(num_envs, seed)` plays the game (default: `ExplorationPolicy`, as in the training data). Returns
    {"psnr", "psnr_std", "per_step", "autoencoder_psnr", "n_worlds", "n_steps", "samples"}.
    """
    harness = Harness(engine, captions, mouse_scale, progress)
    n_worlds = n_worlds or engine.batch_size
    scores, ceiling, samples = [], [], None
    for pair in harness.pairs(n_worlds, n_steps, seed, policy or exploration(0.4, harness.keys), "one-step PSNR"):
        latent = pair.start()
        real, dreamed, step_scores, step_ceiling = [pair.frames], [pair.decode(latent)], [], []
        for _ in range(n_steps):
            action = pair.act()
            frames, _ = pair.play(*action)
            guess = pair.decode(pair.dream(*action, store=False))
            latent = pair.observe(frames, *action)
            step_scores.append(psnr(guess, frames))
            step_ceiling.append(psnr(pair.decode(latent), frames))
            real.append(frames)
            dreamed.append(guess)
        scores.append(np.stack(step_scores, 1))  # [n, n_steps]
        ceiling.append(np.stack(step_ceiling, 1))
        samples = samples or strip_samples(real, dreamed)
    scores, ceiling = np.concatenate(scores), np.concatenate(ceiling)
    log.info("one-step PSNR %.2f dB (autoencoder ceiling %.2f dB)", scores.mean(), ceiling.mean())
    return {
        "psnr": float(scores.mean()), "psnr_std": float(scores.std()), "per_step": scores.mean(0).tolist(),
        "autoencoder_psnr": float(ceiling.mean()), "n_worlds": n_worlds, "n_steps": n_steps, "samples": samples,
    }


def open_loop_psnr(
    engine: WorldEngine,
    horizon: int = 16,
    n_worlds: int | None = None,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    policy: PolicyFactory | None = None,
    *,
    n_seed_frames: int = 1,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """PSNR of `horizon` frames the model generates on its own outputs after `n_seed_frames` real frames.

    Returns {"psnr" (mean over the steps), "psnr_at_horizon", "per_step" [horizon], "n_worlds", "horizon",
    "samples"}; the samples start with the last seed frame (its autoencoder reconstruction in the dreamed row).
    """
    if horizon < 1 or n_seed_frames < 1:
        raise ValueError(f"need horizon >= 1 and n_seed_frames >= 1, got {horizon} and {n_seed_frames}")
    harness = Harness(engine, captions, mouse_scale, progress)
    n_worlds = n_worlds or engine.batch_size
    scores, samples = [], None
    steps = n_seed_frames - 1 + horizon
    for pair in harness.pairs(n_worlds, steps, seed, policy or exploration(0.4, harness.keys), "open-loop PSNR"):
        latent = pair.start()
        for _ in range(n_seed_frames - 1):
            action = pair.act()
            latent = pair.observe(pair.play(*action)[0], *action)
        real, dreamed, step_scores = [pair.frames], [pair.decode(latent)], []
        for _ in range(horizon):
            action = pair.act()
            frames, _ = pair.play(*action)
            guess = pair.decode(pair.dream(*action))
            step_scores.append(psnr(guess, frames))
            real.append(frames)
            dreamed.append(guess)
        scores.append(np.stack(step_scores, 1))  # [n, horizon]
        samples = samples or strip_samples(real, dreamed)
    per_step = np.concatenate(scores).mean(0)
    log.info("open-loop PSNR %.2f dB over %d steps, %.2f dB at the horizon", per_step.mean(), horizon, per_step[-1])
    return {
        "psnr": float(per_step.mean()), "psnr_at_horizon": float(per_step[-1]), "per_step": per_step.tolist(),
        "n_worlds": n_worlds, "horizon": horizon, "n_seed_frames": n_seed_frames, "samples": samples,
    }
