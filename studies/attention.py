"""How sharply can a world's self-attention pick one key? Per layer and head, on teacher-forced clips.

    python studies/attention.py --data runs/data/arena12 --latents runs/latents.npy \
        waypoint_gym/assets/default_world runs/world_dh80

The format normalises q and k per head (rms) before the dot product, so an attention logit is at most
sqrt(head_dim): 5.66 at the bundled world's 32, which caps how much weight one key can take among the
~128 a frame sees. For the last frame of `--clips` recorded clips of `--frames` frames, predicted from the
clean frames before it at each `--sigmas` noise level, this reports per layer and head the mean over its
queries of the largest weight and the largest logit, and the share of queries whose largest logit is above
0.8 of the cap. Writes studies/results/attention.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine.kv_cache import FrameCausalMask
from waypoint_gym.training.data import ClipSampler, world_model_data
from waypoint_gym.training.export import load_teacher


class RecordingMask(FrameCausalMask):
    """The training pass's frame-causal mask, attending in plain softmax and keeping the last frame's weights."""

    def __init__(self, cfg, n_frames: int):
        super().__init__(cfg, n_frames)
        self.T, self.records = cfg.tokens_per_frame, {}

    def attend(self, layer: int, q, k, v, plan=None) -> torch.Tensor:
        mask = self.masks[self.kinds[layer]]
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # GQA
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
        logits = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).masked_fill(~mask, float("-inf"))
        weights = logits.softmax(-1)
        last = slice(q.shape[2] - self.T, q.shape[2])  # queries of the predicted frame: [B, H, T, keys]
        self.records[layer] = (logits[:, :, last].amax(-1), weights[:, :, last].amax(-1), int(mask[-1].sum()))
        return weights @ v


@torch.no_grad()
def sharpness(world: str, data: dict, keys: list[str], captions: list[str], frames: int, clips: int,
              sigmas: list[float]) -> dict:
    model, encoder = load_teacher(world, captions)
    cfg = model.cfg
    cap = cfg.head_dim ** 0.5
    x0, ctrl, prompts = ClipSampler(data, keys, cfg, frames, 1, "cpu").sample(clips)
    emb, _ = encoder(prompts)
    t = torch.arange(frames).expand(clips, -1)
    noise = torch.randn(x0[:, -1].shape, generator=torch.Generator().manual_seed(0))  # the same at every sigma
    out = {"head_dim": cfg.head_dim, "n_heads": cfg.n_heads, "logit_cap": cap, "by_sigma": {}}
    for s in sigmas:
        x = x0.clone()
        x[:, -1] = (1 - s) * x0[:, -1] + s * noise
        sigma = torch.zeros(clips, frames)
        sigma[:, -1] = s
        mask = RecordingMask(cfg, frames)
        model(x, sigma, t, ctrl, emb, cache=mask)
        layers = []
        for layer in range(cfg.n_layers):
            logit, weight, n_keys = mask.records[layer]
            layers.append({"visible_keys": n_keys, "max_weight": weight.mean((0, 2)).tolist(),
                           "max_logit": logit.mean((0, 2)).tolist(),
                           "share_near_cap": (logit > 0.8 * cap).float().mean((0, 2)).tolist()})
        out["by_sigma"][str(s)] = {"layers": layers,
                                   "mean_max_weight": float(np.mean([np.mean(r["max_weight"]) for r in layers]))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("worlds", nargs="+", help="checkpoint folders")
    ap.add_argument("--data", required=True, help="a collection folder")
    ap.add_argument("--latents", required=True, help="its cached latents")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 0.5])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="studies/results/attention.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, keys, captions = world_model_data(args.data, args.latents)
    results = {}
    for world in args.worlds:
        r = results[world] = sharpness(world, data, keys, captions, args.frames, args.clips, args.sigmas)
        print(f"{world}: head_dim {r['head_dim']} x {r['n_heads']} heads, logit cap {r['logit_cap']:.2f}")
        for s, by in r["by_sigma"].items():
            print(f"  sigma {s}: largest weight per query, mean over heads and layers {by['mean_max_weight']:.3f}")
            for i, layer in enumerate(by["layers"]):
                print(f"    layer {i} ({layer['visible_keys']} keys): max weight "
                      + " ".join(f"{w:.2f}" for w in layer["max_weight"]) + "; max logit "
                      + " ".join(f"{v:.2f}" for v in layer["max_logit"]) + "; share near the cap "
                      + " ".join(f"{v:.2f}" for v in layer["share_near_cap"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"data": args.data, "frames": args.frames, "clips": args.clips,
                                          "results": results}, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
