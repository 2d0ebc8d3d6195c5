"""At what resolution does phase correlation see the view turn and zoom?

Gates 2 and 3 compare the direction the dreamed view moves in with the real one's, measured by phase
correlation (`view_shift`, `view_zoom`). Phase correlation weighs every spatial frequency alike, so the finest
ones, where the autoencoder draws least of the scene, count as much as the coarse ones. This study replays
the evaluation's trials (`evaluate-world`'s `control_one_step` and `open_loop` blocks: the same worlds, actions
and engine noise) once, keeps every clip (the real frames, the dream and the real frames through the
autoencoder) and measures them at several resolutions. For each it reports how often the real frames move
the way the action commands (the game is the ground truth: an instrument should recover it), the ceiling (the
reconstruction against the real frames) and the world's agreement.

    python studies/view_motion_resolution.py [WORLD] [--downsample 1,2,4] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine import WorldEngine
from waypoint_gym.evaluation.control import hold_action, sign_agreement, size_ratio, step_shifts, view_shift, view_zoom
from waypoint_gym.evaluation.fidelity import open_loop_clips
from waypoint_gym.evaluation.harness import DEFAULT_CAPTIONS, EVAL_SEED, SEED_BLOCK, Harness, Pair, exploration
from waypoint_gym.evaluation.report import FULL_SIZES, SEED_OFFSETS
from waypoint_gym.worlds.arena import WALK_SPEED

# action -> (key, mouse x, the sign of the picture's motion it commands), in the evaluation's order
ACTIONS = {"left": (None, -1.0, 1), "right": (None, 1.0, -1), "forward": ("W", 0.0, 1), "back": ("S", 0.0, -1)}
CLIPS = ("real", "dreamed", "reconstructed")


def one_step_clips(engine: WorldEngine, harness: Harness, n_worlds: int) -> dict[str, dict[str, np.ndarray]]:
    """The one-step rows of gate 2 -> {action: {"real" | "dreamed" | "reconstructed": [n, 2, H, W, 3], "walked"}}."""
    seed = EVAL_SEED + SEED_OFFSETS["control_one_step"] * SEED_BLOCK
    engine.generator.manual_seed(seed)
    context = FULL_SIZES["context"]
    out = {name: {k: [] for k in (*CLIPS, "walked")} for name in ACTIONS}
    for chunk in harness.chunks(n_worlds):
        for name, (key, mouse_x, _) in ACTIONS.items():
            pair = Pair(harness, chunk, seed, harness.captions, context, exploration(0.4, harness.keys), None)
            trial = hold_action(pair, harness.keys, key, mouse_x, context, 1)
            for k in out[name]:
                out[name][k].append(trial[k])
    return {name: {k: np.concatenate(v) for k, v in clips.items()} for name, clips in out.items()}


def open_loop_trials(engine: WorldEngine, harness: Harness, n_worlds: int, horizon: int) -> dict[str, np.ndarray]:
    """Gate 3's open loop, as `open_loop_psnr` plays it -> {"real" | "dreamed" | "reconstructed": [n, 1 + horizon,
    H, W, 3]}."""
    seed = EVAL_SEED + SEED_OFFSETS["open_loop"] * SEED_BLOCK
    engine.generator.manual_seed(seed)
    return open_loop_clips(harness, n_worlds, horizon, seed, exploration(0.4, harness.keys))


def measure(one_step: dict, open_loop: dict, downsample: int) -> dict:
    """Every row at one resolution."""
    rows = {}
    for row, names, fn, unit in (("turn", ("left", "right"), view_shift, 1.0),
                                 ("walk", ("forward", "back"), view_zoom, 0.01)):
        # as in the evaluation, walks the real agent could not finish are left out
        keep = {n: np.ones(len(one_step[n]["real"]), bool) if row == "turn" else
                one_step[n]["walked"] >= 0.9 * WALK_SPEED for n in names}
        motion = {k: np.concatenate([fn(one_step[n][k][keep[n]], downsample) for n in names]) for k in CLIPS}
        commanded = np.concatenate([np.full(keep[n].sum(), ACTIONS[n][2]) for n in names])
        rows[f"one_step_{row}"] = {
            "trials": len(commanded), "real_as_commanded": sign_agreement(commanded, motion["real"]),
            "reconstruction_agreement": sign_agreement(motion["real"], motion["reconstructed"]),
            "agreement": sign_agreement(motion["real"], motion["dreamed"]),
            "size_ratio": size_ratio(motion["real"], motion["dreamed"], unit),
        }
    shifts = {k: step_shifts(open_loop[k], downsample) for k in CLIPS}
    turned = np.abs(shifts["real"]) >= 1.0
    rows["open_loop_turn"] = {
        "turning_steps": int(turned.sum()), "steps": int(turned.size),
        "reconstruction_agreement": sign_agreement(shifts["real"][turned], shifts["reconstructed"][turned]),
        "agreement": sign_agreement(shifts["real"][turned], shifts["dreamed"][turned]),
        "size_ratio": size_ratio(shifts["real"][turned], shifts["dreamed"][turned]),
    }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", nargs="?", default=None, help="checkpoint folder (default: the bundled world)")
    parser.add_argument("--downsample", default="1,2,4", help="resolutions to measure at, comma-separated factors")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", default="studies/results/view_motion_resolution.json", help="JSON to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = WorldEngine(args.world, device="cpu", batch_size=16, seed=EVAL_SEED)  # the checkpoint's own schedule
    harness = Harness(engine, DEFAULT_CAPTIONS, progress=False)
    one_step = one_step_clips(engine, harness, FULL_SIZES["gate_trials"])
    open_loop = open_loop_trials(engine, harness, FULL_SIZES["open_loop_rounds"] * engine.batch_size,
                                 FULL_SIZES["horizon"])
    results = {"world": args.world or "bundled",
               "by_downsample": {d: measure(one_step, open_loop, int(d)) for d in args.downsample.split(",")}}
    print(json.dumps(results, indent=1))
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
