"""Start dreams from your own frames and captions: the same seed frame under three prompts, side by side.

The seed frame here comes from the real game (WaypointArena-v0); any RGB image works (it is resized).

    python examples/seed_frames_and_prompts.py --steps 24 --out runs/examples/prompts.png
"""

import argparse
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

import waypoint_gym  # noqa: F401

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=24)
parser.add_argument("--out", default="runs/examples/prompts.png")
args = parser.parse_args()
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

prompts = ["a mossy stone dungeon", "a sunny desert canyon at noon", "a snowy ice cave at night"]
real = gym.make("WaypointArena-v0")
seed_frame, _ = real.reset(seed=7, options={"prompt": prompts[0]})

# Three dreamed worlds in one batched pass: the same seed frame, one prompt each, walking forward.
venv = gym.make_vec("Waypoint-v0", num_envs=3, vectorization_mode="vector_entry_point")
obs, info = venv.reset(seed=0, options={"prompt": prompts, "seed_frames": [seed_frame] * 3})
walk = {"keys": np.zeros((3, len(venv.unwrapped.keys)), np.int8), "mouse": np.tile([0.2, 0.0], (3, 1))}
walk["keys"][:, list(venv.unwrapped.keys).index("W")] = 1
rows = [[o] for o in obs]
for t in range(args.steps):
    obs, *_ = venv.step(walk)
    if (t + 1) % max(1, args.steps // 4) == 0:
        for row, o in zip(rows, obs):
            row.append(o)
venv.close()

for prompt, row in zip(prompts, rows):
    print(f"{prompt!r}: mean colour (RGB) of the last frame {np.round(row[-1].reshape(-1, 3).mean(0)).tolist()}")
grid = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
    raise SystemExit(f"could not write {out}")
print("rows: one prompt each, seed frame first; saved to", out)
