"""Which one-step control trials does a world get wrong, and why?

Replays the one-step rows of gate 2 (`evaluate-world`'s `control_one_step`: the same held-out worlds, 6 real
frames of exploration, then one step of a full turn left or right, or W or S) and keeps every trial: the last
action of play before it, the view motion of the real frames, of the dream and of the real frames through the
autoencoder (what the latent can show at best), how far the real agent walked and the detail (Sobel
magnitude) of the real start frame. It prints the agreement split by the last action of play, by the start
frame's detail and by direction, and can save chosen trials as a grid of frames. With `--seed-blocks` it
plays the same rows on other blocks of held-out worlds instead (fresh seeds: is a row on its gate's line
there too?) and adds the agreement over all of them.

    python studies/one_step_controls.py WORLD... [--worlds 256] [--grid 14:left,6:right] [--seed-blocks 20,21,22]
        [--denoise-steps 2|all]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from waypoint_gym.engine import WorldEngine
from waypoint_gym.evaluation.control import hold_action, view_shift, view_zoom
from waypoint_gym.evaluation.fidelity import detail
from waypoint_gym.evaluation.harness import DEFAULT_CAPTIONS, EVAL_SEED, SEED_BLOCK, Harness, Pair, exploration
from waypoint_gym.evaluation.report import FULL_SIZES, SEED_OFFSETS
from waypoint_gym.worlds.arena import WALK_SPEED

SEED = EVAL_SEED + SEED_OFFSETS["control_one_step"] * SEED_BLOCK  # the evaluation's seeds for these rows
CONTEXT = FULL_SIZES["context"]  # real frames before the step, as in the evaluation
ACTIONS = {"left": (None, -1.0), "right": (None, 1.0), "forward": ("W", 0.0), "back": ("S", 0.0)}


def trials(world: str, n_worlds: int, grid: set[tuple[int, str]] = frozenset(),
           actions: tuple[str, ...] = tuple(ACTIONS), seed: int = SEED,
           n_denoise_steps: int | None = 2) -> tuple[list[dict], list[np.ndarray]]:
    """Every trial of the rows on `n_worlds` worlds -> (records, grid rows [H, 4W, 3] for the chosen trials).

    The engine's noise is seeded as the evaluation seeds it and, with all four actions, they run in its
    order, so at the evaluation's `seed` the agreement equals the evaluation's; fewer `actions` play the same
    worlds under other noise. `n_denoise_steps` None samples with the checkpoint's whole schedule."""
    engine = WorldEngine(world, device="cpu", batch_size=16, n_denoise_steps=n_denoise_steps, seed=seed)
    engine.generator.manual_seed(seed)
    harness = Harness(engine, DEFAULT_CAPTIONS, progress=False)
    keys, records, rows = harness.keys, [], []
    for chunk in harness.chunks(n_worlds):
        for name in actions:
            key, mouse_x = ACTIONS[name]
            pair = Pair(harness, chunk, seed, harness.captions, CONTEXT, exploration(0.4, keys), None)
            trial = hold_action(pair, keys, key, mouse_x, CONTEXT, 1)
            measure = view_shift if key is None else view_zoom
            real, dreamed, reconstructed = (measure(trial[k]) for k in ("real", "dreamed", "reconstructed"))
            last_keys, last_mouse = trial["last_action"]
            start_detail = detail(trial["real"][:, 0])  # [n]
            for i, world_index in enumerate(chunk):
                records.append({
                    "world": world_index, "action": name, "real": float(real[i]), "dreamed": float(dreamed[i]),
                    "reconstructed": float(reconstructed[i]), "walked": float(trial["walked"][i]),
                    "detail": float(start_detail[i]), "last_mouse_x": float(last_mouse[i, 0]),
                    "last_walk": int(last_keys[i, keys.index("W")]) - int(last_keys[i, keys.index("S")]),
                })
                if (world_index, name) in grid:
                    rows.append(np.concatenate([*trial["real"][i], *trial["dreamed"][i]], 1))
    return records, rows


def agreement(records: list[dict], motion: str = "dreamed") -> dict:
    ok = [np.sign(r["real"]) == np.sign(r[motion]) for r in records]
    return {"agree": float(np.mean(ok)) if ok else None, "trials": len(ok)}


