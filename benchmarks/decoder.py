"""Decoders compared on the same latents: reconstruction PSNR, SSIM and detail ratio of held-out frames, and the
time to decode 16 frames.

    python benchmarks/decoder.py runs/data/arena/chunk_00020.npz waypoint_gym/assets/default_world/autoencoder \
        runs/world_old/autoencoder

Every folder's decoder reads the latents of the first folder's encoder (the decoders under comparison share
it), so only the decoders differ. Frames: every 4th frame of each segment of the chunk. Timings alternate
between the decoders, so the machine's drift hits them alike. The detail ratio (mean Sobel gradient of the
reconstructions over the originals') rises with texture, drawn right or not; SSIM says whether it is in the
right place. Writes benchmarks/results/decoder.json, and with --image a comparison picture: 8 of the frames
over each decoder's reconstructions, a row per folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from waypoint_gym.engine import Autoencoder
from waypoint_gym.evaluation.fidelity import detail, ssim
from waypoint_gym.training.autoencoder import sample_strip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chunk", help="a collected chunk (.npz) of frames none of the decoders trained on")
    ap.add_argument("autoencoders", nargs="+", help="autoencoder folders; the first one's encoder is used")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/decoder.json")
    ap.add_argument("--image", default=None, help="a PNG path for the comparison picture")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frames = np.load(args.chunk)["frames"][:, ::4]  # [S, L/4, H, W, 3]
    frames = frames.reshape(-1, *frames.shape[2:])
    models = [Autoencoder.from_pretrained(folder) for folder in args.autoencoders]
    with torch.inference_mode():
        latents = torch.cat([models[0].encode(frames[i:i + 256]) for i in range(0, len(frames), 256)])
        recon = [np.concatenate([m.decode(latents[i:i + 256]) for i in range(0, len(latents), 256)]) for m in models]
        batch = latents[:16]
        times = [[] for _ in models]
        for _ in range(args.rounds):
            for m, t in zip(models, times):
                m.decode(batch)
                t0 = time.perf_counter()
                for _ in range(10):
                    m.decode(batch)
                t.append((time.perf_counter() - t0) / 10 * 1e3)
    rows = []
    for folder, m, r, t in zip(args.autoencoders, models, recon, times):
        c = m.decoder.config
        row = {"autoencoder": folder, "decoder": f"ch {c.ch_0}-{c.ch_max}, blocks {c.decoder_blocks_per_stage}",
               "decoder_params": sum(p.numel() for p in m.decoder.parameters()),
               "psnr_db": psnr(r, frames), "ssim": float(ssim(r, frames).mean()),
               "detail_ratio": float(detail(r).mean() / detail(frames).mean()),
               "ms_per_16_frames": statistics.median(t)}
        rows.append(row)
        print(f"{folder}: {row['decoder']}, {row['decoder_params']} params: {row['psnr_db']:.2f} dB, SSIM "
              f"{row['ssim']:.3f}, detail {row['detail_ratio']:.3f} on {len(frames)} frames, "
              f"{row['ms_per_16_frames']:.1f} ms / 16 frames")
    if args.image:
        shown = np.linspace(0, len(frames) - 1, 8).astype(np.int64)
        picture = sample_strip(*(f[shown] for f in [frames, *recon]))
        cv2.imwrite(args.image, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        print(f"saved {args.image}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"chunk": args.chunk, "frames": len(frames), "threads": args.threads, "rows": rows},
                              indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
