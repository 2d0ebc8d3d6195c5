"""Measuring a learned world against the ground-truth game (issue 5, "Quality, measured against the ground truth").

The world model and the real game (`ArenaBatch`) start from the same seed frames of held-out worlds (seeds from
`EVAL_SEED` up, far from the seeds training collections use) and get the same actions. Frame 0 is the reset
observation, appended to the model as a seed frame with zero controls; frame t is the result of action t.

* One-step PSNR (teacher forced): the model's cache holds the real frames; each generated frame is compared
  with the real frame it should be. The autoencoder's reconstruction PSNR of the same frames is the ceiling.
* Open-loop PSNR: from the seed frames the model runs on its own outputs for `horizon` steps; PSNR per step.
* Controllability: from the same start, turn left / right (mouse x = -/+ `turn`) and walk forward / back (W / S)
  for a few frames, in the model and in the game, and compare the direction the view moves in.
  Turning pans the picture: `view_shift` sums the horizontal shift `cv2.phaseCorrelate` (grey frames, Hanning
  window) finds between consecutive frames; positive means the picture moves right (the camera turns left).
  Walking zooms about the centre: `view_zoom` resamples both frames to log-polar coordinates around the image
  centre (`cv2.warpPolar`, WARP_POLAR_LOG), where a zoom is a shift along the log-radius axis, measures that
  shift with `cv2.phaseCorrelate` and sums it over consecutive frames, as a log zoom factor; positive means
  the picture expands (walking forward). Trials where the real agent was stopped by a wall are left out.
* Prompt following: frames generated from the prompt alone (no seed frame, which would give the theme away)
  are classified by `ThemeClassifier`, nearest centroid of colour statistics fitted on real frames of each
  caption. Its accuracy on other real frames is reported too: the ceiling of the test.
* Reward events: precision and recall of the reward head's orb collections against the real game's, on
  teacher-forced transitions of an orb-seeking policy; the head reads the real latents (the head alone) and
  the model's one-step latents (what the learned environment feeds it).
* Long-rollout drift: colour statistics (per-channel mean and std of each frame) of a long open-loop rollout
  against those of the real game under the same actions, as distances in units of the real frames' std.

`evaluate_world` runs all of them on a checkpoint folder and writes `world_eval.json`, `world_eval.md` and PNG
strips (real row over dreamed row).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from tqdm import tqdm

from waypoint_gym.engine import DEFAULT_KEYS, CtrlInput, WorldEngine
from waypoint_gym.envs.spaces import default_keys, default_mouse_scale, resolve_keys, to_ctrl
from waypoint_gym.training.collect import ExplorationPolicy
from waypoint_gym.worlds import all_captions
from waypoint_gym.worlds.arena import WALK_SPEED, ArenaBatch

log = logging.getLogger(__name__)

EVAL_SEED = 1_000_000  # world seeds of evaluations start here; training collections use 0, 1, 2, ...
SEED_BLOCK = 100_000  # seed distance between the metrics of one evaluation, so they play different worlds
MAX_PSNR = 100.0  # what identical images score

# Captions that differ in material, place and time of day: a colour test can tell their worlds apart.
DEFAULT_CAPTIONS = (
    "a mossy stone dungeon",
    "a sunny desert canyon at noon",
    "a snowy ice cave at night",
    "a rusty metal temple",
    "a foggy brick castle at dusk",
    "a glowing wood maze at night",
    "a dusty desert castle at dawn",
    "a mossy wood maze at noon",
)


def validation_captions(n_sets: int, seed: int) -> list[list[str]]:
    """`n_sets` sets of 8 captions drawn from the grammar without the evaluation's, for choosing settings
    without looking at the evaluation's prompts."""
    pool = [c for c in all_captions() if c not in DEFAULT_CAPTIONS]
    rng = np.random.default_rng(seed)
    return [[pool[i] for i in rng.choice(len(pool), 8, replace=False)] for _ in range(n_sets)]


# The targets of issue 5 (PSNR in dB, the rest as fractions).
TARGETS = {
    "one_step_psnr": 26.0, "open_loop_psnr": 18.0, "controllability": 0.95, "prompt_following": 0.90,
    "reward_precision": 0.8, "reward_recall": 0.8,
}

STRIP_FRAMES = 16  # frames per strip row
STRIP_WORLDS = 4  # worlds per strip


