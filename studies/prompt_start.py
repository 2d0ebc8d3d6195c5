"""Does an env episode under a prompt show that prompt's world? Two starts compared on the same seeds.

    python studies/prompt_start.py                      # validation captions (3 sets of 8)
    python studies/prompt_start.py --captions evaluation  # the 8 captions of evaluate-world

"start frame": the checkpoint's start_frames.npy given as seed frames (what every episode without seed frames
did before 2026-11-29); "from prompt": no seed frames, so episodes under a prompt other than the default one
open from a frame generated from the prompt alone. Each caption runs `--episodes` episodes of 32 steps of
`action_space.sample()` actions in a WaypointVectorEnv; the theme classifier of `evaluate-world`, fitted on
real worlds of the same captions, labels frames 1-8 and 25-32. Validation captions are drawn from the grammar
without the evaluation's, as in the prompt guidance sweep of docs/lab/2026-11-29-prompt-guidance.md. Writes
studies/results/prompt_start_{validation,evaluation}.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.envs import WaypointVectorEnv
from waypoint_gym.envs.world_batch import START_FRAMES_FILE
from waypoint_gym.evaluation import (
    DEFAULT_CAPTIONS,
    EVAL_SEED,
    ThemeClassifier,
    theme_clips,
    validation_captions,
)

VALIDATION_SEED = 2_000_000
WINDOWS = {"frames 1-8": slice(0, 8), "frames 25-32": slice(24, 32)}


def caption_sets(which: str) -> list[tuple[list[str], int]]:
    """(captions, world seed) sets: the evaluation's 8, or 3 validation sets of 8 outside them."""
    if which == "evaluation":
        return [(list(DEFAULT_CAPTIONS), EVAL_SEED)]
    return [(captions, VALIDATION_SEED + 1000 * k) for k, captions in enumerate(validation_captions(3, seed=7))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the bundled world)")
    ap.add_argument("--captions", choices=["validation", "evaluation"], default="validation")
    ap.add_argument("--episodes", type=int, default=2, help="episodes per caption and start")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="default: studies/results/prompt_start_<captions>.json")
    args = ap.parse_args()
    args.out = args.out or f"studies/results/prompt_start_{args.captions}.json"
    torch.set_num_threads(args.threads)
    sets = caption_sets(args.captions)
    venv = WaypointVectorEnv(num_envs=len(sets[0][0]), model=args.model)
    start = np.load(Path(venv.engine.folder) / START_FRAMES_FILE)
    results = {}
    for mode in ("start frame", "from prompt"):
        hits, episodes = dict.fromkeys(WINDOWS, 0), 0
        for captions, seed in sets:
            real, labels = theme_clips(captions, 8, seed)
            classifier = ThemeClassifier(captions).fit(real, labels)
            for episode in range(args.episodes):
                options = {"prompt": captions}
                if mode == "start frame":
                    options["seed_frames"] = [start] * len(captions)
                venv.reset(seed=seed + 100 * episode, options=options)
                venv.action_space.seed(seed + episode)
                clips = np.stack([venv.step(venv.action_space.sample())[0] for _ in range(32)], 1)
                for name, window in WINDOWS.items():
                    hits[name] += int((classifier.predict(clips[:, window]) == np.arange(len(captions))).sum())
                episodes += len(captions)
        results[mode] = {name: hit / episodes for name, hit in hits.items()} | {"episodes": episodes}
        print(mode, {k: round(v, 3) for k, v in results[mode].items()}, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    report = {"captions": args.captions, "caption_sets": [c for c, _ in sets], "model": args.model or "bundled",
              "episodes_per_caption": args.episodes, "results": results}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
