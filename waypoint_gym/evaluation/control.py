"""Controllability: does the dreamed view move the way the real one does under the same action?

From the same start, turn left / right (mouse x = -/+ `turn`) and walk forward / back (W / S) for a few frames,
in the model and in the game, and compare the direction the view moves in. Turning pans the picture:
`view_shift` sums the horizontal shift `cv2.phaseCorrelate` (grey frames, Hanning window) finds between
consecutive frames; positive means the picture moves right (the camera turns left). Walking zooms about the
centre: `view_zoom` resamples both frames to log-polar coordinates around the image centre (`cv2.warpPolar`,
WARP_POLAR_LOG), where a zoom is a shift along the log-radius axis, measures that shift with
`cv2.phaseCorrelate` and sums it over consecutive frames, as a log zoom factor; positive means the picture
expands (walking forward). Trials where the real agent was stopped by a wall are left out. The same motion
of the real frames through the autoencoder is the ceiling: a world whose latents were the real ones would
agree that often.

Resolution: phase correlation weighs every spatial frequency alike, so at the frames' full size the finest
ones, which the autoencoder hardly draws, decide where the peak lies as much as the scene does. Turns are
therefore measured at half size (each 2x2 square of pixels averaged): on the evaluation's one-step turns the
real frames move the way the mouse commands in 99.0% of trials at half size (97.9% at full size, 72% at a
quarter), and the real frames through the autoencoder agree with them in 97.1% (84.2% at full size). Zoom is
measured at full size, where real walks follow the key in 98.8% of trials (88.5% at half size).
`studies/view_motion_resolution.py` measures both.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from waypoint_gym.engine import WorldEngine
from waypoint_gym.worlds.arena import WALK_SPEED

from .harness import EVAL_SEED, Harness, Pair, exploration

log = logging.getLogger(__name__)


def _grey(frames: np.ndarray, downsample: int = 1) -> np.ndarray:
    """uint8 [..., H, W, 3] RGB -> float32 [..., H / downsample, W / downsample] luma, each `downsample` square of
    pixels averaged (`cv2.INTER_AREA`)."""
    grey = (np.asarray(frames, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)
    if downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample}")
    if downsample == 1:
        return grey
    *lead, h, w = grey.shape
    size = (w // downsample, h // downsample)
    small = [cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in grey.reshape(-1, h, w)]
    return np.stack(small).reshape(*lead, size[1], size[0])


def _check_clips(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.shape[1] < 2:
        raise ValueError(f"need clips [N, T >= 2, H, W, 3], got shape {frames.shape}")
    return frames


def view_shift(frames: np.ndarray, downsample: int = 2) -> np.ndarray:
    """Horizontal motion of the picture in clips [N, T, H, W, 3], pixels summed over consecutive frames -> [N].

    Positive: the picture moves right (the camera turns left). Phase correlation of grey frames under a
    Hanning window (`cv2.phaseCorrelate`), at 1/`downsample` of the frames' size (see the module's note on
    resolution); the shift is given in the frames' own pixels.
    """
    grey = _grey(_check_clips(frames), downsample)  # [N, T, H / downsample, W / downsample]
    n, t, h, w = grey.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    shift = np.zeros(n)
    for i in range(n):
        for k in range(t - 1):
            (dx, _), _ = cv2.phaseCorrelate(grey[i, k], grey[i, k + 1], window)
            shift[i] += dx * downsample
    return shift


def view_zoom(frames: np.ndarray, downsample: int = 1) -> np.ndarray:
    """Zoom of the picture about its centre in clips [N, T, H, W, 3], as a log factor summed over frames -> [N].

    Positive: the picture expands (walking forward). Frames are resampled to log-polar coordinates around the
    centre (`cv2.warpPolar`), where a zoom by s shifts the picture by ln(s) * W / ln(R) along the radius axis;
    `cv2.phaseCorrelate` measures that shift, at 1/`downsample` of the frames' size.
    """
    grey = _grey(_check_clips(frames), downsample)  # [N, T, H / downsample, W / downsample]
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


def step_shifts(clips: np.ndarray, downsample: int = 2) -> np.ndarray:
    """The picture's horizontal shift between consecutive frames of clips [N, T, H, W, 3] -> [N, T - 1] px."""
    clips = _check_clips(clips)
    n, t = clips.shape[:2]
    pairs = np.stack([clips[:, :-1], clips[:, 1:]], 2).reshape(n * (t - 1), 2, *clips.shape[2:])
    return view_shift(pairs, downsample).reshape(n, t - 1)


