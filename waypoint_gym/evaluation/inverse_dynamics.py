"""Action following: which action made this step? An inverse-dynamics model fitted on real frame pairs reads it
from dreamed pairs.

Three factors of an action are read from a pair (frame t-1, frame t): the turn (mouse x below -TURN_CUT,
still, above +TURN_CUT), walking (W alone, neither or both, S alone) and strafing (A alone, neither or both,
D alone). The model is a small MLP on motion features of the pair (`motion_features`: phase-correlation shifts
of the whole picture and of its left, middle, right, top and bottom parts, whose differences tell a turn from a
strafe by parallax, the log-polar zoom of walking, and the mean change), fitted at evaluation time on pairs of
the real game played by `ExplorationPolicy` (its frames passed through the world's autoencoder, as every
dreamed frame is), and scored
by balanced accuracy (the mean of the per-class recalls, so chance is 1/3 whatever the class shares are): on
held-out real pairs (the ceiling), on one-step dreamed pairs (the real previous frame and the frame the world
predicts from the real past) and on open-loop pairs (two dreamed frames).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from waypoint_gym.engine import WorldEngine

from .harness import EVAL_SEED, SEED_BLOCK, Harness, exploration

log = logging.getLogger(__name__)

FACTORS = ("turn", "walk", "strafe")
TURN_CUT = 0.2  # |mouse x| above this is a turn (0.04 rad a step); below it "still"


def action_classes(pressed: np.ndarray, mouse: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """Keys [N, K] and mouse [N, 2] -> classes [N, 3] of (turn, walk, strafe): 0 the first way (left, forward,
    left), 1 none, 2 the other way (right, back, right)."""
    pressed = np.asarray(pressed) != 0
    column = {k: pressed[:, keys.index(k)] if k in keys else np.zeros(len(pressed), bool) for k in "WASD"}
    mx = np.asarray(mouse)[:, 0]
    turn = np.where(mx < -TURN_CUT, 0, np.where(mx > TURN_CUT, 2, 1))
    walk = np.where(column["W"] & ~column["S"], 0, np.where(column["S"] & ~column["W"], 2, 1))
    strafe = np.where(column["A"] & ~column["D"], 0, np.where(column["D"] & ~column["A"], 2, 1))
    return np.stack([turn, walk, strafe], 1)


def motion_features(pairs: np.ndarray) -> np.ndarray:
    """Frame pairs uint8 [N, 2, H, W, 3] -> motion features float32 [N, 15] (see the module's docstring)."""
    pairs = np.asarray(pairs)
    n, _, h, w, _ = pairs.shape
    grey = (pairs.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)
    parts = [(slice(0, h), slice(0, w // 3)), (slice(0, h), slice(w // 3, 2 * w // 3)),
             (slice(0, h), slice(2 * w // 3, w)), (slice(0, h // 2), slice(0, w)), (slice(h // 2, h), slice(0, w))]
    windows = [cv2.createHanningWindow((w, h), cv2.CV_32F)] + [
        cv2.createHanningWindow((xs.stop - xs.start, ys.stop - ys.start), cv2.CV_32F) for ys, xs in parts]
    centre, radius = (w / 2, h / 2), min(h, w) / 2
    out = np.zeros((n, 15), np.float32)
    for i in range(n):
        a, b = grey[i, 0], grey[i, 1]
        (dx, dy), response = cv2.phaseCorrelate(a, b, windows[0])
        row = [dx, dy, response]
        for (ys, xs), window in zip(parts, windows[1:]):
            (px, py), _ = cv2.phaseCorrelate(np.ascontiguousarray(a[ys, xs]), np.ascontiguousarray(b[ys, xs]), window)
            row += [px, py]
        polar_a, polar_b = (cv2.warpPolar(g, (w, h), centre, radius, cv2.WARP_POLAR_LOG) for g in (a, b))
        (zoom, _), _ = cv2.phaseCorrelate(polar_a, polar_b)
        out[i] = row + [zoom * math.log(radius) / w, float(np.abs(b - a).mean())]
    return out


class InverseDynamics(nn.Module):
    """Motion features [N, 15] (standardised with the fitting data's mean and std) -> logits [N, 3 factors, 3]."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = 64):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.mlp = nn.Sequential(nn.Linear(len(mean), hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 3 * len(FACTORS)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp((features - self.mean) / self.std).view(-1, len(FACTORS), 3)

    @torch.no_grad()
    def predict(self, pairs: np.ndarray) -> np.ndarray:
        """Frame pairs [N, 2, H, W, 3] -> classes [N, 3]."""
        return self(torch.from_numpy(motion_features(pairs))).argmax(-1).numpy()


def balanced_accuracy(predicted: np.ndarray, target: np.ndarray) -> dict[str, float | None]:
    """Per factor, the mean over the classes present of the share of that class predicted right."""
    out = {}
    for f, name in enumerate(FACTORS):
        recalls = [np.mean(predicted[target[:, f] == c, f] == c) for c in range(3) if (target[:, f] == c).any()]
        out[name] = float(np.mean(recalls)) if len(recalls) > 1 else None
    return out


def real_pairs(harness: Harness, n_worlds: int, n_steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of the real game's consecutive frames through the autoencoder [M, 2, H, W, 3], with the classes of the
    action between them [M, 3]; `ExplorationPolicy` plays."""
    pairs, classes = [], []
    for pair in harness.pairs(n_worlds, n_steps, seed, exploration(0.4, harness.keys), "inverse-dynamics data"):
        previous = pair.reconstruct(pair.frames)
        for _ in range(n_steps):
            action = pair.act()
            current = pair.reconstruct(pair.play(*action)[0])
            pairs.append(np.stack([previous, current], 1))
            classes.append(action_classes(*action, harness.keys))
            previous = current
    return np.concatenate(pairs), np.concatenate(classes)


def fit_inverse_dynamics(pairs: np.ndarray, classes: np.ndarray, steps: int = 800, batch: int = 128,
                         seed: int = 0) -> InverseDynamics:
    """Cross-entropy over the three factors, each class weighted by the inverse of its share; Adam."""
    features = motion_features(pairs)
    torch.manual_seed(seed)
    model = InverseDynamics(features.mean(0), features.std(0) + 1e-6)
    weights = [torch.tensor([1.0 / max(np.mean(classes[:, f] == c), 1e-3) for c in range(3)], dtype=torch.float32)
               for f in range(len(FACTORS))]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    features, classes = torch.from_numpy(features), torch.from_numpy(np.asarray(classes, np.int64))
    for _ in range(steps):
        rows = torch.from_numpy(rng.integers(len(features), size=batch))
        logits, target = model(features[rows]), classes[rows]
        loss = sum(F.cross_entropy(logits[:, f], target[:, f], weight=weights[f]) for f in range(len(FACTORS)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def action_following(
    engine: WorldEngine,
    n_worlds: int | None = None,
    n_steps: int = 16,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    *,
    fit_worlds: int = 64,
    fit_steps: int = 48,
    train_steps: int = 800,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Balanced accuracy of the inverse-dynamics model's reading of the action, per factor, on held-out real
    pairs ("real", the ceiling), one-step dreamed pairs ("one_step") and open-loop pairs ("open_loop") of
    `n_worlds` worlds played `n_steps` steps; fitted on `fit_worlds` other worlds of `fit_steps` steps."""
    harness = Harness(engine, captions, mouse_scale, progress)
    n_worlds = n_worlds or engine.batch_size
    pairs, classes = real_pairs(harness, fit_worlds, fit_steps, seed + SEED_BLOCK // 2)
    model = fit_inverse_dynamics(pairs, classes, steps=train_steps, seed=seed % 2**31)
    held_out, held_classes = real_pairs(harness, n_worlds, n_steps, seed)
    found = {"one_step": ([], []), "open_loop": ([], [])}
    for teacher_forced in (True, False):
        pairs_out, classes_out = found["one_step" if teacher_forced else "open_loop"]
        for pair in harness.pairs(n_worlds, n_steps, seed, exploration(0.4, harness.keys), "action following"):
            previous = pair.decode(pair.start())
            for _ in range(n_steps):
                action = pair.act()
                frames, _ = pair.play(*action)
                dreamed = pair.decode(pair.dream(*action, store=not teacher_forced))
                pairs_out.append(np.stack([previous, dreamed], 1))
                classes_out.append(action_classes(*action, harness.keys))
                previous = pair.decode(pair.observe(frames, *action)) if teacher_forced else dreamed
    result: dict[str, Any] = {"real": balanced_accuracy(model.predict(held_out), held_classes)}
    for name, (p, c) in found.items():
        result[name] = balanced_accuracy(model.predict(np.concatenate(p)), np.concatenate(c))
    result.update(fit_pairs=len(pairs), n_worlds=n_worlds, n_steps=n_steps, turn_cut=TURN_CUT,
                  class_shares={name: np.bincount(held_classes[:, f], minlength=3).tolist()
                                for f, name in enumerate(FACTORS)})
    log.info("action following (balanced accuracy, chance 1/3): real %s, one step %s, open loop %s",
             result["real"], result["one_step"], result["open_loop"])
    return result
