"""Reward events: does the reward head find the real game's orb collections in dreamed steps?

Precision and recall of the reward head's orb collections against the real game's, on teacher-forced
transitions of an orb-seeking policy; the head reads the real latents (the head alone) and the model's one-step
latents (what the learned environment feeds it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from waypoint_gym.engine import WorldEngine

from .harness import EVAL_SEED, Harness, exploration

log = logging.getLogger(__name__)


def precision_recall(predicted: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    hits = int(np.sum(predicted & target))
    n_predicted, n_target = int(predicted.sum()), int(target.sum())
    precision = hits / n_predicted if n_predicted else None
    recall = hits / n_target if n_target else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if n_target else None)
    return {"precision": precision, "recall": recall, "f1": f1, "events": n_target, "predicted": n_predicted}


def reward_events(
    engine: WorldEngine,
    reward_head: Any,
    n_worlds: int | None = None,
    n_steps: int = 200,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    *,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Precision and recall of the reward head's orb collections against the real game's reward events.

    An orb-seeking `ExplorationPolicy` (every world seeks) plays `n_steps` teacher-forced steps. The head
    (`predict(prev_latent, latent, keys, mouse)`) reads the real previous latent with the real latent
    ("real_latents": the head alone) and with the model's one-step latent ("dreamed_latents"). Returns both
    as {"precision", "recall", "f1", "events", "predicted"}; precision or recall is None where undefined.
    """
    harness = Harness(engine, captions, mouse_scale, progress)
    keys = harness.keys
    head_keys = [k.upper() for k in (reward_head.config.keys or keys)]
    if len(head_keys) != reward_head.config.n_keys or not set(head_keys) <= set(keys):
        raise ValueError(f"the reward head reads keys {head_keys}, the model's keys are {list(keys)}")
    columns = [keys.index(k) for k in head_keys]
    n_worlds = n_worlds or engine.batch_size
    target, on_real, on_dreamed = [], [], []
    for pair in harness.pairs(n_worlds, n_steps, seed, exploration(1.0, keys), "reward events"):
        previous = pair.start()
        for _ in range(n_steps):
            pressed, mouse = pair.act()
            frames, reward = pair.play(pressed, mouse)
            guess = pair.dream(pressed, mouse, store=False)
            latent = pair.observe(frames, pressed, mouse)
            head_keys_in = torch.from_numpy(pressed[:, columns].astype(np.float32))
            head_mouse = torch.from_numpy(np.asarray(mouse, np.float32))
            on_real.append(reward_head.predict(previous, latent, head_keys_in, head_mouse)[0].cpu().numpy() > 0)
            on_dreamed.append(reward_head.predict(previous, guess, head_keys_in, head_mouse)[0].cpu().numpy() > 0)
            target.append(np.asarray(reward) > 0)
            previous = latent
    target, on_real, on_dreamed = (np.concatenate(v) for v in (target, on_real, on_dreamed))
    result = {"real_latents": precision_recall(on_real, target),
              "dreamed_latents": precision_recall(on_dreamed, target),
              "transitions": len(target), "n_worlds": n_worlds, "n_steps": n_steps}
    log.info("reward events: %d in %d transitions; head on real latents %s, on dreamed latents %s",
             int(target.sum()), len(target), result["real_latents"], result["dreamed_latents"])
    return result


def within(events: np.ndarray, other: np.ndarray, slack: int) -> np.ndarray:
    """Which of `events` [N, T] (bool) have an `other` event in the same rollout within `slack` steps."""
    near = other.copy()
    for shift in range(1, slack + 1):
        near |= _shifted(other, shift) | _shifted(other, -shift)
    return events & near


def _shifted(x: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros_like(x)
    if shift > 0:
        out[:, shift:] = x[:, :-shift]
    else:
        out[:, :shift] = x[:, -shift:]
    return out


def open_loop_reward_events(
    engine: WorldEngine,
    reward_head: Any,
    n_worlds: int | None = None,
    horizon: int = 16,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    *,
    n_context: int = 6,
    slack: int = 1,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Gate 4: orb collections in `horizon`-step open-loop dreams from real starts, found by the reward head.

    An orb-seeking `ExplorationPolicy` plays `n_context` real frames into the model's history, then the real
    game and the dream go on `horizon` steps under the same actions; the head reads consecutive dreamed latents.
    A collection of the real game counts as found when the head fires within `slack` steps of it in the same
    rollout, and a firing counts as right when a real collection lies within `slack` steps. Returns
    {"precision", "recall", "events", "predicted", "exact" (slack 0), ...}.
    """
    harness = Harness(engine, captions, mouse_scale, progress)
    keys = harness.keys
    columns = [keys.index(k) for k in [k.upper() for k in (reward_head.config.keys or keys)]]
    n_worlds = n_worlds or engine.batch_size
    target, fired = [], []
    for pair in harness.pairs(n_worlds, n_context - 1 + horizon, seed, exploration(1.0, keys), "open-loop rewards"):
        previous = pair.start()
        for _ in range(n_context - 1):
            action = pair.act()
            previous = pair.observe(pair.play(*action)[0], *action)
        real_events, head_events = [], []
        for _ in range(horizon):
            pressed, mouse = pair.act()
            _, reward = pair.play(pressed, mouse)
            latent = pair.dream(pressed, mouse)
            keys_in = torch.from_numpy(pressed[:, columns].astype(np.float32))
            head_events.append(reward_head.predict(previous, latent, keys_in, torch.from_numpy(
                np.asarray(mouse, np.float32)))[0].cpu().numpy() > 0)
            real_events.append(np.asarray(reward) > 0)
            previous = latent
        target.append(np.stack(real_events, 1))  # [n, horizon]
        fired.append(np.stack(head_events, 1))
    target, fired = np.concatenate(target), np.concatenate(fired)
    n_target, n_fired = int(target.sum()), int(fired.sum())
    found, right = int(within(target, fired, slack).sum()), int(within(fired, target, slack).sum())
    result = {"precision": right / n_fired if n_fired else None, "recall": found / n_target if n_target else None,
              "events": n_target, "predicted": n_fired, "slack_steps": slack,
              "exact": precision_recall(fired.ravel(), target.ravel()), "n_worlds": n_worlds, "horizon": horizon,
              "n_context": n_context}
    log.info("open-loop reward events: %d real, head fired %d; precision %s recall %s", n_target, n_fired,
             result["precision"], result["recall"])
    return result
