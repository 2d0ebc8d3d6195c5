"""Long-rollout drift: how far the colour statistics of a long open-loop rollout wander from the real game's.

Colour statistics (per-channel mean and std of each frame) of a long open-loop rollout against those of the real
game under the same actions, as distances in units of the real frames' std.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from waypoint_gym.engine import WorldEngine

from .harness import EVAL_SEED, STRIP_FRAMES, Harness, PolicyFactory, exploration, strip_samples

log = logging.getLogger(__name__)

STAT_NAMES = ("mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b")


def colour_stats(frames: np.ndarray) -> np.ndarray:
    """uint8 frames [..., H, W, 3] -> per-channel mean and std [..., 6] (see STAT_NAMES)."""
    x = np.asarray(frames, np.float32)
    return np.concatenate([x.mean(axis=(-3, -2)), x.std(axis=(-3, -2))], axis=-1)


def long_rollout_drift(
    engine: WorldEngine,
    n_steps: int = 1000,
    n_worlds: int | None = None,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    policy: PolicyFactory | None = None,
    *,
    window: int = 100,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """How far the colour statistics of a long open-loop rollout wander from the real game's under the same actions.

    For each world, the real run's frames give a mean and std of every statistic of `colour_stats`; a stretch of
    frames sits at |its mean statistic - real mean| / real std (std at least 1 grey level), averaged over the
    statistics and worlds. Returns {"drift" (the last `window` frames), "drift_colour_mean", "drift_colour_std",
    "real_drift" (the same for the real frames: what staying in distribution looks like), "curve" [{"step",
    "drift"}], "samples"}.
    """
    if n_steps < 1 or window < 1:
        raise ValueError(f"need n_steps >= 1 and window >= 1, got {n_steps} and {window}")
    harness = Harness(engine, captions, mouse_scale, progress)
    n_worlds = n_worlds or engine.batch_size
    every = max(1, n_steps // (STRIP_FRAMES - 1))
    real_stats, dream_stats, samples = [], [], None
    for pair in harness.pairs(n_worlds, n_steps, seed, policy or exploration(0.4, harness.keys), "long rollout"):
        guess = pair.decode(pair.start())
        frames = pair.frames
        real, dreamed, shown_real, shown_dreamed = [colour_stats(frames)], [colour_stats(guess)], [frames], [guess]
        for t in range(1, n_steps + 1):
            action = pair.act()
            frames, _ = pair.play(*action)
            guess = pair.decode(pair.dream(*action))
            real.append(colour_stats(frames))
            dreamed.append(colour_stats(guess))
            if t % every == 0:
                shown_real.append(frames)
                shown_dreamed.append(guess)
        real_stats.append(np.stack(real, 1))  # [n, T, 6]
        dream_stats.append(np.stack(dreamed, 1))
        samples = samples or strip_samples(shown_real, shown_dreamed)
    real_stats, dream_stats = np.concatenate(real_stats), np.concatenate(dream_stats)  # [N, n_steps + 1, 6]
    mean = real_stats.mean(1, keepdims=True)
    std = np.maximum(real_stats.std(1, keepdims=True), 1.0)

    def distance(stats: np.ndarray, start: int, stop: int) -> np.ndarray:
        return (np.abs(stats[:, start:stop].mean(1, keepdims=True) - mean) / std)[:, 0].mean(0)  # [6]

    last = max(1, n_steps + 1 - window)
    final = distance(dream_stats, last, n_steps + 1)
    stride = max(1, n_steps // 20)
    curve = [{"step": stop - 1, "drift": float(distance(dream_stats, start, stop).mean())}
             for start, stop in ((s, min(s + stride, n_steps + 1)) for s in range(1, n_steps + 1, stride))]
    result = {
        "drift": float(final.mean()), "drift_colour_mean": float(final[:3].mean()),
        "drift_colour_std": float(final[3:].mean()), "drift_by_stat": dict(zip(STAT_NAMES, final.tolist())),
        "real_drift": float(distance(real_stats, last, n_steps + 1).mean()),
        "curve": curve, "window": min(window, n_steps), "n_steps": n_steps, "n_worlds": n_worlds,
        "samples": samples, "sample_every": every,
    }
    log.info("long rollout drift %.2f real std over the last %d of %d frames (real frames: %.2f)",
             result["drift"], result["window"], n_steps, result["real_drift"])
    return result
