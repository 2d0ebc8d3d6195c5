"""How fast may the view move before the open loop fades?

Plays a world's open loop (16 steps on its own frames from one real frame, a block of held-out worlds outside
the evaluation's, 8 captions) under held actions: turns at several mouse speeds with no key, W alone, W with a
turn, and the evaluation's exploration for reference. For each it reports the detail ratio (dreamed over real
Sobel magnitude, as gate 3) and PSNR by step, and how the dreamed view turns against the real one (sign
agreement and size over the steps where the real view turns, as gate 3 reads them). Under a turn the view
slides sideways, so the study also splits each frame into the columns that show content the first frame
already showed (slid over by the real view's own shift, measured by phase correlation between consecutive real
frames) and the columns that show content new to the view (detail ratio and PSNR in each): does the dream keep
what it has seen, and how sharp is what it draws anew?

    python studies/open_loop_motion.py [WORLD] [--policies "turn 0.1,W + turn 0.5,explore"] [--horizon 16]
        [--worlds 32] [--threads 1] [--strips DIR] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine import WorldEngine
from waypoint_gym.evaluation.control import step_shifts, turn_following
from waypoint_gym.evaluation.fidelity import detail, gradient_magnitude, open_loop_clips, psnr
from waypoint_gym.evaluation.harness import (
    DEFAULT_CAPTIONS,
    EVAL_SEED,
    SEED_BLOCK,
    STRIP_WORLDS,
    Harness,
    HeldAction,
    exploration,
)
from waypoint_gym.evaluation.report import save_strips

BLOCK = 23  # held out, and not one of the evaluation's blocks (as studies/open_loop_sampler.py)
HORIZON = 16  # gate 3's
MARGIN = 2  # columns left out beside the seam between seen and new content
POLICIES = ("turn 0.1", "turn 0.25", "turn 0.5", "turn 1.0", "W", "W + turn 0.25", "W + turn 0.5", "explore")


def held_action(name: str) -> tuple[tuple[str, ...], float] | None:
    """'turn X' (no key, mouse x = -X: a turn left), 'W', 'W + turn X' -> (keys held, mouse x); 'explore' -> None."""
    if name == "explore":
        return None
    keys, _, turn = name.rpartition("turn ") if "turn " in name else (name, "", "0")
    keys = tuple(k for k in keys.replace("+", " ").split() if k)
    try:
        mouse_x = -float(turn) or 0.0
    except ValueError:
        mouse_x = None
    if keys not in ((), ("W",)) or mouse_x is None:
        raise ValueError(f"unknown policy {name!r}: expected 'explore', 'W', 'turn X' or 'W + turn X'")
    return keys, mouse_x


def seen_and_new(clips: dict[str, np.ndarray]) -> list[dict]:
    """Per step: the real view's slide since the first frame and the detail ratio of the dream (and of the
    real frames through the autoencoder) and PSNR in the columns of content seen before and of content new to
    the view. The slide is the real frames' own, step by step at full size (`control.step_shifts`)."""
    real, dreamed, recon = clips["real"], clips["dreamed"], clips["reconstructed"]
    n, steps, _, width, _ = real.shape
    slid = np.cumsum(step_shifts(real, downsample=1), 1)  # [n, steps - 1] px since the first frame
    rows = []
    for t in range(1, steps):
        magnitudes = [[gradient_magnitude(f[i, t]) for f in (dreamed, real, recon)] for i in range(n)]
        row = {"step": t, "slide_px": float(slid[:, t - 1].mean())}
        for part in ("seen", "new"):
            sums, worlds, psnrs = np.zeros(3), 0, []
            for i in range(n):
                edge = int(np.ceil(abs(slid[i, t - 1])))
                lo, hi = (edge + MARGIN, width - MARGIN) if part == "seen" else (MARGIN, edge - MARGIN)
                if slid[i, t - 1] < 0:  # content slid left: the seen part is on the left
                    lo, hi = width - hi, width - lo
                if hi - lo < 4:
                    continue
                worlds += 1
                sums += [m[:, lo:hi].mean() for m in magnitudes[i]]
                psnrs.append(psnr(dreamed[i, t][:, lo:hi], real[i, t][:, lo:hi]))
            row[part] = {"worlds": worlds, "detail_ratio": float(sums[0] / sums[1]) if worlds else None,
                         "autoencoder_detail_ratio": float(sums[2] / sums[1]) if worlds else None,
                         "psnr": float(np.mean(psnrs)) if worlds else None}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", nargs="?", default="waypoint_gym/assets/default_world", help="a checkpoint folder")
    parser.add_argument("--worlds", type=int, default=32, help="held-out worlds per policy")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help="comma-separated: explore, W, 'turn X' (mouse x = -X), 'W + turn X'")
    parser.add_argument("--horizon", type=int, default=HORIZON, help="open-loop steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--strips", default=None, help="folder for a strip of each policy's open loop (first worlds)")
    parser.add_argument("--out", default="studies/results/open_loop_motion.json", help="JSON to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seed = EVAL_SEED + BLOCK * SEED_BLOCK
    results = {}
    try:
        policies = {name.strip(): held_action(name.strip()) for name in args.policies.split(",")}
    except ValueError as error:
        parser.error(str(error))
    horizon = args.horizon
    for name, held in policies.items():
        engine = WorldEngine(args.world, device="cpu", batch_size=16, seed=seed)
        engine.generator.manual_seed(seed)
        harness = Harness(engine, DEFAULT_CAPTIONS, progress=False)
        policy = exploration(0.4, harness.keys) if held is None else (
            lambda num_envs, _seed, keys=harness.keys, held=held: HeldAction(
                num_envs, len(keys), held[1], [keys.index(k) for k in held[0]]))
        clips = open_loop_clips(harness, args.worlds, horizon, seed, policy)
        real, dreamed = clips["real"], clips["dreamed"]
        if args.strips:
            Path(args.strips).mkdir(parents=True, exist_ok=True)
            save_strips(Path(args.strips) / f"open_loop_{name.replace(' + ', '_').replace(' ', '_')}.png",
                        real[:STRIP_WORLDS], dreamed[:STRIP_WORLDS])
        steps = range(1 + horizon)
        result = {"detail_ratio": [float(detail(dreamed[:, t]).mean() / detail(real[:, t]).mean()) for t in steps],
                  "psnr": [float(psnr(dreamed[:, t], real[:, t]).mean()) for t in steps]}
        turns = turn_following(real, dreamed)
        result.update(turn_agreement=turns["agreement"], turn_size=turns["shift_ratio"])
        if held is not None and not held[0]:
            result["seen_and_new"] = seen_and_new(clips)
        results[name] = result
        by_step = "  ".join(f"{t}: {result['detail_ratio'][t]:.3f}" for t in (1, 4, 8, 16, 24, 32) if t <= horizon)
        turn = "" if result["turn_agreement"] is None else \
            f", turn agreement {result['turn_agreement']:.3f} size {result['turn_size']:.2f}"
        print(f"{name:14s} detail {by_step}  PSNR at {horizon} {result['psnr'][horizon]:.2f} dB{turn}", flush=True)
        for row in result.get("seen_and_new", [])[3::4]:
            seen, new = row["seen"], row["new"]
            fmt = lambda part: "-" if part["detail_ratio"] is None else \
                f"{part['detail_ratio']:.3f} / {part['psnr']:.2f} dB ({part['worlds']})"
            print(f"    step {row['step']:2d}: slid {row['slide_px']:5.1f} px, seen {fmt(seen)}, new {fmt(new)}")
    report = {"world": args.world, "worlds": args.worlds, "seed": seed, "horizon": horizon, "policies": results}
    Path(args.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
