"""Prompt following: are frames generated from a caption alone in that caption's world?

Frames generated from the prompt alone (no seed frame, which would give the theme away) are classified by
`ThemeClassifier`, nearest centroid of colour statistics fitted on real frames of each caption. Its accuracy on
other real frames is reported too: the ceiling of the test.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from waypoint_gym.engine import DEFAULT_KEYS, WorldEngine
from waypoint_gym.training.collect import ExplorationPolicy
from waypoint_gym.worlds.arena import ArenaBatch

from .harness import EVAL_SEED, SEED_BLOCK, STRIP_FRAMES, Harness

log = logging.getLogger(__name__)


class ThemeClassifier:
    """Nearest centroid of colour statistics: which caption's world do clips of frames come from?

    A clip's features are the Lab mean and std of each channel in the top and bottom half of its frames,
    averaged over the frames (12 numbers; sky or ceiling above, floor below). Distances are measured in units
    of the pooled within-caption std of each feature. With `means_only` it reads the 6 means alone: the
    theme's colours without their contrast, which a blurred frame loses.
    """

    MEANS = [0, 1, 2, 6, 7, 8]  # the Lab means of the top and the bottom half among `features`

    def __init__(self, captions: Sequence[str], means_only: bool = False):
        self.captions = list(captions)
        self.means_only = means_only
        self.centroids: np.ndarray | None = None  # [C, F]
        self.scale: np.ndarray | None = None  # [F]

    @staticmethod
    def features(frames: np.ndarray) -> np.ndarray:
        """Clips uint8 [N, T, H, W, 3] (RGB) -> features [N, 12]."""
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"need uint8 clips [N, T, H, W, 3], got {frames.dtype} {frames.shape}")
        n, t, h, w, _ = frames.shape
        tall = np.ascontiguousarray(frames).reshape(n * t * h, w, 3)  # one tall image: one conversion call
        lab = cv2.cvtColor(tall, cv2.COLOR_RGB2LAB).reshape(n, t, h, w, 3).astype(np.float32)
        parts = []
        for half in (lab[:, :, : h // 2], lab[:, :, h // 2:]):
            parts += [half.mean(axis=(2, 3)), half.std(axis=(2, 3))]  # [N, T, 3] each
        return np.concatenate(parts, axis=-1).mean(axis=1)  # [N, 12]

    def _features(self, frames: np.ndarray) -> np.ndarray:
        feats = self.features(frames)
        return feats[:, self.MEANS] if self.means_only else feats

    def fit(self, frames: np.ndarray, labels: np.ndarray) -> ThemeClassifier:
        """Fit on clips [N, T, H, W, 3] of known captions (labels [N], indices into `captions`)."""
        feats, labels = self._features(frames), np.asarray(labels)
        missing = sorted(set(range(len(self.captions))) - set(labels.tolist()))
        if missing:
            raise ValueError(f"no clips of captions {[self.captions[i] for i in missing]}")
        self.centroids = np.stack([feats[labels == c].mean(0) for c in range(len(self.captions))])
        self.scale = np.sqrt(np.mean((feats - self.centroids[labels]) ** 2, axis=0)) + 1.0
        return self

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Clips [N, T, H, W, 3] -> caption indices [N]."""
        if self.centroids is None:
            raise RuntimeError("fit the classifier first")
        feats = self._features(frames)
        distance = (((feats[:, None] - self.centroids[None]) / self.scale) ** 2).sum(-1)  # [N, C]
        return distance.argmin(1)


