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

from .harness import CALIBRATION_SEED, EVAL_SEED, Harness, exploration

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


def open_loop_reward_probabilities(
    engine: WorldEngine,
    reward_head: Any,
    n_worlds: int | None = None,
    horizon: int = 16,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    *,
    n_context: int = 6,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """`horizon`-step open-loop dreams from real starts, paired with the real game -> (the real game's
    collections bool [N, horizon], the head's probability of a collection on the dreamed steps [N, horizon]).

    An orb-seeking `ExplorationPolicy` plays `n_context` real frames into the model's history, then the real
    game and the dream go on `horizon` steps under the same actions; the head reads consecutive dreamed latents.
    """
    harness = Harness(engine, captions, mouse_scale, progress)
    keys = harness.keys
    columns = [keys.index(k) for k in [k.upper() for k in (reward_head.config.keys or keys)]]
    n_worlds = n_worlds or engine.batch_size
    target, probs = [], []
    for pair in harness.pairs(n_worlds, n_context - 1 + horizon, seed, exploration(1.0, keys), "open-loop rewards"):
        previous = pair.start()
        for _ in range(n_context - 1):
            action = pair.act()
            previous = pair.observe(pair.play(*action)[0], *action)
        real_events, head_probs = [], []
        for _ in range(horizon):
            pressed, mouse = pair.act()
            _, reward = pair.play(pressed, mouse)
            latent = pair.dream(pressed, mouse)
            probs_now = reward_head.probabilities(previous, latent, pressed[:, columns].astype(np.float32),
                                                  np.asarray(mouse, np.float32))
            head_probs.append(probs_now[:, 0].cpu().numpy())
            real_events.append(np.asarray(reward) > 0)
            previous = latent
        target.append(np.stack(real_events, 1))  # [n, horizon]
        probs.append(np.stack(head_probs, 1))
    return np.concatenate(target), np.concatenate(probs)


def event_figures(target: np.ndarray, fired: np.ndarray, slack: int) -> dict[str, Any]:
    """Precision and recall of `fired` [N, T] against `target` [N, T] within `slack` steps in the same rollout."""
    n_target, n_fired = int(target.sum()), int(fired.sum())
    found, right = int(within(target, fired, slack).sum()), int(within(fired, target, slack).sum())
    return {"precision": right / n_fired if n_fired else None, "recall": found / n_target if n_target else None,
            "events": n_target, "predicted": n_fired, "slack_steps": slack}


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
    """Gate 4: orb collections in `horizon`-step open-loop dreams from real starts, found by the reward head at
    its saved threshold (`open_loop_reward_probabilities`).

    A collection of the real game counts as found when the head fires within `slack` steps of it in the same
    rollout, and a firing counts as right when a real collection lies within `slack` steps. Returns
    {"precision", "recall", "events", "predicted", "exact" (slack 0), "events_by_step" and "found_by_step"
    (the real collections, and those found, by the dreamed step they fall on), ...}.
    """
    target, probs = open_loop_reward_probabilities(engine, reward_head, n_worlds, horizon, seed, captions,
                                                   n_context=n_context, mouse_scale=mouse_scale, progress=progress)
    fired = probs > reward_head.config.reward_threshold
    result = {**event_figures(target, fired, slack), "exact": precision_recall(fired.ravel(), target.ravel()),
              "events_by_step": target.sum(0).tolist(), "found_by_step": within(target, fired, slack).sum(0).tolist(),
              "n_worlds": len(target), "horizon": horizon, "n_context": n_context}
    log.info("open-loop reward events: %d real, head fired %d; precision %s recall %s", result["events"],
             result["predicted"], result["precision"], result["recall"])
    return result


def calibrate_reward_threshold(
    engine: WorldEngine,
    reward_head: Any,
    n_worlds: int = 64,
    horizon: int = 16,
    seed: int = CALIBRATION_SEED,
    captions: Sequence[str] | None = None,
    *,
    n_context: int = 6,
    slack: int = 1,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The reward threshold that finds the real game's collections best (highest F1 within `slack` steps) in
    the world's own open-loop dreams from real starts, on seeds apart from the evaluation's.

    Returns {"threshold", "precision", "recall", "f1", "events", "predicted"} at the chosen threshold, the same
    at the head's saved threshold ("saved"), and the curve over candidate thresholds ("curve"). With no
    collection in the dreams' real games, or none the head finds at any threshold, "threshold" is None.
    """
    target, probs = open_loop_reward_probabilities(engine, reward_head, n_worlds, horizon, seed, captions,
                                                   n_context=n_context, mouse_scale=mouse_scale, progress=progress)
    chosen = choose_threshold(target, probs, slack)
    saved = event_figures(target, probs > reward_head.config.reward_threshold, slack)
    return {**chosen, "saved": {"threshold": reward_head.config.reward_threshold, **saved},
            "n_worlds": len(target), "horizon": horizon, "n_context": n_context, "seed": seed}


def choose_threshold(target: np.ndarray, probs: np.ndarray, slack: int = 1) -> dict[str, Any]:
    """The threshold on `probs` [N, T] whose firings find `target` [N, T] best (F1 within `slack` steps; the
    higher threshold on ties), among the 0.5-1.0 quantiles of `probs` and 0.5. "threshold" is None when no
    threshold finds a collection; "curve" lists every candidate."""
    curve = []
    for threshold in np.unique(np.concatenate([np.quantile(probs, np.linspace(0.5, 1.0, 101)), [0.5]])):
        figures = event_figures(target, probs > threshold, slack)
        p, r = figures["precision"] or 0.0, figures["recall"] or 0.0
        curve.append({"threshold": float(threshold), **figures, "f1": 2 * p * r / (p + r) if p + r else 0.0})
    best = max(curve, key=lambda row: (row["f1"], row["threshold"]))
    return {**best, "threshold": best["threshold"] if best["f1"] > 0 else None, "curve": curve}
