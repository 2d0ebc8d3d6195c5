"""Does a `last_frame_warp` world's flow follow the mouse? Its mean flow (x, latent pixels) over each held-out
arena frame, by how the step turns, on the ladder's arena rung.

    python studies/warp_flow_probe.py runs/world_warp_ft              # an exported checkpoint folder
    python studies/warp_flow_probe.py "runs/ladder/world-recipe+last_frame_warp=true_arena"  # a ladder run

A full mouse turn moves the arena's view about 2.6 latent pixels, so a flow that turns shifts by about that
much times the mouse's x, with one sign for each direction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ladder
import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world", type=Path)
    p.add_argument("--arena-data", default="runs/data/arena_s2")
    p.add_argument("--arena-latents", default="runs/latents_s2.npy")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, encoder, caption = ladder.load_world(args.world)
    if not model.cfg.last_frame_warp:
        raise SystemExit(f"{args.world} has no last_frame_warp")
    flows = []  # one per predicted frame f = 1, 2, ...: [n, (f + 1) * T, flow outputs per token]
    model.warp_flow.register_forward_hook(lambda module, inputs, out: flows.append(out.detach()))
    _, held_out = ladder.arena_rung(args.arena_data, args.arena_latents, 64, 2, 128)
    with torch.no_grad():
        ladder.one_step_predictions(model, encoder, held_out, ladder.ARENA_KEYS, caption=caption)
    T = model.cfg.tokens_per_frame
    flow_x = np.concatenate([o[:, -T:].unflatten(-1, (2, -1))[..., 0, :].mean((1, 2)).numpy() for o in flows])
    mouse_x = np.concatenate([held_out["mouse"][:, f + 1, 0] for f in range(len(flows))])
    print(f"{args.world}: mean |flow x| {np.abs(flow_x).mean():.3f} latent px, "
          f"correlation with mouse x {np.corrcoef(flow_x, mouse_x)[0, 1]:.2f}")
    for name, lo, hi in [("left", -1.01, -1 / 3), ("small", -1 / 3, 1 / 3), ("right", 1 / 3, 1.01)]:
        pick = (mouse_x >= lo) & (mouse_x < hi)
        print(f"  {name:5s} turns (mouse x in [{lo:.2f}, {hi:.2f})): {pick.sum():4d} frames, mean flow x "
              f"{flow_x[pick].mean():+.3f} (a turn: about {2.6 * mouse_x[pick].mean():+.2f} or its opposite)")


if __name__ == "__main__":
    main()
