"""Waypoint-1.5 beside Waypoint-1 in one run: engine token-passes/s and frames/s, env steps/s for 1 and 16 envs,
and TAEHV encode and decode milliseconds per 4 frames.

    python benchmarks/waypoint15.py                 # CPU: the CPU-sized presets of both families, float32
    python benchmarks/waypoint15.py --quick         # fewer timed steps
    python benchmarks/waypoint15.py --device cuda --worlds waypoint-1-small:360x640,waypoint-1.5-360p:360x640 \
        --taehv-sizes 360x640,720x1280           # the published sizes on a GPU (bf16)

Every world is built from a preset with RANDOM weights (and a random autoencoder of its kind) in a temporary
folder: speed does not depend on the weights' values. A Waypoint-1 step makes one video frame; a Waypoint-1.5
step (one action, one latent frame) makes 4, so frames/s counts video frames: latent frames/s x frames per latent.
Token-passes/s counts denoising passes (envs x latent frames/s x tokens/frame x steps), as benchmarks/engine.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine import WorldEngine, random_checkpoint
from waypoint_gym.engine.taehv import random_taehv
from waypoint_gym.envs import WaypointVectorEnv

# preset:HxW of its video (Waypoint-1: the random autoencoder's image size; 1.5: what TAEHV makes of the latent)
DEFAULT_WORLDS = "waypoint-cpu-small:64x64,waypoint-1.5-cpu:64x128"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n: int, device: torch.device) -> float:
    """Median seconds of `fn()` over n calls."""
    times = []
    for _ in range(n):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def bench_world(folder: Path, envs: int, device, dtype, steps: int) -> dict:
    """Engine and env throughput of one world at `envs` environments."""
    eng = WorldEngine(folder, device=device, dtype=dtype, batch_size=envs, seed=0)
    k, cfg = eng.frames_per_latent, eng.config
    eng.gen_frame()  # warm-up (and TAEHV's first-decode warm-up)
    latent_s = timed(eng.gen_latent, steps, device)
    frame_s = timed(eng.gen_frame, steps, device)
    del eng
    env = WaypointVectorEnv(envs, model=folder, device=device, dtype="bfloat16" if device.type == "cuda" else
                            "float32")
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps + 1)]
    env.reset(seed=0)
    env.step(actions[0])
    it = iter(actions[1:])
    step_s = timed(lambda: env.step(next(it)), steps, device)
    env.close()
    steps_per_s = envs / step_s
    return {
        "envs": envs, "tokens_per_frame": cfg.tokens_per_frame, "frames_per_latent": k,
        "token_passes_per_s": envs * cfg.tokens_per_frame * (len(cfg.scheduler_sigmas) - 1) / latent_s,
        "latent_frames_per_s": envs / latent_s,
        "video_frames_per_s": envs * k / frame_s,  # generated and decoded (engine gen_frame)
        "env_steps_per_s": steps_per_s,
        "env_video_frames_per_s": steps_per_s * k,
    }


def bench_taehv(video: tuple[int, int], device, dtype, rounds: int) -> dict:
    """TAEHV ms per 4 frames (one env): encode, decode, and the first decode after a reset (4 passes)."""
    auto = video in ((720, 1280), (360, 640))
    ae = random_taehv(auto_aspect_ratio=auto).to(device, dtype)
    frames = np.random.default_rng(0).integers(0, 256, (4, *video, 3), dtype=np.uint8)
    with torch.inference_mode():
        z = ae.encode(frames)
        encode = timed(lambda: ae.encode(frames), rounds, device)

        def first_decode():
            ae.reset()
            ae.decode(z)

        warmup = timed(first_decode, max(1, rounds // 2), device)
        decode = timed(lambda: ae.decode(z), rounds, device)
    return {"video": list(video), "working_size": list(ae.working_size(video)), "latent": list(z.shape),
            "encode_ms_per_4_frames": encode * 1e3, "decode_ms_per_4_frames": decode * 1e3,
            "first_decode_ms": warmup * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worlds", default=DEFAULT_WORLDS, help="comma-separated preset:HxW")
    ap.add_argument("--envs", default="1,16")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per setting (median)")
    ap.add_argument("--taehv-sizes", default="64x128,360x640")
    ap.add_argument("--quick", action="store_true", help="3 timed steps per setting")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default="benchmarks/results/waypoint15.json")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    steps = 3 if args.quick else args.steps
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    results = {"device": name, "threads": torch.get_num_threads(), "dtype": str(dtype), "torch": torch.__version__,
               "timed_steps": steps, "weights": "RANDOM", "worlds": [], "taehv": []}
    print(f"on {name} ({dtype}, {torch.get_num_threads()} threads), random weights")
    print(f"{'world':>20} {'envs':>4} {'token-passes/s':>15} {'latent f/s':>11} {'video f/s':>10} "
          f"{'env steps/s':>12} {'env video f/s':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.worlds.split(","):
            preset, hw = spec.split(":")
            folder = random_checkpoint(Path(tmp) / preset, preset, seed=0, image_size=size(hw))
            for envs in (int(e) for e in args.envs.split(",")):
                row = {"world": preset, "video": list(size(hw)), **bench_world(folder, envs, device, dtype, steps)}
                results["worlds"].append(row)
                print(f"{preset:>20} {envs:4d} {row['token_passes_per_s']:15.0f} {row['latent_frames_per_s']:11.1f} "
                      f"{row['video_frames_per_s']:10.1f} {row['env_steps_per_s']:12.1f} "
                      f"{row['env_video_frames_per_s']:14.1f}")
    for hw in args.taehv_sizes.split(","):
        row = bench_taehv(size(hw), device, dtype, rounds=max(3, steps))
        results["taehv"].append(row)
        print(f"TAEHV {hw} (works at {row['working_size'][0]}x{row['working_size'][1]}): encode "
              f"{row['encode_ms_per_4_frames']:.1f} ms, decode {row['decode_ms_per_4_frames']:.1f} ms per 4 frames; "
              f"first decode after a reset {row['first_decode_ms']:.1f} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
