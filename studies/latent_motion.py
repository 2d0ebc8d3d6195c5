"""Whether an autoencoder's latent moves when the frame moves: what a world model must predict in it.

Two measurements for each autoencoder folder given:

- **Equivariance**: held-out arena frames shifted right by 1, 2, 4 and 8 pixels and encoded, against their
  latent moved by the same fraction of the frame (bilinear). The latent change a shift makes, and the part of it
  that moving the latent does not explain (both the mean squared difference per latent value, over the latent
  columns the shift leaves inside the frame). A latent that a turn moves scores a small share; one that a turn
  redraws scores near 1.
- **Oracle shifts on the ladder's arena rung**: its held-out steps (random keys and mouse) predicted by the last
  latent moved by the best of a grid of shifts (-4..4 latent pixels across, -3..3 down), the grid point chosen
  with the true next frame in hand: the error that a perfect pure-shift world could reach, beside the rung's copy
  and its action-blind blur (the mean of the next frames under 8 other random actions). Split into steps that
  walk or strafe (a key of W, A, S, D held) and steps that only turn.

    python studies/latent_motion.py waypoint_gym/assets/default_world/autoencoder runs/ae_eq1/autoencoder
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ladder import ARENA_KEYS, arena_rung

from waypoint_gym.engine import Autoencoder
from waypoint_gym.evaluation.fidelity import detail, psnr
from waypoint_gym.worlds.arena import ArenaBatch


def move(z: torch.Tensor, dx: torch.Tensor | float, dy: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Latents [n, C, h, w] moved right by dx and down by dy latent pixels (bilinear, edges repeated)."""
    n, _, h, w = z.shape
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * torch.as_tensor(dx, dtype=torch.float32) / w
    theta[:, 1, 2] = -2 * torch.as_tensor(dy, dtype=torch.float32) / h
    grid = F.affine_grid(theta, list(z.shape), align_corners=False)
    return F.grid_sample(z, grid, mode="bilinear", padding_mode="border", align_corners=False)


def shift_right(frames: np.ndarray, px: int) -> np.ndarray:
    """uint8 frames [n, H, W, 3] moved right by px pixels, the left edge column repeated."""
    out = np.roll(frames, px, axis=2)
    out[:, :, :px] = out[:, :, px:px + 1]
    return out


def arena_frames(n: int, seed: int) -> np.ndarray:
    """n held-out arena frames: the first 6 steps of n / 6 fresh arenas under random keys and mouse."""
    rng = np.random.default_rng(seed)
    worlds = n // 6
    game = ArenaBatch(worlds, keys=ARENA_KEYS)
    game.reset(seed=[int(s) for s in rng.integers(0, 2**31, worlds)])
    frames = [game.render()]
    for _ in range(5):
        pressed = (rng.random((worlds, len(ARENA_KEYS))) < 0.3).astype(np.uint8)
        frames.append(game.step(pressed, rng.uniform(-1, 1, (worlds, 2)).astype(np.float32))[0])
    return np.concatenate(frames)


@torch.no_grad()
def reconstruction(ae: Autoencoder, frames: np.ndarray) -> dict:
    """What the latent keeps: PSNR of the frames through the autoencoder, and their detail ratio (the
    reconstructions' mean Sobel gradient over the real frames', as `evaluate-world` reads it)."""
    out = np.concatenate([ae.decode(ae.encode(frames[i:i + 256])) for i in range(0, len(frames), 256)])
    return {"psnr": float(psnr(out, frames).mean()), "detail": float(detail(out).mean() / detail(frames).mean())}


@torch.no_grad()
def equivariance(ae: Autoencoder, frames: np.ndarray) -> list[dict]:
    z = ae.encode(frames).float()  # [n, C, h, w]
    scale = frames.shape[2] // z.shape[-1]  # image pixels per latent pixel
    rows = []
    for px in (1, 2, 4, 8):
        shifted = ae.encode(shift_right(frames, px)).float()
        keep = slice(-(-px // scale) + 1, None)  # latent columns whose source lies inside the frame
        change = (shifted - z)[..., keep].pow(2).mean().item()
        unexplained = (shifted - move(z, px / scale))[..., keep].pow(2).mean().item()
        rows.append({"pixels": px, "latent_change": change, "unexplained": unexplained,
                     "share_unexplained": unexplained / change})
    return rows


@torch.no_grad()
def oracle_shifts(held_out: dict) -> dict:
    lat = torch.as_tensor(held_out["latents"]).float()  # [m, L, C, h, w]
    prev, nxt = lat[:, :-1].flatten(0, 1), lat[:, 1:].flatten(0, 1)
    blur = torch.as_tensor(held_out["blur"][:, 1:]).float().flatten(0, 1)
    moving = torch.as_tensor(held_out["keys"][:, 1:, :4].reshape(len(prev), 4).any(axis=1))

    def err(a):
        return (a - nxt).pow(2).mean(dim=(1, 2, 3))

    best = torch.full((len(prev),), float("inf"))
    for dx in np.arange(-4, 4.01, 0.25):
        for dy in np.arange(-3, 3.01, 0.5):
            best = torch.minimum(best, err(move(prev, float(dx), float(dy))))
    out = {}
    for name, pick in (("all", torch.ones_like(moving)), ("walking or strafing", moving), ("turning only", ~moving)):
        out[name] = {"steps": int(pick.sum()), "copy": err(prev)[pick].mean().item(),
                     "blur": err(blur)[pick].mean().item(), "best_shift": best[pick].mean().item()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("autoencoders", nargs="+", help="autoencoder folders")
    p.add_argument("--arena-data", default="runs/data/arena_s2", help="recorded play (only its keys are read)")
    p.add_argument("--arena-latents", default="runs/latents_s2.npy", help="its latents (any autoencoder's)")
    p.add_argument("--frames", type=int, default=384, help="held-out frames for the equivariance")
    p.add_argument("--segments", type=int, default=64, help="held-out arena segments for the oracle shifts")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="studies/results/latent_motion.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames = arena_frames(args.frames, seed=3)
    results = []
    for folder in args.autoencoders:
        ae = Autoencoder.from_pretrained(folder)
        _, held_out = arena_rung(args.arena_data, args.arena_latents, 16, 12345, args.segments, folder)
        res = {"autoencoder": folder, "latent_shape": [ae.latent_channels, *ae.latent_size],
               "reconstruction": reconstruction(ae, frames), "equivariance": equivariance(ae, frames),
               "oracle": oracle_shifts(held_out)}
        results.append(res)
        print(f"{folder}: latent {res['latent_shape']}, reconstruction PSNR {res['reconstruction']['psnr']:.2f} dB, "
              f"detail ratio {res['reconstruction']['detail']:.3f}")
        for r in res["equivariance"]:
            print(f"  shift {r['pixels']} px: latent change {r['latent_change']:.4f}, not explained by moving the "
                  f"latent {r['unexplained']:.4f} ({r['share_unexplained']:.2f})")
        for name, r in res["oracle"].items():
            print(f"  {name} ({r['steps']} steps): copy {r['copy']:.4f}, blur {r['blur']:.4f}, "
                  f"best shift {r['best_shift']:.4f} ({r['best_shift'] / r['blur']:.2f} of the blur)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
