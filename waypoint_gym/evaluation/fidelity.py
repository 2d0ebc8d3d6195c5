"""How close dreamed frames are to the real ones, and whether they keep the real frames' detail.

* One-step (teacher forced): the model's history holds the real frames; each generated frame is compared
  with the real frame it should be. The autoencoder's reconstruction of the same frames is the ceiling.
* Copy: after real context frames, one step with no keys held and the mouse still, where the real view barely
  changes: a world that holds its scene reproduces the last frame.
* Open loop: from the seed frames the model runs on its own outputs for `horizon` steps; figures per step.

PSNR rewards a blur of the right colours, so every row also reports SSIM (`skimage.metrics`) and the detail
ratio: the mean image-gradient magnitude (Sobel, grey frames) of dreamed frames over that of the real frames
at the same step. A fog scores near 0.3, a faithful world near 1. Pixel std (over pixels and channels) tells
a washed-out frame from one of full contrast.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from waypoint_gym.engine import WorldEngine

from .control import turn_following
from .harness import EVAL_SEED, STRIP_FRAMES, STRIP_WORLDS, Harness, PolicyFactory, exploration, strip_samples

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


def gradient_magnitude(frame: np.ndarray) -> np.ndarray:
    """Image-gradient magnitude of a uint8 frame [H, W, 3] (Sobel on grey, grey levels a pixel) -> [H, W]."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy) / 8  # the 3x3 Sobel kernel weighs a unit step by 8


def detail(frames: np.ndarray) -> np.ndarray:
    """Mean image-gradient magnitude of uint8 frames [..., H, W, 3] -> [...]."""
    frames = np.asarray(frames)
    flat = frames.reshape(-1, *frames.shape[-3:])
    return np.array([gradient_magnitude(frame).mean() for frame in flat], np.float64).reshape(frames.shape[:-3])


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of uint8 images [..., H, W, 3] (over the colour channels, 7x7 windows), one value per image."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"need two image arrays [..., H, W, C] of one shape, got {a.shape} and {b.shape}")
    pairs = zip(a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:]))
    values = [structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in pairs]
    return np.array(values).reshape(a.shape[:-3])


def pixel_std(frames: np.ndarray) -> np.ndarray:
    """Std over pixels and channels of uint8 frames [..., H, W, 3] -> [...]."""
    return np.asarray(frames, np.float32).std(axis=(-3, -2, -1))


