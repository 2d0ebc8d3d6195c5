"""The world report: every metric of a checkpoint against the real game, its targets, strips and a summary table.

`evaluate_world` runs the metrics of this package on a checkpoint folder and writes `world_eval.json`,
`world_eval.md` and PNG strips (real row over dreamed row).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from waypoint_gym.engine import WorldEngine
from waypoint_gym.engine.reward_head import checkpoint_reward_head

from .control import controllability
from .drift import long_rollout_drift
from .fidelity import copy_step, one_step_psnr, open_loop_psnr
from .harness import DEFAULT_CAPTIONS, EVAL_SEED, SEED_BLOCK, Harness, held_action
from .inverse_dynamics import action_following
from .prompts import prompt_following
from .rewards import open_loop_reward_events, reward_events

log = logging.getLogger(__name__)

# The targets of issue 5 (PSNR in dB, the rest as fractions).
TARGETS = {
    "one_step_psnr": 26.0, "open_loop_psnr": 18.0, "controllability": 0.95, "prompt_following": 0.90,
    "reward_precision": 0.8, "reward_recall": 0.8,
}

# The gates of issue 19, in order: a world an agent can learn in. Each is (metric path, lowest, highest) on
# held-out seeds; a bound of None is open.
GATES = {
    "1. copy: PSNR": (("copy", "psnr"), 26.0, None),
    "1. copy: detail ratio": (("copy", "detail_ratio"), 0.85, None),
    "2. one step: turn agreement (mouse x = +-1)": (("control_one_step", "turn", "agreement"), 0.95, None),
    "2. one step: dreamed turn / real turn": (("control_one_step", "turn", "size_ratio"), 0.7, 1.3),
    "2. one step: forward / back agreement": (("control_one_step", "move", "agreement"), 0.90, None),
    "3. open loop: turn agreement over 16 steps": (("open_loop", "turns", "agreement"), 0.90, None),
    "3. open loop: detail ratio at step 16": (("open_loop", "detail_ratio_at_horizon"), 0.7, None),
    "3. open loop: pixel std / real at step 16": (("open_loop", "pixel_std_ratio_at_horizon"), 0.8, 1.2),
    "4. open-loop rewards: precision": (("open_loop_rewards", "precision"), 0.7, None),
    "4. open-loop rewards: recall": (("open_loop_rewards", "recall"), 0.7, None),
}


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


# Where each metric's world seeds start: the evaluation's seed + offset * SEED_BLOCK, so metrics play different
# worlds (studies that replay a metric's trials read theirs from here).
SEED_OFFSETS = {"one_step": 0, "open_loop": 1, "controllability": 2, "prompt_following": 3, "reward_events": 4,
                "long_rollout": 5, "copy": 6, "control_one_step": 7, "action_following": 8, "open_loop_rewards": 9,
                "open_loop_still": 10}

# Sizes of a full evaluation and of a quick one (a smoke test of the whole pipeline).
FULL_SIZES = dict(one_step=64, horizon=16, open_loop_rounds=4, control_trials=32, control_frames=4,
                  prompt_trials=8, prompt_frames=8, fit_worlds=8, reward_steps=300, drift_steps=1000, drift_window=100,
                  max_worlds=None, max_captions=None, gate_trials=256, context=6, idm_fit_worlds=64, idm_fit_steps=64,
                  idm_train_steps=800, reward_rounds=8)
QUICK_SIZES = dict(one_step=6, horizon=8, open_loop_rounds=1, control_trials=4, control_frames=3, prompt_trials=2,
                   prompt_frames=3, fit_worlds=2, reward_steps=12, drift_steps=24, drift_window=8, max_worlds=4,
                   max_captions=4, gate_trials=4, context=3, idm_fit_worlds=4, idm_fit_steps=6, idm_train_steps=10,
                   reward_rounds=1)


def evaluate_world(
    checkpoint: str | os.PathLike | None,
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
    worlds). A full run plays 64 teacher-forced steps, 256 starts for each one-step gate row (copy, turn, walk:
    a 64-world block swings by several points, too much for a 95% bar), 2 * n_worlds open-loop rollouts of 16
    steps, 32 controllability starts under 4 actions, 8 prompt trials per caption, 300 orb-seeking steps and 1,000-step
    rollouts; `quick` runs every metric on a few worlds and steps (a smoke test, not a measurement). Metrics the
    checkpoint cannot take part in (no prompt conditioning, no `reward_head/`) are skipped with a note.
    """
    if seed < EVAL_SEED:
        raise ValueError(f"evaluation seeds start at {EVAL_SEED} (below are training worlds), got seed={seed}")
    if n_worlds < 1:
        raise ValueError(f"n_worlds must be positive, got {n_worlds}")
    size = QUICK_SIZES if quick else FULL_SIZES
    n_worlds = min(n_worlds, size["max_worlds"] or n_worlds)
    captions = list(DEFAULT_CAPTIONS if held_out_captions is None else held_out_captions)
    captions = captions[: size["max_captions"] or len(captions)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    engine = WorldEngine(checkpoint, device=device, batch_size=n_worlds, n_denoise_steps=n_denoise_steps, seed=seed,
                         prompt_guidance=prompt_guidance)
    harness = Harness(engine, captions, mouse_scale)  # also checks the autoencoder before any work
    mouse_scale, keys = harness.mouse_scale, harness.keys
    common = dict(mouse_scale=mouse_scale, progress=progress)
    metrics: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    notes: list[str] = []
    if quick:
        notes.append("quick run: a few worlds and steps, a smoke test rather than a measurement")

    def run(name: str, fn: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        """One metric on its own block of worlds (`SEED_OFFSETS`), its engine noise drawn from a generator
        seeded by that block's first seed, so its figures do not depend on which metrics ran before it."""
        began = time.perf_counter()
        metric_seed = seed + SEED_OFFSETS[name] * SEED_BLOCK
        engine.generator.manual_seed(metric_seed)
        result = fn(engine, *args, seed=metric_seed, **kwargs, **common)
        samples[name] = result.pop("samples", None)
        metrics[name] = {**result, "seconds": round(time.perf_counter() - began, 2)}

    gates = size["gate_trials"]
    run("one_step", one_step_psnr, n_worlds, size["one_step"], captions=captions)
    run("copy", copy_step, gates, captions=captions, n_context=size["context"])
    run("control_one_step", controllability, gates, captions=captions, n_frames=1, turn=1.0,
        n_context=size["context"])
    run("open_loop", open_loop_psnr, size["horizon"], size["open_loop_rounds"] * n_worlds, captions=captions)
    run("open_loop_still", open_loop_psnr, size["horizon"], size["open_loop_rounds"] * n_worlds, captions=captions,
        policy=held_action(0.0, keys))  # nothing pressed: the real view stays still, and the dream should too
    run("controllability", controllability, size["control_trials"], captions=captions,
        n_frames=size["control_frames"])
    run("action_following", action_following, n_worlds, size["horizon"], captions=captions,
        fit_worlds=size["idm_fit_worlds"], fit_steps=size["idm_fit_steps"], train_steps=size["idm_train_steps"])
    if engine.config.prompt_conditioning:
        run("prompt_following", prompt_following, captions, size["prompt_trials"], n_frames=size["prompt_frames"],
            fit_worlds=size["fit_worlds"])
    else:
        notes.append("prompt following skipped: the checkpoint has no prompt conditioning")
    head = _reward_head(engine, notes)
    if head is not None:
        run("reward_events", reward_events, head, n_worlds, size["reward_steps"], captions=captions)
        run("open_loop_rewards", open_loop_reward_events, head, size["reward_rounds"] * n_worlds, size["horizon"],
            captions=captions, n_context=size["context"])
    run("long_rollout", long_rollout_drift, size["drift_steps"], n_worlds, captions=captions,
        window=size["drift_window"])

    strips = {}
    for name, sample in samples.items():
        if sample is not None:
            strips[name] = save_strips(out_dir / f"strip_{name}.png", sample["real"], sample["dreamed"]).name
    report = {
        "checkpoint": str(checkpoint if checkpoint is not None else engine.folder), "quick": quick, "seed": seed,
        "n_worlds": n_worlds, "captions": captions,
        "n_denoise_steps": engine.n_denoise_steps, "prompt_guidance": engine.prompt_guidance,
        "mouse_scale": mouse_scale,
        "metrics": metrics, "gates": _gates(metrics), "targets": TARGETS, "passed": _passed(metrics),
        "notes": notes, "strips": strips,
        "seconds": round(time.perf_counter() - started, 1),
    }
    report = _plain(report)
    (out_dir / "world_eval.json").write_text(json.dumps(report, indent=1))
    (out_dir / "world_eval.md").write_text(_markdown(report))
    log.info("world evaluation written to %s", out_dir)
    return report


def _reward_head(engine: WorldEngine, notes: list[str]) -> Any:
    """The checkpoint's `reward_head/`, or None with a note saying why not."""
    head = checkpoint_reward_head(engine.folder, engine.device)
    if head is None:
        notes.append("reward events skipped: the checkpoint has no reward_head/")
    return head


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


def _gates(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each gate of issue 19 -> {"value", "lowest", "highest", "met"} (met None where it was not measured)."""
    out = {}
    for name, (path, low, high) in GATES.items():
        value = _lookup(metrics, path)
        met = None if value is None else bool((low is None or value >= low) and (high is None or value <= high))
        out[name] = {"value": value, "lowest": low, "highest": high, "met": met}
    return out


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
    def bounds(gate: dict[str, Any]) -> str:
        low, high = gate["lowest"], gate["highest"]
        return f"{low:g} - {high:g}" if low is not None and high is not None else f">= {low:g}"

    gate_rows = [(name, value(g["value"]), bounds(g), {True: "yes", False: "**no**", None: "-"}[g["met"]])
                 for name, g in report["gates"].items()]
    detail = [
        ("One step: SSIM / detail ratio / pixel std ratio", " / ".join(
            value(get("one_step", k)) for k in ("ssim", "detail_ratio", "pixel_std_ratio"))),
        (f"Open loop: SSIM at step {horizon} / mean", " / ".join(
            value(get("open_loop", k)) for k in ("ssim_at_horizon", "ssim"))),
        ("Open loop: dreamed turn / real turn", value(get("open_loop", "turns", "shift_ratio"))),
        (f"Open loop standing still (nothing pressed): PSNR / detail ratio at step {horizon}",
         f"{value(get('open_loop_still', 'psnr_at_horizon'), ' dB')} / "
         f"{value(get('open_loop_still', 'detail_ratio_at_horizon'))}"),
        ("Open loop: the autoencoder's reconstruction, turn agreement (the ceiling)",
         value(get("open_loop", "turns", "reconstruction_agreement"))),
        ("Copy: PSNR of copying the last real frame", value(get("copy", "last_frame_psnr"), " dB")),
        ("Copy: the autoencoder's reconstruction, PSNR / detail ratio (the ceilings)",
         f"{value(get('copy', 'autoencoder_psnr'), ' dB')} / {value(get('copy', 'autoencoder_detail_ratio'))}"),
        ("One step: the autoencoder's reconstruction, turn / walk agreement (the ceilings)", " / ".join(
            value(get("control_one_step", row, "reconstruction_agreement")) for row in ("turn", "move"))),
        *((f"Action following ({side}): turn / walk / strafe, balanced accuracy (chance 0.33)", " / ".join(
            value(get("action_following", side, f)) for f in ("turn", "walk", "strafe")))
          for side in ("real", "one_step", "open_loop")),
    ]
    lines = [
        "# World model against the ground truth", "",
        f"Checkpoint `{report['checkpoint']}`, {report['n_worlds']} worlds at a time, seeds from {report['seed']}, "
        f"{report['n_denoise_steps']} denoising steps, prompt guidance {report.get('prompt_guidance', 1.0)}, "
        f"{report['seconds']} s.", "",
        "## Gates (issue 19)", "",
        "| Gate | Value | Wanted | Met |", "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in gate_rows), "",
        "| Beside the gates | Value |", "|---|---|", *(f"| {a} | {b} |" for a, b in detail), "",
        "## Targets of the first world (issue 5)", "",
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
