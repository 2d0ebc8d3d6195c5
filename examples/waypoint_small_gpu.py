"""The published Waypoint-1-Small (2.3B parameters) from the Hugging Face hub, on a CUDA GPU, as a Gymnasium env.

Needs a CUDA GPU with about 10 GB free and network access to the hub (set HF_TOKEN if the repo asks for it).
`--model` may instead name a local folder in the Waypoint checkpoint layout (config.yaml, model.safetensors,
an autoencoder); `--device cpu` runs a small such folder on a CPU.

    python examples/waypoint_small_gpu.py --steps 60 --out runs/examples/waypoint_small.mp4
"""

import argparse
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import torch

import waypoint_gym  # noqa: F401

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="Overworld/Waypoint-1-Small")
parser.add_argument("--device", default="cuda")
parser.add_argument("--prompt", default="a medieval village street at sunset")
parser.add_argument("--steps", type=int, default=60)
parser.add_argument("--out", default="runs/examples/waypoint_small.mp4")
args = parser.parse_args()
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)

if args.device.startswith("cuda") and not torch.cuda.is_available():
    raise SystemExit("this example needs a CUDA GPU (or --device cpu with a small local --model folder)")
dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
env = gym.make("Waypoint-v0", model=args.model, device=args.device, dtype=dtype, prompt=args.prompt,
               render_mode="rgb_array", timing=True)
obs, info = env.reset(seed=0)
writer, times = None, []
for t in range(args.steps):
    action = env.action_space.sample()
    action["keys"][:] = 0
    action["keys"][list(env.unwrapped.keys).index("W")] = 1  # walk forward, looking around with the mouse
    action["mouse"] = np.array([0.3 * np.sin(t / 10), 0.0], np.float32)
    obs, reward, terminated, truncated, info = env.step(action)
    times.append(info["step_time"])
    frame = env.render()
    if writer is None:
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30, frame.shape[1::-1])
        if not writer.isOpened():
            raise SystemExit(f"could not open {out} for writing (OpenCV's mp4v writer)")
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
writer.release()
env.close()
steady = times[len(times) // 4:]
print(f"{args.steps} frames at {1 / np.mean(steady):.1f} frames/s (after warm-up), saved to {out}")