class Policy(Protocol):
    """What plays the game: the next keys [N, K] (0/1) and mouse [N, 2] from the game's batched info."""

    def act(self, info: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


PolicyFactory = Callable[[int, int], Policy]  # (num_envs, seed) -> policy


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 images [..., H, W, C], one value per image; identical images give MAX_PSNR."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"need two image arrays [..., H, W, C] of one shape, got {a.shape} and {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.mean(diff * diff, axis=(-3, -2, -1))
    floor = 255.0**2 * 10 ** (-MAX_PSNR / 10)
    return 10 * np.log10(255.0**2 / np.maximum(mse, floor))


# -----------------------------------------------------------------------------
# the model and the game, driven by the same actions


class _Dreamer:
    """The world model's rows 0..n-1 driven by the game's action arrays, with real frames in and images out."""

    def __init__(self, engine: WorldEngine, n: int, keys: Sequence[str], mouse_scale: float):
        if n > engine.batch_size:
            raise ValueError(f"{n} worlds do not fit the engine's batch_size {engine.batch_size}")
        self.engine, self.n, self.mouse_scale = engine, n, mouse_scale
        self.ids = None if n == engine.batch_size else list(range(n))
        _, self.keycodes = resolve_keys(keys, engine.config.n_buttons)
        self.ae = engine.autoencoder

    def ctrls(self, keys: np.ndarray, mouse: np.ndarray) -> list[CtrlInput]:
        pressed = np.asarray(keys) != 0
        return [to_ctrl(pressed[i], mouse[i], self.keycodes, self.mouse_scale) for i in range(self.n)]

    def start(self, prompts: Sequence[str], frames: np.ndarray | None) -> torch.Tensor | None:
        """New episodes: forget the history, set the prompts, append the seed frames (if any) -> their latents."""
        self.engine.reset(self.ids)
        if self.engine.config.prompt_conditioning:
            self.engine.set_prompt(list(prompts), self.ids)
        if frames is None:
            return None
        zeros = np.zeros((self.n, len(self.keycodes)), np.uint8), np.zeros((self.n, 2), np.float32)
        return self.observe(frames, *zeros)

    def observe(self, frames: np.ndarray, keys: np.ndarray, mouse: np.ndarray) -> torch.Tensor:
        """Append real frames [n, H, W, 3] made by this action -> their latents [n, C, h, w]."""
        with torch.inference_mode():
            latent = self.ae.encode(np.ascontiguousarray(frames)).float()
        self.engine.append_latent(latent, self.ctrls(keys, mouse), self.ids)
        return latent

    def dream(self, keys: np.ndarray, mouse: np.ndarray, store: bool = True) -> torch.Tensor:
        """Generate the next frame of every row under this action -> latents [n, C, h, w]; kept in the cache
        unless `store` is False (a one-step prediction: `observe` the real frame next)."""
        latent = self.engine.gen_latent(self.ctrls(keys, mouse), env_ids=self.ids, store=store)
        return latent[None] if latent.ndim == 3 else latent

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self.ae.decode(latent)


def _setup(engine: WorldEngine, captions: Sequence[str] | None, mouse_scale: float | None):
    """Checks shared by the metrics -> (key names, frame size, captions, mouse scale)."""
    if engine.autoencoder is None:
        raise ValueError("the checkpoint has no autoencoder (ae_uri): it cannot be compared with game frames")
    height, width = engine.autoencoder.output_size
    if height != width or tuple(engine.autoencoder.encoder.config.input_size) != (height, width):
        raise ValueError(f"need an autoencoder of square images in and out, got {engine.autoencoder.output_size}")
    captions = list(DEFAULT_CAPTIONS if captions is None else captions)
    if not captions or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"captions must be a non-empty sequence of str, got {captions!r}")
    scale = default_mouse_scale(engine.config) if mouse_scale is None else float(mouse_scale)
    return default_keys(engine.config), int(height), captions, scale


def _exploration(seek_prob: float, keys: Sequence[str]) -> PolicyFactory:
    return lambda num_envs, seed: ExplorationPolicy(num_envs, keys, seed, seek_prob=seek_prob)


def _chunks(total: int, size: int) -> list[range]:
    return [range(first, min(first + size, total)) for first in range(0, total, size)]


def _worlds(chunk: range, seed: int, captions: list[str], size: int, keys: Sequence[str], steps: int):
    """A game of the chunk's worlds (world i: seed + i, caption i mod len) -> (game, frames, info, prompts)."""
    prompts = [captions[i % len(captions)] for i in chunk]
    game = ArenaBatch(len(chunk), size=size, keys=keys, max_episode_steps=steps + 1)
    frames, info = game.reset(seed=[seed + i for i in chunk], prompt=prompts)
    return game, frames.copy(), info, prompts


def _samples(real: list[np.ndarray], dreamed: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-step frame batches [n, H, W, 3] -> strip samples {"real", "dreamed"} [worlds, T, H, W, 3]."""
    pick = lambda frames: np.stack(frames[:STRIP_FRAMES], 1)[:STRIP_WORLDS]
    return {"real": pick(real), "dreamed": pick(dreamed)}


# -----------------------------------------------------------------------------
# PSNR


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
    keys, size, captions, scale = _setup(engine, captions, mouse_scale)
    n_worlds = n_worlds or engine.batch_size
    policy = policy or _exploration(0.4, keys)
    scores, ceiling, samples = [], [], None
    chunks = _chunks(n_worlds, engine.batch_size)
    bar = tqdm(total=len(chunks) * n_steps, desc="one-step PSNR", unit="step", disable=not progress)
    for chunk in chunks:
        game, frames, info, prompts = _worlds(chunk, seed, captions, size, keys, n_steps)
        dreamer, player = _Dreamer(engine, len(chunk), keys, scale), policy(len(chunk), seed + chunk.start)
        latent = dreamer.start(prompts, frames)
        real, dreamed, step_scores, step_ceiling = [frames], [dreamer.decode(latent)], [], []
        for _ in range(n_steps):
            action = player.act(info)
            frames, _, _, _, info = game.step(*action)
            frames = frames.copy()
            guess = dreamer.decode(dreamer.dream(*action, store=False))
            latent = dreamer.observe(frames, *action)
            step_scores.append(psnr(guess, frames))
            step_ceiling.append(psnr(dreamer.decode(latent), frames))
            real.append(frames)
            dreamed.append(guess)
            bar.update()
        scores.append(np.stack(step_scores, 1))  # [n, n_steps]
        ceiling.append(np.stack(step_ceiling, 1))
        samples = samples or _samples(real, dreamed)
    bar.close()
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
    keys, size, captions, scale = _setup(engine, captions, mouse_scale)
    n_worlds = n_worlds or engine.batch_size
    policy = policy or _exploration(0.4, keys)
    scores, samples = [], None
    chunks = _chunks(n_worlds, engine.batch_size)
    steps = n_seed_frames - 1 + horizon
    bar = tqdm(total=len(chunks) * steps, desc="open-loop PSNR", unit="step", disable=not progress)
    for chunk in chunks:
        game, frames, info, prompts = _worlds(chunk, seed, captions, size, keys, steps)
        dreamer, player = _Dreamer(engine, len(chunk), keys, scale), policy(len(chunk), seed + chunk.start)
        latent = dreamer.start(prompts, frames)
        for _ in range(n_seed_frames - 1):
            action = player.act(info)
            frames, _, _, _, info = game.step(*action)
            frames = frames.copy()
            latent = dreamer.observe(frames, *action)
            bar.update()
        real, dreamed, step_scores = [frames], [dreamer.decode(latent)], []
        for _ in range(horizon):
            action = player.act(info)
            frames, _, _, _, info = game.step(*action)
            frames = frames.copy()
            guess = dreamer.decode(dreamer.dream(*action))
            step_scores.append(psnr(guess, frames))
            real.append(frames)
            dreamed.append(guess)
            bar.update()
        scores.append(np.stack(step_scores, 1))  # [n, horizon]
        samples = samples or _samples(real, dreamed)
    bar.close()
    per_step = np.concatenate(scores).mean(0)
    log.info("open-loop PSNR %.2f dB over %d steps, %.2f dB at the horizon", per_step.mean(), horizon, per_step[-1])
    return {
        "psnr": float(per_step.mean()), "psnr_at_horizon": float(per_step[-1]), "per_step": per_step.tolist(),
        "n_worlds": n_worlds, "horizon": horizon, "n_seed_frames": n_seed_frames, "samples": samples,
    }


# -----------------------------------------------------------------------------
# controllability


def _grey(frames: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] RGB -> float32 [..., H, W] luma."""
    return (np.asarray(frames, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def _check_clips(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.shape[1] < 2:
        raise ValueError(f"need clips [N, T >= 2, H, W, 3], got shape {frames.shape}")
    return frames


def view_shift(frames: np.ndarray) -> np.ndarray:
    """Horizontal motion of the picture in clips [N, T, H, W, 3], pixels summed over consecutive frames -> [N].

    Positive: the picture moves right (the camera turns left). Phase correlation of grey frames under a
    Hanning window (`cv2.phaseCorrelate`).
    """
    grey = _grey(_check_clips(frames))  # [N, T, H, W]
    n, t, h, w = grey.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    shift = np.zeros(n)
    for i in range(n):
        for k in range(t - 1):
            (dx, _), _ = cv2.phaseCorrelate(grey[i, k], grey[i, k + 1], window)
            shift[i] += dx
    return shift


def view_zoom(frames: np.ndarray) -> np.ndarray:
    """Zoom of the picture about its centre in clips [N, T, H, W, 3], as a log factor summed over frames -> [N].

    Positive: the picture expands (walking forward). Frames are resampled to log-polar coordinates around the
    centre (`cv2.warpPolar`), where a zoom by s shifts the picture by ln(s) * W / ln(R) along the radius axis;
    `cv2.phaseCorrelate` measures that shift.
    """
    grey = _grey(_check_clips(frames))  # [N, T, H, W]
    n, t, h, w = grey.shape
    centre, radius = (w / 2, h / 2), min(h, w) / 2
    polar = np.stack([cv2.warpPolar(g, (w, h), centre, radius, cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR)
                      for g in grey.reshape(-1, h, w)]).reshape(n, t, h, w)  # columns: log radius
    zoom = np.zeros(n)
    for i in range(n):
        for k in range(t - 1):
            (dx, _), _ = cv2.phaseCorrelate(polar[i, k], polar[i, k + 1])
            zoom[i] += dx * math.log(radius) / w
    return zoom


def _agreement(real: np.ndarray, dreamed: np.ndarray) -> float | None:
    return float(np.mean(np.sign(real) == np.sign(dreamed))) if len(real) else None


def controllability(
    engine: WorldEngine,
    n_trials: int = 32,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    *,
    n_frames: int = 4,
    turn: float = 0.5,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """How often the dreamed view moves the way the real one does, from the same start under the same action.

    Each of `n_trials` worlds is played `n_frames` steps four times: turning left and right (mouse x = -/+
    `turn`) and walking forward and back (W, S). The picture's motion is `view_shift` for turns and `view_zoom`
    for walking; a trial agrees when its dreamed motion has the sign of the real one. Walks the real agent
    could not finish (a wall in the way) are left out. Returns {"turn": {...}, "move": {...}, "agreement"
    (both pooled), "samples"}.
    """
    keys, size, captions, scale = _setup(engine, captions, mouse_scale)
    if not 0 < turn <= 1:
        raise ValueError(f"turn must lie in (0, 1], got {turn}")
    actions = {"left": (None, -turn), "right": (None, turn)}
    actions.update({name: (key, 0.0) for name, key in (("forward", "W"), ("back", "S")) if key in keys})
    real = {name: [] for name in actions}
    dreamed = {name: [] for name in actions}
    moved = {name: [] for name in actions}
    samples = {"real": [], "dreamed": []}
    chunks = _chunks(n_trials, engine.batch_size)
    bar = tqdm(total=len(chunks) * len(actions) * n_frames, desc="controllability", unit="step",
               disable=not progress)
    for chunk in chunks:
        n = len(chunk)
        dreamer = _Dreamer(engine, n, keys, scale)
        for name, (key, mouse_x) in actions.items():
            game, frames, info, prompts = _worlds(chunk, seed, captions, size, keys, n_frames)
            start = info["position"].copy()
            pressed = np.zeros((n, len(keys)), np.uint8)
            if key is not None:
                pressed[:, keys.index(key)] = 1
            mouse = np.zeros((n, 2), np.float32)
            mouse[:, 0] = mouse_x
            real_clip, dream_clip = [frames], [dreamer.decode(dreamer.start(prompts, frames))]
            for _ in range(n_frames):
                frames, _, _, _, info = game.step(pressed, mouse)
                real_clip.append(frames.copy())
                dream_clip.append(dreamer.decode(dreamer.dream(pressed, mouse)))
                bar.update()
            real_clip, dream_clip = np.stack(real_clip, 1), np.stack(dream_clip, 1)  # [n, T, H, W, 3]
            measure = view_shift if key is None else view_zoom
            real[name].append(measure(real_clip))
            dreamed[name].append(measure(dream_clip))
            moved[name].append(np.linalg.norm(info["position"] - start, axis=1))
            if chunk.start == 0:
                samples["real"].append(real_clip[0])
                samples["dreamed"].append(dream_clip[0])
    bar.close()
    real = {name: np.concatenate(v) for name, v in real.items()}
    dreamed = {name: np.concatenate(v) for name, v in dreamed.items()}

    def summary(names: Sequence[str], expected: Sequence[float], unit: str, valid: dict[str, np.ndarray]):
        real_all = np.concatenate([real[k][valid[k]] for k in names])
        dreamed_all = np.concatenate([dreamed[k][valid[k]] for k in names])
        as_expected = np.concatenate([np.sign(real[k][valid[k]]) == e for k, e in zip(names, expected)])
        return {
            "agreement": _agreement(real_all, dreamed_all), "n_trials": len(real_all),
            "real_as_expected": float(as_expected.mean()) if len(as_expected) else None,
            unit: {k: {"real": float(real[k][valid[k]].mean()) if valid[k].any() else None,
                       "dreamed": float(dreamed[k][valid[k]].mean()) if valid[k].any() else None} for k in names},
        }, real_all, dreamed_all

    everyone = {name: np.ones(n_trials, bool) for name in actions}
    turn_result, real_pooled, dreamed_pooled = summary(("left", "right"), (1, -1), "shift_px", everyone)
    result: dict[str, Any] = {"turn": turn_result, "move": None, "n_frames": n_frames, "turn_mouse": turn}
    if "forward" in actions and "back" in actions:
        walked = {name: np.concatenate(moved[name]) >= 0.9 * n_frames * WALK_SPEED for name in ("forward", "back")}
        move_result, real_move, dreamed_move = summary(("forward", "back"), (1, -1), "log_zoom", walked)
        result["move"] = move_result
        real_pooled = np.concatenate([real_pooled, real_move])
        dreamed_pooled = np.concatenate([dreamed_pooled, dreamed_move])
    result["agreement"] = _agreement(real_pooled, dreamed_pooled)
    result["samples"] = {k: np.stack(v) for k, v in samples.items()}  # one row pair per action
    log.info("controllability: turn %.3f, move %s", turn_result["agreement"],
             result["move"] and result["move"]["agreement"])
    return result


# -----------------------------------------------------------------------------
# prompt following


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
    keys, size, captions, scale = _setup(engine, captions, mouse_scale)
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
    chunks = _chunks(len(labels), engine.batch_size)
    bar = tqdm(total=len(chunks) * n_frames, desc="prompt following", unit="step", disable=not progress)
    for chunk in chunks:
        n = len(chunk)
        dreamer = _Dreamer(engine, n, keys, scale)
        dreamer.start([captions[labels[i]] for i in chunk], None)
        policy = ExplorationPolicy(n, keys, seed + chunk.start)
        action = np.zeros((n, len(keys)), np.uint8), np.zeros((n, 2), np.float32)
        clip = []
        for _ in range(n_frames):
            clip.append(dreamer.decode(dreamer.dream(*action)))
            action = policy.act(None)
            bar.update()
        clip = np.stack(clip, 1)  # [n, T, H, W, 3]
        predicted.append(classifier.predict(clip))
        predicted_by_means.append(by_means.predict(clip))
        for j, i in enumerate(chunk):
            first_clips.setdefault(int(labels[i]), clip[j])
    bar.close()
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


# -----------------------------------------------------------------------------
# reward events


def _precision_recall(predicted: np.ndarray, target: np.ndarray) -> dict[str, Any]:
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
    keys, size, captions, scale = _setup(engine, captions, mouse_scale)
    head_keys = [k.upper() for k in (reward_head.config.keys or keys)]
    if len(head_keys) != reward_head.config.n_keys or not set(head_keys) <= set(keys):
        raise ValueError(f"the reward head reads keys {head_keys}, the model's keys are {list(keys)}")
    columns = [keys.index(k) for k in head_keys]
    n_worlds = n_worlds or engine.batch_size
    target, on_real, on_dreamed = [], [], []
    chunks = _chunks(n_worlds, engine.batch_size)
    bar = tqdm(total=len(chunks) * n_steps, desc="reward events", unit="step", disable=not progress)
    for chunk in chunks:
        game, frames, info, prompts = _worlds(chunk, seed, captions, size, keys, n_steps)
        dreamer = _Dreamer(engine, len(chunk), keys, scale)
        player = ExplorationPolicy(len(chunk), keys, seed + chunk.start, seek_prob=1.0)
        previous = dreamer.start(prompts, frames)
        for _ in range(n_steps):
            pressed, mouse = player.act(info)
            frames, reward, _, _, info = game.step(pressed, mouse)
            guess = dreamer.dream(pressed, mouse, store=False)
            latent = dreamer.observe(frames.copy(), pressed, mouse)
            head_keys_in = torch.from_numpy(pressed[:, columns].astype(np.float32))
            head_mouse = torch.from_numpy(np.asarray(mouse, np.float32))
            on_real.append(reward_head.predict(previous, latent, head_keys_in, head_mouse)[0].cpu().numpy() > 0)
            on_dreamed.append(reward_head.predict(previous, guess, head_keys_in, head_mouse)[0].cpu().numpy() > 0)
            target.append(np.asarray(reward) > 0)
            previous = latent
            bar.update()
    bar.close()
    target, on_real, on_dreamed = (np.concatenate(v) for v in (target, on_real, on_dreamed))
    result = {"real_latents": _precision_recall(on_real, target),
              "dreamed_latents": _precision_recall(on_dreamed, target),
              "transitions": len(target), "n_worlds": n_worlds, "n_steps": n_steps}
    log.info("reward events: %d in %d transitions; head on real latents %s, on dreamed latents %s",
             int(target.sum()), len(target), result["real_latents"], result["dreamed_latents"])
    return result


# -----------------------------------------------------------------------------
# long rollouts

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
    keys, size, captions, scale = _setup(engine, captions, mouse_scale)
    n_worlds = n_worlds or engine.batch_size
    policy = policy or _exploration(0.4, keys)
    every = max(1, n_steps // (STRIP_FRAMES - 1))
    real_stats, dream_stats, samples = [], [], None
    chunks = _chunks(n_worlds, engine.batch_size)
    bar = tqdm(total=len(chunks) * n_steps, desc="long rollout", unit="step", disable=not progress)
    for chunk in chunks:
        game, frames, info, prompts = _worlds(chunk, seed, captions, size, keys, n_steps)
        dreamer, player = _Dreamer(engine, len(chunk), keys, scale), policy(len(chunk), seed + chunk.start)
        guess = dreamer.decode(dreamer.start(prompts, frames))
        real, dreamed, shown_real, shown_dreamed = [colour_stats(frames)], [colour_stats(guess)], [frames], [guess]
        for t in range(1, n_steps + 1):
            action = player.act(info)
            frames, _, _, _, info = game.step(*action)
            guess = dreamer.decode(dreamer.dream(*action))
            real.append(colour_stats(frames))
            dreamed.append(colour_stats(guess))
            if t % every == 0:
                shown_real.append(frames.copy())
                shown_dreamed.append(guess)
            bar.update()
        real_stats.append(np.stack(real, 1))  # [n, T, 6]
        dream_stats.append(np.stack(dreamed, 1))
        samples = samples or _samples(shown_real, shown_dreamed)
    bar.close()
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


# -----------------------------------------------------------------------------
# reports


def save_strips(path: str | os.PathLike, real: np.ndarray, dreamed: np.ndarray, scale: int = 2) -> Path:
    """Write a PNG of real frames over dreamed frames: [T, H, W, 3] each, or [R, T, H, W, 3] for R row pairs."""
    real, dreamed = np.asarray(real), np.asarray(dreamed)
    if real.shape != dreamed.shape or real.ndim not in (4, 5) or real.shape[-1] != 3 or real.dtype != np.uint8:
        raise ValueError(f"need uint8 frames [(R,) T, H, W, 3] of one shape, got {real.shape} and {dreamed.shape}")
    if real.ndim == 4:
        real, dreamed = real[None], dreamed[None]
    gap = 2
    _, t, h, w, _ = real.shape

    def row(frames: np.ndarray) -> np.ndarray:
        out = np.full((h, t * (w + gap) - gap, 3), 255, np.uint8)
        for k, frame in enumerate(frames):
            out[:, k * (w + gap):k * (w + gap) + w] = frame
        return out

    blocks = []
    for real_row, dream_row in zip(real, dreamed):
        blocks += [row(real_row), np.full((gap, t * (w + gap) - gap, 3), 255, np.uint8), row(dream_row),
                   np.full((3 * gap, t * (w + gap) - gap, 3), 255, np.uint8)]
    image = np.concatenate(blocks[:-1])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def _plain(value: Any) -> Any:
    """Numbers, lists and dicts for JSON: numpy scalars and arrays become Python ones, NaN and inf None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    return value


# Sizes of a full evaluation and of a quick one (a smoke test of the whole pipeline).
_FULL = dict(one_step=64, horizon=16, open_loop_rounds=2, control_trials=32, control_frames=4, prompt_trials=8,
             prompt_frames=8, fit_worlds=8, reward_steps=300, drift_steps=1000, drift_window=100, max_worlds=None,
             max_captions=None)
_QUICK = dict(one_step=6, horizon=8, open_loop_rounds=1, control_trials=4, control_frames=3, prompt_trials=2,
              prompt_frames=3, fit_worlds=2, reward_steps=12, drift_steps=24, drift_window=8, max_worlds=4,
              max_captions=4)


def evaluate_world(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    n_worlds: int = 16,
    seed: int = EVAL_SEED,
    held_out_captions: Sequence[str] | None = None,
    quick: bool = False,
    *,
    n_denoise_steps: int | None = None,
    prompt_guidance: float | None = None,
    mouse_scale: float | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Measure a checkpoint against the real game on held-out worlds; write the report, strips and a summary.

    Writes `out_dir/world_eval.json` (the returned report), `out_dir/world_eval.md` (a table against the
    targets of issue 5) and `out_dir/strip_<metric>.png`. `held_out_captions` are the prompts of the worlds
    (default `DEFAULT_CAPTIONS`); world seeds start at `seed` (at least `EVAL_SEED`, so they are not training
    worlds). A full run plays 64 teacher-forced steps, 2 * n_worlds open-loop rollouts of 16 steps, 32
    controllability starts under 4 actions, 8 prompt trials per caption, 300 orb-seeking steps and 1,000-step
    rollouts; `quick` runs every metric on a few worlds and steps (a smoke test, not a measurement). Metrics the
    checkpoint cannot take part in (no prompt conditioning, no `reward_head/`) are skipped with a note.
    """
    if seed < EVAL_SEED:
        raise ValueError(f"evaluation seeds start at {EVAL_SEED} (below are training worlds), got seed={seed}")
    if n_worlds < 1:
        raise ValueError(f"n_worlds must be positive, got {n_worlds}")
    size = _QUICK if quick else _FULL
    n_worlds = min(n_worlds, size["max_worlds"] or n_worlds)
    captions = list(DEFAULT_CAPTIONS if held_out_captions is None else held_out_captions)
    captions = captions[: size["max_captions"] or len(captions)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    engine = WorldEngine(checkpoint, device=device, batch_size=n_worlds, n_denoise_steps=n_denoise_steps, seed=seed,
                         prompt_guidance=prompt_guidance)
    mouse_scale = _setup(engine, captions, mouse_scale)[3]  # also checks the autoencoder before any work
    common = dict(mouse_scale=mouse_scale, progress=progress)
    metrics: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    notes: list[str] = []
    if quick:
        notes.append("quick run: a few worlds and steps, a smoke test rather than a measurement")

    def run(name: str, fn: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        began = time.perf_counter()
        result = fn(engine, *args, **kwargs, **common)
        samples[name] = result.pop("samples", None)
        metrics[name] = {**result, "seconds": round(time.perf_counter() - began, 2)}

    run("one_step", one_step_psnr, n_worlds, size["one_step"], seed, captions)
    run("open_loop", open_loop_psnr, size["horizon"], size["open_loop_rounds"] * n_worlds, seed + SEED_BLOCK, captions)
    run("controllability", controllability, size["control_trials"], seed + 2 * SEED_BLOCK, captions,
        n_frames=size["control_frames"])
    if engine.config.prompt_conditioning:
        run("prompt_following", prompt_following, captions, size["prompt_trials"], seed + 3 * SEED_BLOCK,
            n_frames=size["prompt_frames"], fit_worlds=size["fit_worlds"])
    else:
        notes.append("prompt following skipped: the checkpoint has no prompt conditioning")
    head = _reward_head(engine, notes)
    if head is not None:
        run("reward_events", reward_events, head, n_worlds, size["reward_steps"], seed + 4 * SEED_BLOCK, captions)
    run("long_rollout", long_rollout_drift, size["drift_steps"], n_worlds, seed + 5 * SEED_BLOCK, captions,
        window=size["drift_window"])

    strips = {}
    for name, sample in samples.items():
        if sample is not None:
            strips[name] = save_strips(out_dir / f"strip_{name}.png", sample["real"], sample["dreamed"]).name
    report = {
        "checkpoint": str(checkpoint), "quick": quick, "seed": seed, "n_worlds": n_worlds, "captions": captions,
        "n_denoise_steps": engine.n_denoise_steps, "prompt_guidance": engine.prompt_guidance,
        "mouse_scale": mouse_scale,
        "metrics": metrics, "targets": TARGETS, "passed": _passed(metrics), "notes": notes, "strips": strips,
        "seconds": round(time.perf_counter() - started, 1),
    }
    report = _plain(report)
    (out_dir / "world_eval.json").write_text(json.dumps(report, indent=1))
    (out_dir / "world_eval.md").write_text(_markdown(report))
    log.info("world evaluation written to %s", out_dir)
    return report


def _reward_head(engine: WorldEngine, notes: list[str]) -> Any:
    """The checkpoint's `reward_head/`, or None with a note saying why not."""
    folder = None if engine.folder is None else Path(engine.folder) / "reward_head"
    if folder is None or not folder.is_dir():
        notes.append("reward events skipped: the checkpoint has no reward_head/")
        return None
    try:
        from waypoint_gym.training.reward_head import RewardHead
    except ImportError as error:
        notes.append(f"reward events skipped: the reward head module cannot be imported ({error})")
        return None
    return RewardHead.from_pretrained(folder, device=engine.device)


def _passed(metrics: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of issue 5 -> met (True / False), or None where it was not measured."""
    def at_least(value: Any, target: float) -> bool | None:
        return None if value is None else bool(value >= target)

    get = lambda *path: _lookup(metrics, path)
    control = metrics.get("controllability", {})
    move = control.get("move") or {}
    return {
        "one_step_psnr": at_least(get("one_step", "psnr"), TARGETS["one_step_psnr"]),
        "open_loop_psnr": at_least(get("open_loop", "psnr"), TARGETS["open_loop_psnr"]),
        "open_loop_psnr_at_horizon": at_least(get("open_loop", "psnr_at_horizon"), TARGETS["open_loop_psnr"]),
        "controllability_turn": at_least(get("controllability", "turn", "agreement"), TARGETS["controllability"]),
        "controllability_move": at_least(move.get("agreement"), TARGETS["controllability"]),
        "prompt_following": at_least(get("prompt_following", "accuracy"), TARGETS["prompt_following"]),
        "reward_precision": at_least(get("reward_events", "dreamed_latents", "precision"),
                                     TARGETS["reward_precision"]),
        "reward_recall": at_least(get("reward_events", "dreamed_latents", "recall"), TARGETS["reward_recall"]),
    }


def _lookup(tree: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or tree.get(key) is None:
            return None
        tree = tree[key]
    return tree


def _markdown(report: dict[str, Any]) -> str:
    """The summary table of `world_eval.md`."""
    m = report["metrics"]
    get = lambda *path: _lookup(m, path)

    def value(x: Any, unit: str = "", percent: bool = False) -> str:
        if x is None:
            return "n/a"
        if percent:
            return f"{100 * x:.1f}%"
        return f"{x:.2f}{unit}" if unit else f"{x:.3g}"

    def met(name: str) -> str:
        return {True: "yes", False: "**no**", None: "-"}[report["passed"].get(name)]

    horizon = get("open_loop", "horizon")
    rows = [
        ("One-step (teacher-forced) PSNR", value(get("one_step", "psnr"), " dB"),
         f">= {TARGETS['one_step_psnr']:g} dB", met("one_step_psnr")),
        (f"{horizon}-step open-loop PSNR, mean over the steps", value(get("open_loop", "psnr"), " dB"),
         f">= {TARGETS['open_loop_psnr']:g} dB", met("open_loop_psnr")),
        (f"Open-loop PSNR at step {horizon}", value(get("open_loop", "psnr_at_horizon"), " dB"),
         f">= {TARGETS['open_loop_psnr']:g} dB", met("open_loop_psnr_at_horizon")),
        ("Controllability: turn left / right", value(get("controllability", "turn", "agreement"), percent=True),
         f">= {TARGETS['controllability']:.0%}", met("controllability_turn")),
        ("Controllability: forward / back", value(get("controllability", "move", "agreement"), percent=True),
         f">= {TARGETS['controllability']:.0%}", met("controllability_move")),
        ("Prompt following", value(get("prompt_following", "accuracy"), percent=True),
         f">= {TARGETS['prompt_following']:.0%}", met("prompt_following")),
        ("Reward events: precision (head on one-step latents)",
         value(get("reward_events", "dreamed_latents", "precision")), f">= {TARGETS['reward_precision']:g}",
         met("reward_precision")),
        ("Reward events: recall (head on one-step latents)",
         value(get("reward_events", "dreamed_latents", "recall")), f">= {TARGETS['reward_recall']:g}",
         met("reward_recall")),
        (f"Colour drift over the last {get('long_rollout', 'window')} of {get('long_rollout', 'n_steps')} frames "
         "(real std)", value(get("long_rollout", "drift")),
         f"report (real frames: {value(get('long_rollout', 'real_drift'))})", "-"),
    ]
    lines = [
        "# World model against the ground truth", "",
        f"Checkpoint `{report['checkpoint']}`, {report['n_worlds']} worlds at a time, seeds from {report['seed']}, "
        f"{report['n_denoise_steps']} denoising steps, prompt guidance {report.get('prompt_guidance', 1.0)}, "
        f"{report['seconds']} s.", "",
        "| Metric | Value | Target | Met |", "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows), "",
        "References: autoencoder reconstruction PSNR (the one-step ceiling) "
        f"{value(get('one_step', 'autoencoder_psnr'), ' dB')}; theme classifier on real frames "
        f"{value(get('prompt_following', 'classifier_accuracy_real'), percent=True)}; prompt following judged on "
        f"the colour means alone (a diagnostic, not the target's test) "
        f"{value(get('prompt_following', 'accuracy_colour_means'), percent=True)} (real frames "
        f"{value(get('prompt_following', 'classifier_accuracy_real_colour_means'), percent=True)}); "
        "reward head on real latents "
        f"precision {value(get('reward_events', 'real_latents', 'precision'))}, "
        f"recall {value(get('reward_events', 'real_latents', 'recall'))}.", "",
        "Captions: " + "; ".join(f'"{c}"' for c in report["captions"]) + ".",
    ]
    if report["notes"]:
        lines += ["", "Notes:", *(f"- {note}" for note in report["notes"])]
    if report["strips"]:
        lines += ["", "Strips (real row over dreamed row; controllability: left, right, forward, back):",
                  *(f"- `{f}`" for f in report["strips"].values())]
    return "\n".join(lines) + "\n"
