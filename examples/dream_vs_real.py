"""Run the same agent in the dream and in the real game from the same start, and compare what each sees.

Both start on arena seed 3: the real game opens that map, the dream starts from its first frame. A scripted
turn-and-walk sequence is played in both; the script prints the mean return of each, the per-step PSNR of
dream against reality, and saves the two side by side as a PNG strip.

    python examples/dream_vs_real.py --steps 32 --out runs/examples/dream_vs_real.png
"""

import argparse
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

import waypoint_gym  # noqa: F401

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=32)
parser.add_argument("--out", default="runs/examples/dream_vs_real.png")
args = parser.parse_args()
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

real = gym.make("WaypointArena-v0")
dream = gym.make("Waypoint-v0")
prompt = "a mossy stone dungeon"
real_obs, _ = real.reset(seed=3, options={"prompt": prompt})
dream_obs, _ = dream.reset(seed=3, options={"prompt": prompt, "seed_frames": real_obs})

keys = list(real.unwrapped.keys)
pairs, returns = [(dream_obs, real_obs)], {"dream": 0.0, "real": 0.0}
for t in range(args.steps):
    action = {"keys": np.zeros(len(keys), np.int8), "mouse": np.zeros(2, np.float32)}
    if (t // 8) % 2 == 0:
        action["keys"][keys.index("W")] = 1  # walk for 8 steps, then turn right for 8
    else:
        action["mouse"][0] = 0.5
    real_obs, r_real, *_ = real.step(action)
    dream_obs, r_dream, *_ = dream.step(action)
    returns["real"] += r_real
    returns["dream"] += r_dream
    pairs.append((dream_obs, real_obs))

mse = [np.mean((d.astype(np.float64) - r) ** 2) for d, r in pairs[1:]]
psnr = [10 * np.log10(255**2 / max(m, 1e-10)) for m in mse]
print(f"returns: dream {returns['dream']:.2f}, real {returns['real']:.2f}")
print("PSNR of dream vs real by step (dB):", " ".join(f"{p:.1f}" for p in psnr[:: max(1, len(psnr) // 8)]))
shown = pairs[:: max(1, len(pairs) // 8)][:8]
strip = np.concatenate([np.concatenate([d for d, _ in shown], 1), np.concatenate([r for _, r in shown], 1)], 0)
big = cv2.resize(strip, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
if not cv2.imwrite(str(out), cv2.cvtColor(big, cv2.COLOR_RGB2BGR)):
    raise SystemExit(f"could not write {out}")
print("top: dream, bottom: real; saved to", out)
