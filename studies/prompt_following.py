"""Prompt following of one or more worlds on many captions, with more trials than evaluate-world runs.

    python studies/prompt_following.py waypoint_gym/assets/default_world runs/world_ft5
    python studies/prompt_following.py --captions evaluation waypoint_gym/assets/default_world

`evaluate-world`'s prompt following has 64 trials on its 8 captions (a 95% interval of about +-11 points).
This runs `prompt_following` on `--sets` sets of 8 validation captions (drawn from the grammar without the
evaluation's, worlds from seed 3,000,000), `--trials` trials a caption, every world on the same captions,
worlds, actions and engine seed, so that worlds compare pair by pair. Each trial is judged by the target's
test and, as a diagnostic, by the colour means alone. Writes studies/results/prompt_following_<captions>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine import WorldEngine
from waypoint_gym.evaluation import DEFAULT_CAPTIONS, EVAL_SEED, prompt_following, validation_captions

VALIDATION_SEED = 3_000_000


def caption_sets(which: str, n_sets: int) -> list[tuple[list[str], int]]:
    """(captions, world seed) sets: the evaluation's 8, or `n_sets` validation sets of 8 outside them."""
    if which == "evaluation":
        return [(list(DEFAULT_CAPTIONS), EVAL_SEED)]
    return [(captions, VALIDATION_SEED + 1000 * k) for k, captions in enumerate(validation_captions(n_sets, seed=11))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("worlds", nargs="+", help="checkpoint folders")
    ap.add_argument("--captions", choices=["validation", "evaluation"], default="validation")
    ap.add_argument("--sets", type=int, default=6, help="validation caption sets of 8")
    ap.add_argument("--trials", type=int, default=16, help="trials per caption")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="default: studies/results/prompt_following_<captions>.json")
    args = ap.parse_args()
    out = Path(args.out or f"studies/results/prompt_following_{args.captions}.json")
    torch.set_num_threads(args.threads)
    sets = caption_sets(args.captions, args.sets)
    results = {}
    for world in args.worlds:
        engine = WorldEngine(world, batch_size=64, seed=1)
        runs = [prompt_following(engine, captions=c, trials_per_caption=args.trials, seed=seed, progress=False)
                for c, seed in sets]
        row = {key: [r[key] for r in runs] for key in ("accuracy", "accuracy_colour_means", "classifier_accuracy_real",
                                                     "classifier_accuracy_real_colour_means")}
        results[world] = {**{f"mean_{k}": float(np.mean(v)) for k, v in row.items()}, "per_set": row}
        print(f"{world}: {100 * np.mean(row['accuracy']):.1f}% (colour means alone "
              f"{100 * np.mean(row['accuracy_colour_means']):.1f}%; real frames "
              f"{100 * np.mean(row['classifier_accuracy_real']):.1f}% / "
              f"{100 * np.mean(row['classifier_accuracy_real_colour_means']):.1f}%); per set "
              + " ".join(f"{100 * a:.1f}" for a in row["accuracy"]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"captions": args.captions, "sets": [c for c, _ in sets], "trials_per_caption":
                               args.trials, "trials_per_world": args.trials * 8 * len(sets), "results": results},
                              indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