def turn_following(real: np.ndarray, dreamed: np.ndarray, min_shift: float = 1.0) -> dict[str, Any]:
    """Do dreamed clips turn when and where the real ones do? Clips [N, T, H, W, 3] under the same actions.

    Over the steps where the real view shifts by at least `min_shift` px: how often the dreamed shift has its
    sign ("agreement"), and the dreamed turn's size against the real one ("shift_ratio", see `size_ratio`).
    """
    real_shift, dreamed_shift = step_shifts(real), step_shifts(dreamed)
    turned = np.abs(real_shift) >= min_shift
    return {
        "agreement": sign_agreement(real_shift[turned], dreamed_shift[turned]),
        "shift_ratio": size_ratio(real_shift[turned], dreamed_shift[turned]),
        "turning_steps": int(turned.sum()), "steps": int(turned.size), "min_shift_px": min_shift,
    }


def size_ratio(real: np.ndarray, dreamed: np.ndarray, min_size: float = 1.0) -> float | None:
    """The median over trials of the dreamed motion along the real one's direction over the real motion's size,
    where the real motion is at least `min_size`: 1 for a faithful world, 0 for a still one. A median, because
    phase correlation of a featureless (blurred) frame pair can peak anywhere and give a wild shift."""
    real, dreamed = np.asarray(real, np.float64), np.asarray(dreamed, np.float64)
    moved = np.abs(real) >= min_size
    return float(np.median(dreamed[moved] * np.sign(real[moved]) / np.abs(real[moved]))) if moved.any() else None


def sign_agreement(real: np.ndarray, dreamed: np.ndarray) -> float | None:
    """The share of trials where the dreamed motion has the real one's sign (None for no trials)."""
    return float(np.mean(np.sign(real) == np.sign(dreamed))) if len(real) else None


def hold_action(pair: Pair, keys: Sequence[str], key: str | None, mouse_x: float, n_context: int,
                n_frames: int) -> dict[str, Any]:
    """Play `n_context - 1` steps of the pair's policy after its first frame (in the model's history as real
    frames), then hold one action (`key` pressed, or none; mouse x = `mouse_x`) for `n_frames` steps in the
    game and the dream.

    Returns {"real", "dreamed", "reconstructed": clips [n, 1 + n_frames, H, W, 3] (the last: the real frames
    through the autoencoder, what a world with the real latents would show), "walked": [n] how far the real
    agent moved under the action, "last_action": (keys [n, K], mouse [n, 2]) of play just before it}.
    """
    n = pair.n
    latent = pair.start()
    last_action = (np.zeros((n, len(keys)), np.uint8), np.zeros((n, 2), np.float32))
    for _ in range(n_context - 1):
        last_action = pair.act()
        latent = pair.observe(pair.play(*last_action)[0], *last_action)
    start = pair.info["position"].copy()
    pressed = np.zeros((n, len(keys)), np.uint8)
    if key is not None:
        pressed[:, keys.index(key)] = 1
    mouse = np.zeros((n, 2), np.float32)
    mouse[:, 0] = mouse_x
    real, dreamed = [pair.frames], [pair.decode(latent)]
    reconstructed = [dreamed[0]]
    for _ in range(n_frames):
        real.append(pair.play(pressed, mouse)[0])
        dreamed.append(pair.decode(pair.dream(pressed, mouse)))
        reconstructed.append(pair.reconstruct(real[-1]))
    return {"real": np.stack(real, 1), "dreamed": np.stack(dreamed, 1), "reconstructed": np.stack(reconstructed, 1),
            "walked": np.linalg.norm(pair.info["position"] - start, axis=1), "last_action": last_action}