def summary(records: list[dict]) -> dict:
    """Agreement of the turn and walk rows (walks the real agent could not finish left out, as in the
    evaluation), split by the last action of play, the start frame's detail and the direction."""
    out = {}
    for row, names in (("turn", ("left", "right")), ("walk", ("forward", "back"))):
        picked = [r for r in records if r["action"] in names and (row == "turn" or r["walked"] >= 0.9 * WALK_SPEED)]
        if not picked:
            continue
        sign = {"left": -1, "right": 1, "forward": 1, "back": -1}
        last = (lambda r: np.sign(r["last_mouse_x"]) * (abs(r["last_mouse_x"]) > 0.05)) if row == "turn" else \
            (lambda r: r["last_walk"])
        median = np.median([r["detail"] for r in picked])
        failed = [r for r in picked if np.sign(r["real"]) != np.sign(r["dreamed"])]
        unit = 1.0 if row == "turn" else 0.005  # px of shift, or log zoom: what counts as no motion
        out[row] = {
            **agreement(picked),
            "reconstruction": agreement(picked, "reconstructed"),
            "failed_where_the_reconstruction_agrees": int(sum(np.sign(r["reconstructed"]) == np.sign(r["real"])
                                                              for r in failed)),
            "by_direction": {name: agreement([r for r in picked if r["action"] == name]) for name in names},
            "after_the_same_action": agreement([r for r in picked if last(r) == sign[r["action"]]]),
            "after_the_opposite": agreement([r for r in picked if last(r) == -sign[r["action"]]]),
            "after_neither": agreement([r for r in picked if last(r) == 0]),
            "less_detail": agreement([r for r in picked if r["detail"] < median]),
            "more_detail": agreement([r for r in picked if r["detail"] >= median]),
            "failed_without_motion": int(sum(abs(r["dreamed"]) < 2 * unit for r in failed)),
            "failed": len(failed),
            "dreamed_over_real": {name: float(np.mean([r["dreamed"] for r in picked if r["action"] == name]) /
                                              np.mean([r["real"] for r in picked if r["action"] == name]))
                                  for name in names if any(r["action"] == name for r in picked)},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("worlds", nargs="+", help="checkpoint folders")
    parser.add_argument("--worlds", dest="n_worlds", type=int, default=256, help="held-out worlds (the gate's 256)")
    parser.add_argument("--grid", default="", help="trials to draw, WORLD:ACTION comma-separated (e.g. 14:left)")
    parser.add_argument("--actions", default=",".join(ACTIONS),
                        help="actions to play, comma-separated (fewer than all four: the same worlds, other noise)")
    parser.add_argument("--seed-blocks", default="",
                        help="other blocks of held-out worlds to play instead, comma-separated (seed = the "
                             "evaluation's base seed + block x its block size; the evaluation's own block is "
                             f"{SEED_OFFSETS['control_one_step']})")
    parser.add_argument("--denoise-steps", default="2",
                        help="denoising steps taken from the checkpoint's schedule, or 'all' for its whole schedule "
                             "(a checkpoint folder with another scheduler_sigmas, as open_loop_sampler.py makes)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", default="studies/results/one_step_controls.json", help="JSON to write")
    parser.add_argument("--trials", default=None, help="also write every trial's record to this JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    grid = {(int(w), a) for w, a in (item.split(":") for item in args.grid.split(",") if item)}
    unknown = sorted(set(args.actions.split(",")) - set(ACTIONS))
    if unknown:
        parser.error(f"unknown actions {unknown}; expected some of {', '.join(ACTIONS)}")
    if args.denoise_steps != "all" and not (args.denoise_steps.isdigit() and int(args.denoise_steps) >= 1):
        parser.error(f"--denoise-steps must be a positive integer or 'all', got {args.denoise_steps!r}")
    steps = None if args.denoise_steps == "all" else int(args.denoise_steps)
    blocks = [int(b) for b in args.seed_blocks.split(",") if b]
    if blocks and grid:
        parser.error("--grid draws trials of the evaluation's own worlds; leave it out with --seed-blocks")
    results, every_trial = {}, {}
    for world in args.worlds:
        if blocks:
            by_block = {b: trials(world, args.n_worlds, actions=tuple(args.actions.split(",")),
                                  seed=EVAL_SEED + b * SEED_BLOCK, n_denoise_steps=steps)[0] for b in blocks}
            records, rows = [r for b in blocks for r in by_block[b]], []
            results[world] = {"seed_blocks": {b: summary(by_block[b]) for b in blocks}, "all_blocks": summary(records)}
        else:
            records, rows = trials(world, args.n_worlds, grid, tuple(args.actions.split(",")), n_denoise_steps=steps)
            results[world] = summary(records)
        every_trial[world] = records
        print(world, json.dumps(results[world], indent=1))
        if rows:
            image = np.concatenate(rows, 0)
            path = Path(args.out).with_name(f"one_step_controls_{Path(world).name}.png")
            cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST),
                                                cv2.COLOR_RGB2BGR))
    Path(args.out).write_text(json.dumps(results, indent=1))
    if args.trials:
        Path(args.trials).write_text(json.dumps(every_trial))


if __name__ == "__main__":
    main()
