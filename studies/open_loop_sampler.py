"""Is the open loop's fog in the world or in its few-step sampler?

Gate 3 plays a world for 16 steps on its own frames from one real frame. This study plays the same kind of
open loop (a block of held-out worlds outside the evaluation's, 8 captions) with one checkpoint under several
denoising schedules and three policies: the evaluation's exploration, standing still (no keys, mouse at rest)
and a steady half turn left. For each it reports the detail ratio and pixel std ratio at steps 1, 4, 8 and 16,
PSNR at step 16, and how the dreamed view turns against the real one (sign agreement and size, as gate 3).
A schedule is the checkpoint's own ("own"), N (N uniform steps from 1 to 0) or a comma-separated list of
sigmas from 1 to 0; each runs as the checkpoint with only `scheduler_sigmas` changed.

    python studies/open_loop_sampler.py [WORLD] [--schedules "own;8;32;1,0.3,0.15,0.05,0"]
        [--policies explore,idle,left] [--worlds 32] [--strips DIR] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from waypoint_gym.engine import WorldEngine
from waypoint_gym.engine.loading import resolve_checkpoint, resolve_model
from waypoint_gym.evaluation.control import turn_following
from waypoint_gym.evaluation.fidelity import frame_figures, open_loop_clips, summary
from waypoint_gym.evaluation.harness import (
    DEFAULT_CAPTIONS,
    EVAL_SEED,
    SEED_BLOCK,
    STRIP_WORLDS,
    Harness,
    exploration,
    held_action,
)
from waypoint_gym.evaluation.report import save_strips

BLOCK = 23  # seeds EVAL_SEED + 23 * SEED_BLOCK on: held out, and not one of the evaluation's blocks
HORIZON = 16
REPORTED_STEPS = (1, 4, 8, 16)


def schedule(spec: str, own: list[float]) -> list[float]:
    """'own' | 'N' | 'sigma,sigma,...' -> sigmas from 1 to 0."""
    if spec == "own":
        return list(own)
    if "," not in spec:
        return [round(float(s), 6) for s in np.linspace(1.0, 0.0, int(spec) + 1)]
    sigmas = [float(s) for s in spec.split(",")]
    if sigmas[0] != 1.0 or sigmas[-1] != 0.0 or any(a <= b for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError(f"a schedule falls from 1 to 0, got {spec!r}")
    return sigmas


def with_schedule(folder: Path, sigmas: list[float], into: Path) -> Path:
    """The checkpoint at `folder` with only its schedule changed, as a folder of links under `into`."""
    into.mkdir()
    for item in folder.iterdir():
        if item.name != "config.yaml":
            (into / item.name).symlink_to(item.resolve())
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["scheduler_sigmas"] = sigmas
    (into / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return into


def play(engine: WorldEngine, policy_name: str, n_worlds: int) -> tuple[dict, dict[str, np.ndarray]]:
    """One open loop -> (its figures, its clips)."""
    harness = Harness(engine, DEFAULT_CAPTIONS, progress=False)
    policies = {"explore": exploration(0.4, harness.keys),
                "idle": held_action(0.0, harness.keys), "left": held_action(-0.5, harness.keys)}
    seed = EVAL_SEED + BLOCK * SEED_BLOCK
    engine.generator.manual_seed(seed)
    clips = open_loop_clips(harness, n_worlds, HORIZON, seed, policies[policy_name])
    figures = frame_figures(clips["dreamed"][:, 1:], clips["real"][:, 1:])
    at = {t: summary({k: v[:, t - 1] for k, v in figures.items()}) for t in REPORTED_STEPS}
    turns = turn_following(clips["real"], clips["dreamed"])
    return {
        "detail_ratio": {t: round(at[t]["detail_ratio"], 3) for t in REPORTED_STEPS},
        "pixel_std_ratio": {t: round(at[t]["pixel_std_ratio"], 3) for t in REPORTED_STEPS},
        "psnr_at_horizon": round(at[HORIZON]["psnr"], 2),
        "turn_agreement": turns["agreement"], "turn_size": turns["shift_ratio"],
        "turning_steps": turns["turning_steps"],
    }, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", nargs="?", default="dream", help="checkpoint folder (default: the bundled world)")
    parser.add_argument("--schedules", default="own;4;8;16;32;64", help="';'-separated schedules (see above)")
    parser.add_argument("--policies", default="explore", help="comma-separated: explore, idle, left")
    parser.add_argument("--worlds", type=int, default=32, help="worlds per open loop (16 played at once)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--strips", default=None, help="folder for a strip of each open loop (its first worlds)")
    parser.add_argument("--out", default="studies/results/open_loop_sampler.json", help="JSON to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = resolve_checkpoint(resolve_model(None if args.world == "dream" else args.world))
    own = yaml.safe_load((folder / "config.yaml").read_text())["scheduler_sigmas"]
    results = {"world": args.world, "seed_block": BLOCK, "n_worlds": args.worlds, "horizon": HORIZON, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(args.schedules.split(";")):
            sigmas = schedule(spec, own)
            engine = WorldEngine(with_schedule(folder, sigmas, Path(tmp) / str(i)), device="cpu", batch_size=16,
                                 seed=EVAL_SEED)
            for policy_name in args.policies.split(","):
                began = time.perf_counter()
                row, clips = play(engine, policy_name, args.worlds)
                row = {"schedule": spec, "sigmas": sigmas, "policy": policy_name, **row,
                       "seconds": round(time.perf_counter() - began, 1)}
                results["runs"][f"{spec} / {policy_name}"] = row
                print(json.dumps(row), flush=True)
                if args.strips:
                    Path(args.strips).mkdir(parents=True, exist_ok=True)
                    save_strips(Path(args.strips) / f"open_loop_{len(sigmas) - 1}_steps_{i}_{policy_name}.png",
                                clips["real"][:STRIP_WORLDS], clips["dreamed"][:STRIP_WORLDS])
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