def controllability(
    engine: WorldEngine,
    n_trials: int = 32,
    seed: int = EVAL_SEED,
    captions: Sequence[str] | None = None,
    *,
    n_frames: int = 4,
    turn: float = 0.5,
    n_context: int = 1,
    mouse_scale: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """How often the dreamed view moves the way the real one does, from the same start under the same action.

    Each of `n_trials` worlds is played `n_frames` steps four times: turning left and right (mouse x = -/+
    `turn`) and walking forward and back (W, S), after `n_context` real frames (the reset frame, then steps
    of `ExplorationPolicy`, the same for all four actions, in the model's history as real frames). The
    picture's motion is `view_shift` for turns and `view_zoom` for walking; a trial agrees when its dreamed
    motion has the sign of the real one. Walks the real agent could not finish (a wall in the way) are left
    out. Returns {"turn": {... "size_ratio": the dreamed turn against the real one (`size_ratio`),
    "reconstruction_agreement": the ceiling, the real frames' latents decoded}, "move": {...}, "agreement"
    (both pooled), "samples"}.
    """
    harness = Harness(engine, captions, mouse_scale, progress)
    keys = harness.keys
    if not 0 < turn <= 1:
        raise ValueError(f"turn must lie in (0, 1], got {turn}")
    if n_context < 1:
        raise ValueError(f"need n_context >= 1, got {n_context}")
    context = exploration(0.4, keys)
    actions = {"left": (None, -turn), "right": (None, turn)}
    actions.update({name: (key, 0.0) for name, key in (("forward", "W"), ("back", "S")) if key in keys})
    real = {name: [] for name in actions}
    dreamed = {name: [] for name in actions}
    reconstructed = {name: [] for name in actions}
    moved = {name: [] for name in actions}
    samples = {"real": [], "dreamed": []}
    chunks = harness.chunks(n_trials)
    with harness.bar(len(chunks) * len(actions) * (n_context - 1 + n_frames), "controllability") as bar:
        for chunk in chunks:
            for name, (key, mouse_x) in actions.items():
                pair = Pair(harness, chunk, seed, harness.captions, n_context - 1 + n_frames, context, bar)
                trial = hold_action(pair, keys, key, mouse_x, n_context, n_frames)
                measure = view_shift if key is None else view_zoom
                real[name].append(measure(trial["real"]))
                dreamed[name].append(measure(trial["dreamed"]))
                reconstructed[name].append(measure(trial["reconstructed"]))
                moved[name].append(trial["walked"])
                if chunk.start == 0:
                    samples["real"].append(trial["real"][0])
                    samples["dreamed"].append(trial["dreamed"][0])
    real = {name: np.concatenate(v) for name, v in real.items()}
    dreamed = {name: np.concatenate(v) for name, v in dreamed.items()}
    reconstructed = {name: np.concatenate(v) for name, v in reconstructed.items()}

    def summary(names: Sequence[str], expected: Sequence[float], unit: str, valid: dict[str, np.ndarray]):
        real_all = np.concatenate([real[k][valid[k]] for k in names])
        dreamed_all = np.concatenate([dreamed[k][valid[k]] for k in names])
        as_expected = np.concatenate([np.sign(real[k][valid[k]]) == e for k, e in zip(names, expected)])
        recon_all = np.concatenate([reconstructed[k][valid[k]] for k in names])
        return {
            "agreement": sign_agreement(real_all, dreamed_all), "n_trials": len(real_all),
            "reconstruction_agreement": sign_agreement(real_all, recon_all),
            "size_ratio": size_ratio(real_all, dreamed_all, 1.0 if unit == "shift_px" else 0.01),
            "real_as_expected": float(as_expected.mean()) if len(as_expected) else None,
            unit: {k: {"real": float(real[k][valid[k]].mean()) if valid[k].any() else None,
                       "dreamed": float(dreamed[k][valid[k]].mean()) if valid[k].any() else None} for k in names},
        }, real_all, dreamed_all

    everyone = {name: np.ones(n_trials, bool) for name in actions}
    turn_result, real_pooled, dreamed_pooled = summary(("left", "right"), (1, -1), "shift_px", everyone)
    result: dict[str, Any] = {"turn": turn_result, "move": None, "n_frames": n_frames, "turn_mouse": turn,
                              "n_context": n_context}
    if "forward" in actions and "back" in actions:
        walked = {name: np.concatenate(moved[name]) >= 0.9 * n_frames * WALK_SPEED for name in ("forward", "back")}
        move_result, real_move, dreamed_move = summary(("forward", "back"), (1, -1), "log_zoom", walked)
        result["move"] = move_result
        real_pooled = np.concatenate([real_pooled, real_move])
        dreamed_pooled = np.concatenate([dreamed_pooled, dreamed_move])
    result["agreement"] = sign_agreement(real_pooled, dreamed_pooled)
    result["samples"] = {k: np.stack(v) for k, v in samples.items()}  # one row pair per action
    log.info("controllability: turn %.3f, move %s", turn_result["agreement"],
             result["move"] and result["move"]["agreement"])
    return result