def theme_clips(
    captions: Sequence[str],
    per_caption: int,
    seed: int,
    n_frames: int = 8,
    size: int = 64,
    keys: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Real clips of each caption: worlds `seed + i` played by `ExplorationPolicy` from their reset frame.

    -> (frames uint8 [C * per_caption, n_frames, size, size, 3], caption indices [C * per_caption]).
    """
    keys = tuple(keys or DEFAULT_KEYS)
    labels = np.repeat(np.arange(len(captions)), per_caption)
    game = ArenaBatch(len(labels), size=size, keys=keys, max_episode_steps=n_frames + 1)
    frames, info = game.reset(seed=seed, prompt=[captions[c] for c in labels])
    policy = ExplorationPolicy(len(labels), keys, seed)
    clips = [frames.copy()]
    for _ in range(n_frames - 1):
        frames, _, _, _, info = game.step(*policy.act(info))
        clips.append(frames.copy())
    return np.stack(clips, 1), labels


def prompt_following(
    engine: WorldEngine,
    captions: Sequence[str] | None = None,
    trials_per_caption: int = 8,
    seed: int = EVAL_SEED,
    *,
    n_frames: int = 8,
    fit_worlds: int = 8,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """How often frames generated from a caption alone are classified as that caption's world.

    Each trial starts from an empty history (no seed frame) under its caption and generates `n_frames` frames,
    the first with zero controls and the rest under `ExplorationPolicy` actions. A `ThemeClassifier` fitted on
    `fit_worlds` real worlds per caption classifies the clip; its accuracy on as many other real worlds is the
    ceiling. The same classifier on the colour means alone gives a diagnostic, `accuracy_colour_means`: how
    often the clip has its theme's colours, whatever their contrast. Returns {"accuracy",
    "classifier_accuracy_real", "accuracy_colour_means", "classifier_accuracy_real_colour_means",
    "per_caption", "confusion", "captions", ...}.
    """
    if not engine.config.prompt_conditioning:
        raise ValueError("this checkpoint has no prompt conditioning: there is no prompt to follow")
    harness = Harness(engine, captions, mouse_scale, progress)
    keys, size, captions, world = harness.keys, harness.size, harness.captions, harness.world
    if len(captions) < 2:
        raise ValueError("prompt following needs at least two captions to choose between")
    real_fit, labels_fit = theme_clips(captions, fit_worlds, seed, n_frames, size, keys)
    classifier = ThemeClassifier(captions).fit(real_fit, labels_fit)
    by_means = ThemeClassifier(captions, means_only=True).fit(real_fit, labels_fit)
    real_check, labels_check = theme_clips(captions, fit_worlds, seed + SEED_BLOCK // 2, n_frames, size, keys)
    ceiling = float(np.mean(classifier.predict(real_check) == labels_check))
    ceiling_means = float(np.mean(by_means.predict(real_check) == labels_check))

    labels = np.repeat(np.arange(len(captions)), trials_per_caption)
    predicted, predicted_by_means, first_clips = [], [], {}
    chunks = harness.chunks(len(labels))
    with harness.bar(len(chunks) * n_frames, "prompt following") as bar:
        for chunk in chunks:
            n = len(chunk)
            rows = list(range(n))
            world.begin(rows, [captions[labels[i]] for i in chunk])  # an empty history: the prompt alone
            policy = ExplorationPolicy(n, keys, seed + chunk.start)
            action = np.zeros((n, len(keys)), np.uint8), np.zeros((n, 2), np.float32)
            clip = []
            for _ in range(n_frames):
                clip.append(world.decode(world.dream(rows, *action)))
                action = policy.act(None)
                bar.update()
            clip = np.stack(clip, 1)  # [n, T, H, W, 3]
            predicted.append(classifier.predict(clip))
            predicted_by_means.append(by_means.predict(clip))
            for j, i in enumerate(chunk):
                first_clips.setdefault(int(labels[i]), clip[j])
    predicted = np.concatenate(predicted)
    confusion = np.zeros((len(captions), len(captions)), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    accuracy = float(np.mean(predicted == labels))
    accuracy_means = float(np.mean(np.concatenate(predicted_by_means) == labels))
    log.info("prompt following %.3f (the classifier scores %.3f on real frames)", accuracy, ceiling)
    shown = sorted(first_clips)[:STRIP_FRAMES]
    real_rows = [real_check[np.flatnonzero(labels_check == c)[0]] for c in shown]
    return {
        "accuracy": accuracy, "classifier_accuracy_real": ceiling, "accuracy_colour_means": accuracy_means,
        "classifier_accuracy_real_colour_means": ceiling_means, "captions": captions,
        "per_caption": {captions[c]: float(confusion[c, c] / confusion[c].sum()) for c in range(len(captions))},
        "confusion": confusion.tolist(), "trials": len(labels), "n_frames": n_frames,
        "samples": {"real": np.stack(real_rows), "dreamed": np.stack([first_clips[c] for c in shown])},
    }