def frame_figures(dreamed: np.ndarray, real: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame figures of dreamed frames against real ones [N, T, H, W, 3] -> {name: [N, T]}."""
    return {"psnr": psnr(dreamed, real), "ssim": ssim(dreamed, real), "detail": detail(dreamed),
            "real_detail": detail(real), "pixel_std": pixel_std(dreamed), "real_pixel_std": pixel_std(real)}


def summary(figures: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of `frame_figures` over all frames, with the detail ratio and the pixel std ratio."""
    mean = {k: float(np.mean(v)) for k, v in figures.items()}
    return {"psnr": mean["psnr"], "ssim": mean["ssim"], "detail_ratio": mean["detail"] / max(mean["real_detail"], 1e-9),
            "detail": mean["detail"], "real_detail": mean["real_detail"], "pixel_std": mean["pixel_std"],
            "real_pixel_std": mean["real_pixel_std"],
            "pixel_std_ratio": mean["pixel_std"] / max(mean["real_pixel_std"], 1e-9)}


def copy_step(
    engine: WorldEngine,
    n_trials: int = 64,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    *,
    n_context: int = 6,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Gate 1: after `n_context` real frames of exploration, one step with no keys held and the mouse still.

    The real next frame then differs from the last one only by the orbs' bobbing. Returns {"psnr", "ssim",
    "detail_ratio", "pixel_std_ratio", ... (see `summary`), "last_frame_psnr" (the real next frame against the
    last real one: what copying it would score), "autoencoder_psnr" and "autoencoder_detail_ratio" (the real
    next frame through the autoencoder: the ceilings), "n_trials", "samples"}.
    """
    if n_context < 1:
        raise ValueError(f"need n_context >= 1, got {n_context}")
    harness = Harness(engine, captions, mouse_scale, progress)
    policy = exploration(0.4, harness.keys)
    dreamed, real, last, recon, samples = [], [], [], [], None
    for pair in harness.pairs(n_trials, n_context, seed, policy, "copy step"):
        pair.start()
        for _ in range(n_context - 1):
            action = pair.act()
            pair.observe(pair.play(*action)[0], *action)
        before = pair.frames
        still = np.zeros((pair.n, len(harness.keys)), np.uint8), np.zeros((pair.n, 2), np.float32)
        guess = pair.decode(pair.dream(*still, store=False))
        frames, _ = pair.play(*still)
        dreamed.append(guess)
        real.append(frames)
        last.append(before)
        recon.append(pair.reconstruct(frames))
        samples = samples or {"real": np.stack([before, frames], 1)[:4], "dreamed": np.stack([before, guess], 1)[:4]}
    dreamed, real, last, recon = (np.concatenate(v)[:, None] for v in (dreamed, real, last, recon))
    result = summary(frame_figures(dreamed, real))
    result.update(last_frame_psnr=float(psnr(last, real).mean()), autoencoder_psnr=float(psnr(recon, real).mean()),
                  autoencoder_detail_ratio=float(detail(recon).mean() / max(detail(real).mean(), 1e-9)),
                  n_trials=n_trials, n_context=n_context, samples=samples)
    log.info("copy step: PSNR %.2f dB, detail ratio %.2f", result["psnr"], result["detail_ratio"])
    return result


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
    scores, ceiling, samples, clips = [], [], None, []
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
        clips.append((np.stack(dreamed[1:], 1), np.stack(real[1:], 1)))
    scores, ceiling = np.concatenate(scores), np.concatenate(ceiling)
    figures = summary(frame_figures(np.concatenate([d for d, _ in clips]), np.concatenate([r for _, r in clips])))
    log.info("one-step PSNR %.2f dB (autoencoder ceiling %.2f dB)", scores.mean(), ceiling.mean())
    return {
        "psnr": float(scores.mean()), "psnr_std": float(scores.std()), "per_step": scores.mean(0).tolist(),
        **{k: v for k, v in figures.items() if k != "psnr"},
        "autoencoder_psnr": float(ceiling.mean()), "n_worlds": n_worlds, "n_steps": n_steps, "samples": samples,
    }


def open_loop_clips(harness: Harness, n_worlds: int, horizon: int, seed: int, policy: PolicyFactory,
                    n_seed_frames: int = 1) -> dict[str, np.ndarray]:
    """Play `n_seed_frames` real frames into the model, then `horizon` steps of `policy` in the game and in the
    model on its own outputs -> {"real", "dreamed", "reconstructed" (the real frames through the autoencoder)}:
    clips [n_worlds, 1 + horizon, H, W, 3] that start with the last seed frame (its reconstruction in the
    dreamed clip)."""
    chunks = []
    for pair in harness.pairs(n_worlds, n_seed_frames - 1 + horizon, seed, policy, "open loop"):
        latent = pair.start()
        for _ in range(n_seed_frames - 1):
            action = pair.act()
            latent = pair.observe(pair.play(*action)[0], *action)
        clips = {"real": [pair.frames], "dreamed": [pair.decode(latent)]}
        clips["reconstructed"] = [clips["dreamed"][0]]
        for _ in range(horizon):
            action = pair.act()
            frames, _ = pair.play(*action)
            clips["dreamed"].append(pair.decode(pair.dream(*action)))
            clips["real"].append(frames)
            clips["reconstructed"].append(pair.reconstruct(frames))
        chunks.append({k: np.stack(v, 1) for k, v in clips.items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


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

    Returns {"psnr" (mean over the steps), "psnr_at_horizon", "per_step" [horizon], "turns" (`turn_following`,
    with "reconstruction_agreement": the real frames through the autoencoder, the ceiling), "n_worlds",
    "horizon", "samples"}; the samples start with the last seed frame (its autoencoder reconstruction in the
    dreamed row).
    """
    if horizon < 1 or n_seed_frames < 1:
        raise ValueError(f"need horizon >= 1 and n_seed_frames >= 1, got {horizon} and {n_seed_frames}")
    harness = Harness(engine, captions, mouse_scale, progress)
    n_worlds = n_worlds or engine.batch_size
    clips = open_loop_clips(harness, n_worlds, horizon, seed, policy or exploration(0.4, harness.keys), n_seed_frames)
    real, dreamed = clips["real"], clips["dreamed"]
    figures = frame_figures(dreamed[:, 1:], real[:, 1:])  # {name: [N, horizon]}
    per_step = figures["psnr"].mean(0)
    at_horizon = summary({k: v[:, -1] for k, v in figures.items()})
    log.info("open-loop PSNR %.2f dB over %d steps, %.2f dB at the horizon", per_step.mean(), horizon, per_step[-1])
    return {
        "psnr": float(per_step.mean()), "psnr_at_horizon": float(per_step[-1]), "per_step": per_step.tolist(),
        "ssim": float(figures["ssim"].mean()), "ssim_at_horizon": at_horizon["ssim"],
        "detail_ratio_at_horizon": at_horizon["detail_ratio"],
        "pixel_std_ratio_at_horizon": at_horizon["pixel_std_ratio"],
        "per_step_figures": [summary({k: v[:, t] for k, v in figures.items()}) for t in range(horizon)],
        "turns": {**turn_following(real, dreamed),
                  "reconstruction_agreement": turn_following(real, clips["reconstructed"])["agreement"]},
        "n_worlds": n_worlds, "horizon": horizon, "n_seed_frames": n_seed_frames,
        "samples": {"real": real[:STRIP_WORLDS, :STRIP_FRAMES], "dreamed": dreamed[:STRIP_WORLDS, :STRIP_FRAMES]},
    }
