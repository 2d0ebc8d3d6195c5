"""What an arena world's one-step predictions look like in pixels, whatever its latent.

The ladder's arena rung scores a world in its own latent units, which cannot be compared across autoencoders.
This decodes the same one-step predictions (x0 at sigma 1 from the real past, fresh held-out arenas under random
keys and mouse) and scores them against the real frames: PSNR, and the detail ratio (the predictions' mean
Sobel gradient over the real frames', as `evaluate-world` reads it; a fog scores about 0.3). Beside them stand the
autoencoder's own reconstruction of the real next frame (the ceiling), the rung's action-blind blur (the mean
latent of the next frames under 8 other random actions) and the copy of the last frame, each decoded the same way.
Writes a PNG per world: the last real frame, the real next frame, its reconstruction, the prediction and the blur,
row by row for 8 held-out steps (each the third step of its segment).

    python studies/arena_frames.py runs/world --out runs/arena_frames       # a checkpoint folder (its autoencoder)
    python studies/arena_frames.py "runs/ladder/world-recipe_arena" --autoencoder runs/ae/autoencoder  # a ladder run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import ladder
import numpy as np
import torch

from waypoint_gym.engine import Autoencoder
from waypoint_gym.evaluation.fidelity import detail, psnr
from waypoint_gym.training.autoencoder import sample_strip


def decoded(ae: Autoencoder, latents: torch.Tensor | np.ndarray) -> np.ndarray:
    """Latents [n, F, C, h, w] -> uint8 frames [n, F, H, W, 3]."""
    flat = torch.as_tensor(np.asarray(latents)).float().flatten(0, 1)
    frames = np.concatenate([ae.decode(flat[i:i + 256]) for i in range(0, len(flat), 256)])
    return frames.reshape(*np.asarray(latents).shape[:2], *frames.shape[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("worlds", nargs="+", type=Path, help="checkpoint folders or ladder run folders")
    p.add_argument("--autoencoder", default=None, help="for ladder runs: the autoencoder of their latents")
    p.add_argument("--arena-data", default="runs/data/arena_s2")
    p.add_argument("--arena-latents", default="runs/latents_s2.npy", help="any latents of the recording")
    p.add_argument("--segments", type=int, default=128, help="held-out arena segments")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/arena_frames", help="folder for the PNGs and arena_frames.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for world in args.worlds:
        ae_folder = args.autoencoder or world / "autoencoder"
        ae = Autoencoder.from_pretrained(ae_folder)
        _, held_out = ladder.arena_rung(args.arena_data, args.arena_latents, 16, 1, args.segments, str(ae_folder))
        model, encoder, caption = ladder.load_world(world)
        with torch.no_grad():
            preds = ladder.one_step_predictions(model, encoder, held_out, ladder.ARENA_KEYS, caption=caption)
        F = preds.shape[1] + 1
        lat = held_out["latents"][:, :F]
        real = held_out["frames"][:, 1:F]
        rows = {"model": decoded(ae, preds), "reconstruction": decoded(ae, lat[:, 1:]),
                "blur": decoded(ae, held_out["blur"][:, 1:F]), "copy": decoded(ae, lat[:, :-1])}
        real_detail = detail(real).mean()
        scores = {name: {"psnr": float(psnr(frames, real).mean()), "detail": float(detail(frames).mean() / real_detail)}
                  for name, frames in rows.items()}
        results.append({"world": str(world), "autoencoder": str(ae_folder), **scores})
        print(world)
        for name, s in scores.items():
            print(f"  {name:15s} PSNR {s['psnr']:6.2f} dB, detail ratio {s['detail']:.3f}")
        pick, t = np.arange(8) * (len(real) // 8), F // 2 - 1  # 8 segments, each at a step with a few frames past
        shown = [held_out["frames"][pick, t], real[pick, t], rows["reconstruction"][pick, t], rows["model"][pick, t],
                 rows["blur"][pick, t]]
        strip = sample_strip(*[np.stack(list(r), 0) for r in zip(*shown)], scale=2)
        name = str(world).strip("/").replace("/", "_")
        cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    (out / "arena_frames.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
