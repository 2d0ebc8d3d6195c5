"""Engine throughput: token-passes/s and frames/s by batch size and denoising steps, per-frame latency, and
step time early versus deep into one long episode.

    python benchmarks/engine.py                       # CPU, the waypoint-cpu-small preset, float32
    python benchmarks/engine.py --device cuda         # CUDA, the waypoint-1-small preset (2.3B), bf16, compiled

Models are built from presets with RANDOM weights: speed does not depend on the weights' values.
Token-passes/s counts denoising passes (batch x frames/s x tokens/frame x steps), the unit of the published
Waypoint-1-Small figure (~30,000 on an RTX 5090); every frame also takes one cache pass, not counted there.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from waypoint_gym.engine import WorldEngine


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_frames(eng: WorldEngine, n_frames: int) -> list[float]:
    """Seconds per generated frame (all envs at once), one sample per frame."""
    times = []
    for _ in range(n_frames):
        sync(eng.device)
        t0 = time.perf_counter()
        eng.gen_latent()
        sync(eng.device)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default=None, help="default: waypoint-cpu-small on CPU, waypoint-1-small on CUDA")
    ap.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    ap.add_argument("--steps", default="1,2,4")
    ap.add_argument("--frames", type=int, default=8, help="timed frames per setting (after warm-up)")
    ap.add_argument("--long-episode", type=int, default=10_000, help="frames of the long episode (0: skip)")
    ap.add_argument("--out", default="benchmarks/results/engine.json")
    args = ap.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    preset = args.preset or ("waypoint-1-small" if cuda else "waypoint-cpu-small")
    dtype = torch.bfloat16 if cuda else torch.float32
    uri = f"preset:{preset}"
    results = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "preset": preset, "dtype": str(dtype), "torch": torch.__version__,
        "settings": [], "long_episode": None,
    }
    print(f"{preset} on {results['device']} ({dtype}, {torch.get_num_threads()} threads), random weights")
    print(f"{'batch':>5} {'steps':>5} {'frame ms':>9} {'frames/s':>9} {'token-passes/s':>15}")
    for steps in [int(s) for s in args.steps.split(",")]:
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            eng = WorldEngine(uri, device=device, dtype=dtype, batch_size=batch, n_denoise_steps=steps, seed=0)
            T = eng.config.tokens_per_frame
            time_frames(eng, 3)  # warm-up (and compilation on CUDA)
            per_frame = statistics.median(time_frames(eng, args.frames))
            row = {
                "batch": batch, "steps": steps, "frame_ms": per_frame * 1e3, "frames_per_s": batch / per_frame,
                "token_passes_per_s": batch * T * steps / per_frame,
            }
            results["settings"].append(row)
            print(f"{batch:5d} {steps:5d} {row['frame_ms']:9.2f} {row['frames_per_s']:9.1f} "
                  f"{row['token_passes_per_s']:15,.0f}")
            del eng

    if args.long_episode:
        eng = WorldEngine(uri, device=device, dtype=dtype, batch_size=1, n_denoise_steps=1, seed=0)
        n, window = args.long_episode, 20
        early, late = [], []
        t0 = time.perf_counter()
        for frame in range(n):
            dt = time_frames(eng, 1)[0]
            if 10 <= frame < 10 + window:
                early.append(dt)
            if frame >= n - window:
                late.append(dt)
        total = time.perf_counter() - t0
        ep = {
            "frames": n, "steps": 1, "ms_at_frame_10": statistics.median(early) * 1e3,
            f"ms_at_frame_{n}": statistics.median(late) * 1e3, "late_over_early": statistics.median(late) /
            statistics.median(early), "total_s": total,
        }
        results["long_episode"] = ep
        print(f"one episode of {n} frames (1 step): {ep['ms_at_frame_10']:.2f} ms/frame at frame 10, "
              f"{ep[f'ms_at_frame_{n}']:.2f} ms at frame {n} (ratio {ep['late_over_early']:.2f})")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
