"""The toy ladder: how many training steps a world-model recipe needs to learn each kind of motion.

    python studies/ladder.py --recipe toy --rungs copy,keys_in_token --steps 1600
    python studies/ladder.py --recipe world-x0 --rungs all --steps 1600 --out studies/results/ladder_world-x0.json

A rung is a toy dynamic on latents of the recipe's own shape, from easy to hard: the view of a random
band-limited field (periodic, unit variance per channel) that is copied, shifted (inside a token or by a
whole token, always the same way, by keys, by a continuous mouse value, in 2-D) or zoomed, and last the
real game's own frames through the bundled autoencoder. A recipe is a model config plus training options
(`RECIPES`). Each rung trains the recipe from scratch with the project's own training loop and, every
`--eval-every` steps, measures the one-step x0 error from clean context at sigma 1 on held-out segments.

Every rung but the last is deterministic, so a perfect world scores 0. Beside the error stand two
baselines on the same frames: **blur**, the error of predicting the average of the possible next frames
(over the controls the world is not told; for a rung with no controls, the average frame, i.e. having
learnt nothing), and **copy**, the error of repeating the last frame. The figure a recipe is judged by is
the steps it needs to bring its error under 10% of the blur's. Where a zoom out brings in content the last
frame does not show, that content is masked out of all three errors.

The arena rung reads recorded play (`--arena-data`, `--arena-latents`, from `waypoint-gym train collect` and
`train encode`); its blur is the error of the mean of the real next frames under 8 random actions from the
same states of fresh arena worlds, encoded the same way.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine.config import WaypointConfig
from waypoint_gym.engine.controls import control_vectors, resolve_keys
from waypoint_gym.engine.kv_cache import FrameCausalMask
from waypoint_gym.engine.model import previous_frames
from waypoint_gym.training.world_model import WorldModelTraining, train_world_model

KEYS = ["W", "A", "S", "D"]
ARENA_LATENT = (4, 16, 16)  # the bundled autoencoder's latents of a 64x64 arena frame
ARENA_CAPTION = "a mossy stone dungeon"  # the arena's default prompt: the theme of the held-out arena worlds
ARENA_PATCH = 4  # the bundled world's token: 4x4 latent pixels
ARENA_KEYS = ["W", "A", "S", "D", "SPACE", "SHIFT"]  # the arena's keys, in its recordings' order
CAPTION = "a toy world"
BUNDLED_AUTOENCODER = str(Path(__file__).parents[1] / "waypoint_gym/assets/default_world/autoencoder")
SEGMENT_FRAMES = 8
CENTRE_BORDER = 3  # latent pixels: a full turn (0.2 rad of a 66-degree view) brings in 11 of 64 frame pixels
CLIP_FRAMES = 6

# Geometries: the tests' toy (2x2 tokens of 2x2x4 latents) and the bundled world's (4x4 tokens of 4x4x4).
TOY = dict(d_model=64, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=4, height=2, width=2,
           patch=(2, 2), tokens_per_frame=4, n_frames=32, local_window=4, global_window=4,
           global_pinned_dilation=2, global_attn_period=2, n_buttons=256, prompt_embedding_dim=32,
           prompt_conditioning_period=1, ctrl_conditioning_period=1, scheduler_sigmas=[1.0, 0.5, 0.0])
WORLD = dict(d_model=160, n_heads=5, n_kv_heads=5, n_layers=6, mlp_ratio=3, channels=4, height=4, width=4,
             patch=(4, 4), tokens_per_frame=16, n_frames=48, local_window=8, global_window=24,
             global_attn_period=3, global_pinned_dilation=4, value_residual=True, n_buttons=256,
             ctrl_conditioning_period=1, prompt_embedding_dim=64, prompt_conditioning_period=2,
             scheduler_sigmas=[1.0, 0.5, 0.0])
TOY_TRAINING = dict(batch_size=16, clip_frames=CLIP_FRAMES, lr=1e-3, warmup=50, ema_decay=0.99)
WORLD_TRAINING = dict(batch_size=16, clip_frames=CLIP_FRAMES, lr=4e-4, warmup=100, ema_decay=0.99)

RECIPES: dict[str, tuple[dict, dict]] = {
    "toy": (TOY, TOY_TRAINING),
    "toy-d256": ({**TOY, "d_model": 256}, TOY_TRAINING),
    "toy-x0": ({**TOY, "prediction": "x0"}, {**TOY_TRAINING, "loss": "x0"}),
    "toy-scale": ({**TOY, "attn_logit_scale": True}, TOY_TRAINING),
    "toy-x0-scale": ({**TOY, "prediction": "x0", "attn_logit_scale": True}, {**TOY_TRAINING, "loss": "x0"}),
    "toy-x0-gated": ({**TOY, "prediction": "x0", "ctrl_fusion": "gated"},
                     {**TOY_TRAINING, "loss": "x0", "clean_context_prob": 1.0}),
    # The bundled world's recipe: an x0 head, gated control fusion and a learned attention logit scale.
    "toy-recipe": ({**TOY, "prediction": "x0", "ctrl_fusion": "gated", "attn_logit_scale": True},
                   {**TOY_TRAINING, "loss": "x0", "clean_context_prob": 1.0}),
    "world": (WORLD, WORLD_TRAINING),
    "world-recipe": ({**WORLD, "prediction": "x0", "ctrl_fusion": "gated", "attn_logit_scale": True},
                     {**WORLD_TRAINING, "loss": "x0", "clean_context_prob": 1.0}),
    "world-x0-gated": ({**WORLD, "prediction": "x0", "ctrl_fusion": "gated"},
                       {**WORLD_TRAINING, "loss": "x0", "clean_context_prob": 1.0}),
    "world-scale": ({**WORLD, "attn_logit_scale": True}, WORLD_TRAINING),
    "world-x0-scale": ({**WORLD, "prediction": "x0", "attn_logit_scale": True}, {**WORLD_TRAINING, "loss": "x0"}),
    "world-x0": ({**WORLD, "prediction": "x0"}, {**WORLD_TRAINING, "loss": "x0"}),
    "world-d320": ({**WORLD, "d_model": 320}, WORLD_TRAINING),
    # The recipe at other token geometries: a wider stream, or four times as many tokens of 2x2 latent pixels.
    "world-recipe-d320": ({**WORLD, "d_model": 320, "prediction": "x0", "ctrl_fusion": "gated",
                           "attn_logit_scale": True}, {**WORLD_TRAINING, "loss": "x0", "clean_context_prob": 1.0}),
    "world-recipe-p2": ({**WORLD, "height": 8, "width": 8, "patch": (2, 2), "tokens_per_frame": 64,
                         "prediction": "x0", "ctrl_fusion": "gated", "attn_logit_scale": True},
                        {**WORLD_TRAINING, "loss": "x0", "clean_context_prob": 1.0}),
    "world-d320-x0": ({**WORLD, "d_model": 320, "prediction": "x0"}, {**WORLD_TRAINING, "loss": "x0"}),
}


# ---------------------------------------------------------------------------------------------- synthetic rungs


def random_fields(rng: np.random.Generator, n: int, channels: int, size: int):
    """n band-limited fields of period `size` on the plane, as cosine terms: (freqs [K, 2], amp and phase [n, C, K])."""
    k = np.arange(-(size // 2) + 1, size // 2)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    keep = (ky > 0) | ((ky == 0) & (kx >= 0))  # one of each +-k pair
    freqs = np.stack([kx[keep], ky[keep]], axis=1).astype(np.float64)  # [K, 2]
    amp = rng.normal(size=(n, channels, len(freqs))) / (1 + np.hypot(*freqs.T))
    amp /= np.sqrt((amp**2).sum(-1, keepdims=True) / 2)  # unit variance per channel
    phase = rng.uniform(0, 2 * np.pi, size=(n, channels, len(freqs)))
    return freqs, amp, phase


def view(fields, size: int, ox: np.ndarray, oy: np.ndarray, zoom: np.ndarray) -> np.ndarray:
    """The views [n, C, size, size] of each field at offsets ox, oy and zoom (> 1 magnifies) [n]."""
    freqs, amp, phase = fields
    u = np.arange(size) - (size - 1) / 2
    x = u[None, None, :] / zoom[:, None, None] + ox[:, None, None]  # [n, 1, size] (x varies along width)
    y = u[None, :, None] / zoom[:, None, None] + oy[:, None, None]  # [n, size, 1]
    arg = 2 * np.pi / size * (x[..., None] * freqs[:, 0] + y[..., None] * freqs[:, 1])  # [n, size, size, K]
    out = np.einsum("nck,nhwk->nchw", amp * np.cos(phase), np.cos(arg)) - np.einsum(
        "nck,nhwk->nchw", amp * np.sin(phase), np.sin(arg))
    return out.astype(np.float32)


def zoom_mask(size: int, zoom_before: np.ndarray, zoom_after: np.ndarray) -> np.ndarray:
    """[n, size, size] True where the next view shows what the last view showed (a zoom out brings in more)."""
    u = np.arange(size) - (size - 1) / 2
    half = ((size - 1) / 2 / zoom_before)[:, None]  # the last view's half extent, in field units
    inside = np.abs(u[None, :] / zoom_after[:, None]) <= half + 1e-9  # [n, size]
    return inside[:, :, None] & inside[:, None, :]


# Each rung: how a step moves the view. `motion(rng, n)` -> (keys [n, 4], mouse [n, 2]) drawn for a step;
# `move(state, keys, mouse)` -> the next state (ox, oy, zoom); `choices` the controls the blur averages over.
ZOOM_STEP, ZOOM_MAX = 1.2, 1.2**4


def key_choices(*names: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = [(np.zeros(4, np.uint8), np.zeros(2, np.float32))]
    for name in names:
        keys = np.zeros(4, np.uint8)
        keys[KEYS.index(name)] = 1
        out.append((keys, np.zeros(2, np.float32)))
    return out


def mouse_choices(dims: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    grid = (np.arange(n) + 0.5) / n * 2 - 1
    if dims == 1:
        return [(np.zeros(4, np.uint8), np.array([m, 0], np.float32)) for m in grid]
    return [(np.zeros(4, np.uint8), np.array([mx, my], np.float32)) for mx in grid for my in grid[::2]]


def rung_specs(patch: int) -> dict[str, dict]:
    """The synthetic rungs for tokens of `patch` latent pixels: (choices of controls, how a step moves)."""
    turn = 0.65 * patch  # a full mouse turn in the arena moves the view 0.64 of a token (10.3 px at 64 px)
    arena_turn = 0.65 * ARENA_PATCH  # the same in the arena's latent pixels, whatever the recipe's token size

    def shift_x(step):
        return lambda s, keys, mouse: (s[0] + step, s[1], s[2])

    def keyed(step):
        return lambda s, keys, mouse: (s[0] + step * (keys[:, 3].astype(float) - keys[:, 1]), s[1], s[2])

    def zoom(s, keys, mouse):
        z = s[2] * np.where(keys[:, 0] == 1, ZOOM_STEP, 1.0) / np.where(keys[:, 2] == 1, ZOOM_STEP, 1.0)
        return s[0], s[1], np.clip(z, 1.0, ZOOM_MAX)

    return {
        "copy": dict(choices=None, move=lambda s, keys, mouse: s),
        "shift_in_token": dict(choices=None, move=shift_x(1.0)),
        "shift_token": dict(choices=None, move=shift_x(float(patch))),
        "keys_in_token": dict(choices=key_choices("A", "D"), move=keyed(1.0)),
        "keys_token": dict(choices=key_choices("A", "D"), move=keyed(float(patch))),
        "mouse": dict(choices=mouse_choices(1, 16),
                      move=lambda s, keys, mouse: (s[0] + turn * mouse[:, 0], s[1], s[2])),
        "mouse_arena": dict(choices=mouse_choices(1, 16),
                            move=lambda s, keys, mouse: (s[0] + arena_turn * mouse[:, 0], s[1], s[2])),
        "mouse_2d": dict(choices=mouse_choices(2, 8),
                         move=lambda s, keys, mouse: (s[0] + turn * mouse[:, 0], s[1] + turn * mouse[:, 1], s[2])),
        "zoom": dict(choices=key_choices("W", "S"), move=zoom),
    }


def synthetic_rung(name: str, cfg: WaypointConfig, n: int, seed: int) -> dict:
    """n segments of SEGMENT_FRAMES frames of a synthetic rung, with masks and the blur and copy predictions."""
    rng = np.random.default_rng(seed)
    C, size = cfg.channels, cfg.height * cfg.patch[0]
    if cfg.width * cfg.patch[1] != size:
        raise ValueError("the synthetic rungs need square latents")
    spec = rung_specs(cfg.patch[1])[name]
    fields = random_fields(rng, n, C, size)
    L = SEGMENT_FRAMES
    state = (rng.uniform(0, size, n), rng.uniform(0, size, n), np.ones(n))
    if name == "zoom":
        state = (state[0], state[1], ZOOM_STEP ** rng.integers(0, 5, n).astype(float))
    keys = np.zeros((n, L, 4), np.uint8)
    mouse = np.zeros((n, L, 2), np.float32)
    lat = np.zeros((n, L, C, size, size), np.float32)
    blur = np.zeros_like(lat)
    mask = np.ones((n, L, size, size), bool)
    lat[:, 0] = view(fields, size, *state)
    for t in range(1, L):
        if spec["choices"] is not None:
            pick = rng.integers(0, len(spec["choices"]), n)
            if name.startswith("mouse"):  # continuous: any value, not only the grid the blur averages over
                dims = 2 if name == "mouse_2d" else 1
                mouse[:, t, :dims] = rng.uniform(-1, 1, (n, dims))
            else:
                keys[:, t] = np.stack([spec["choices"][i][0] for i in pick])
            options = [view(fields, size, *spec["move"](state, np.tile(k, (n, 1)), np.tile(m, (n, 1))))
                       for k, m in spec["choices"]]
            blur[:, t] = np.mean(options, axis=0)
        new = spec["move"](state, keys[:, t], mouse[:, t])
        lat[:, t] = view(fields, size, *new)
        if name == "zoom":
            mask[:, t] = zoom_mask(size, state[2], new[2])
        state = new
    if spec["choices"] is None:
        blur[:] = 0.0  # no controls: the average frame, what a world that learnt nothing predicts
    return dict(latents=lat, keys=keys, mouse=mouse, prompt=np.array([CAPTION] * n), length=np.full(n, L),
                mask=mask, blur=blur)


# ---------------------------------------------------------------------------------------------- the arena rung


def arena_rung(data_dir: str, latents: str, n: int, seed: int, eval_segments: int,
               autoencoder: str = BUNDLED_AUTOENCODER, actions: str = "uniform") -> tuple[dict, dict]:
    """Recorded arena play (train) and fresh arena segments with the blur of 8 other actions (held out), encoded
    by `autoencoder` (the one that encoded `latents`); the held-out frames themselves are kept too.

    `actions` draws the held-out play: "uniform" (each key held 30% of the time, both mouse axes uniform) or
    "recording" (the recording's own exploration policy, its settings read from the collection's meta.json; the
    blur then averages 8 actions that policy might take next from the same state, so it knows the play's momentum
    and only the action itself is hidden)."""
    from waypoint_gym.engine import Autoencoder
    from waypoint_gym.training.collect import ExplorationPolicy
    from waypoint_gym.training.data import read_meta, world_model_data
    from waypoint_gym.worlds.arena import ArenaBatch

    if actions not in ("uniform", "recording"):
        raise ValueError(f"actions must be 'uniform' or 'recording', got {actions!r}")

    data, keys, _ = world_model_data(data_dir, latents)
    if list(keys) != ARENA_KEYS[: len(keys)]:
        raise ValueError(f"the arena rung expects the arena's keys, got {keys}")
    train = {k: np.asarray(v)[:n] for k, v in data.items()}
    train["latents"] = np.asarray(data["latents"][:n])[:, :SEGMENT_FRAMES]
    train["keys"], train["mouse"] = train["keys"][:, :SEGMENT_FRAMES], train["mouse"][:, :SEGMENT_FRAMES]
    train["length"] = np.minimum(train["length"], SEGMENT_FRAMES)
    train["prompt"] = np.array([CAPTION] * len(train["length"]))

    ae = Autoencoder.from_pretrained(autoencoder)
    rng = np.random.default_rng(seed)
    m, L, K = eval_segments, SEGMENT_FRAMES, 8
    world = ArenaBatch(m, keys=keys)
    _, info = world.reset(seed=[int(s) for s in rng.integers(0, 2**31, m)])
    n_keys = len(keys)
    if actions == "recording":  # the collection's own settings; what it did not set keeps the policy's default
        meta = read_meta(data_dir)
        settings = {**({"seek_prob": meta["seek_prob"]} if "seek_prob" in meta else {}), **meta.get("policy", {})}
        policy = ExplorationPolicy(m, keys, rng, **settings)

    def random_action(size):
        pressed = (rng.random((size, n_keys)) < 0.3).astype(np.uint8)
        return pressed, rng.uniform(-1, 1, (size, 2)).astype(np.float32)

    def other_action():  # an action the held-out play might have taken instead
        if actions == "uniform":
            return random_action(m)
        other = copy.deepcopy(policy)
        other.rng = np.random.default_rng(rng.integers(2**63))
        return other.act(info)

    frames = np.zeros((m, L, 64, 64, 3), np.uint8)
    blur_frames = np.zeros((m, L, K, 64, 64, 3), np.uint8)
    k_all = np.zeros((m, L, n_keys), np.uint8)
    m_all = np.zeros((m, L, 2), np.float32)
    frames[:, 0] = world.render()
    for t in range(1, L):
        for j in range(K):  # the same state under other random actions
            other = copy.deepcopy(world)
            blur_frames[:, t, j] = other.step(*other_action())[0]
        k_all[:, t], m_all[:, t] = random_action(m) if actions == "uniform" else policy.act(info)
        frames[:, t], *_, info = world.step(k_all[:, t], m_all[:, t])

    def encode(f):  # [..., 64, 64, 3] -> latents [..., C, h, w]
        flat = f.reshape(-1, *f.shape[-3:])
        out = np.concatenate([ae.encode(flat[i: i + 256]).float().numpy() for i in range(0, len(flat), 256)])
        return out.reshape(*f.shape[:-3], *out.shape[1:])

    lat = encode(frames)
    blur = encode(blur_frames).mean(axis=2)
    blur[:, 0] = lat[:, 0]
    held_out = dict(latents=lat, keys=k_all, mouse=m_all, prompt=np.array([CAPTION] * m), length=np.full(m, L),
                    mask=np.ones((m, L, *lat.shape[-2:]), bool), blur=blur, frames=frames)
    return train, held_out


# ---------------------------------------------------------------------------------------------- evaluation


def load_world(folder: Path):
    """(model, caption encoder, caption) of a checkpoint folder or of a ladder run's EMA weights."""
    from waypoint_gym.engine.model import WaypointModel
    from waypoint_gym.engine.prompt import CaptionEncoder
    from waypoint_gym.training.export import load_teacher

    if (folder / "train_state.pt").exists():
        state = torch.load(folder / "train_state.pt", weights_only=True, map_location="cpu")
        cfg = WaypointConfig(**json.loads((folder / "config.json").read_text())["model"])
        model = WaypointModel(cfg)
        model.load_state_dict(state["ema"])
        encoder = CaptionEncoder.for_captions([CAPTION], cfg.prompt_embedding_dim)
        encoder.load_state_dict(state["encoder"])
        return model.eval(), encoder.eval(), CAPTION
    model, encoder = load_teacher(folder)
    return model.eval(), encoder.eval(), ARENA_CAPTION


def latent_detail(x: torch.Tensor, w: torch.Tensor) -> float:
    """Summed absolute differences between neighbouring latent pixels [n, C, h, w] where the mask w [n, 1, h, w]
    holds on both: how much edge a frame has (a blur has less than the frame it blurs)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs() * w[..., :, 1:] * w[..., :, :-1]
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs() * w[..., 1:, :] * w[..., :-1, :]
    return (dx.sum() + dy.sum()).item()


@torch.no_grad()
def one_step_predictions(model, encoder, held_out: dict, keys: list[str], seed: int = 1,
                         caption: str = CAPTION) -> torch.Tensor:
    """The model's x0 at sigma 1 from clean context for every frame after the first: [n, F - 1, C, h, w]."""
    cfg = model.cfg
    lat = torch.as_tensor(held_out["latents"][:, :CLIP_FRAMES])
    n = lat.shape[0]
    ctrl = torch.as_tensor(control_vectors(held_out["keys"][:, :CLIP_FRAMES], held_out["mouse"][:, :CLIP_FRAMES],
                                           resolve_keys(keys, cfg.n_buttons)[1], cfg.n_buttons))
    ctrl[:, 0] = 0
    emb, _ = encoder([caption] * n)
    last = previous_frames(lat)  # each frame's clean last frame (read by last_frame_warp)
    g = torch.Generator().manual_seed(seed)
    preds = []
    for f in range(1, CLIP_FRAMES):
        x = lat[:, : f + 1].clone()
        x[:, f] = torch.randn(x[:, f].shape, generator=g)
        sigma = torch.zeros(n, f + 1)
        sigma[:, f] = 1.0
        t = torch.arange(f + 1).expand(n, -1)
        v = model(x, sigma, t, ctrl[:, : f + 1], emb, cache=FrameCausalMask(cfg, f + 1, "cpu"),
                  last_frame=last[:, : f + 1])
        preds.append(x[:, f] - v[:, f])
    return torch.stack(preds, 1)


def one_step_scores(preds: torch.Tensor, held_out: dict, pick: np.ndarray | None = None) -> dict:
    """Masked x0 errors of the one-step predictions [n, F - 1, C, h, w], the blur and the copy; and the detail
    ratio of the predictions and of the blur (their latent edges over the true frames'). `pick` [n, frames]
    (bool) scores only the frames it marks."""
    lat = torch.as_tensor(held_out["latents"][:, :CLIP_FRAMES])
    mask = torch.as_tensor(held_out["mask"][:, :CLIP_FRAMES])[:, :, None].float()  # [n, F, 1, h, w]
    if pick is not None:
        mask = mask * torch.as_tensor(pick[:, :CLIP_FRAMES], dtype=torch.float32)[:, :, None, None, None]
    blur = torch.as_tensor(held_out["blur"][:, :CLIP_FRAMES])
    channels = lat.shape[2]
    sq = {"model": [], "blur": [], "copy": []}
    edges = {"model": 0.0, "blur": 0.0, "true": 0.0}
    for f in range(1, CLIP_FRAMES):
        w = mask[:, f]
        if not w.any():
            continue
        for name, pred in (("model", preds[:, f - 1]), ("blur", blur[:, f]), ("copy", lat[:, f - 1])):
            sq[name].append(((pred - lat[:, f]) ** 2 * w).sum().item() / (w.sum().item() * channels))
        for name, frame in (("model", preds[:, f - 1]), ("blur", blur[:, f]), ("true", lat[:, f])):
            edges[name] += latent_detail(frame, w)
    return {**{k: float(np.mean(v)) for k, v in sq.items()},
            "detail": edges["model"] / edges["true"], "blur_detail": edges["blur"] / edges["true"]}


def score_line(errs: dict) -> str:
    return (f"error {errs['model']:.4f} (blur {errs['blur']:.4f}, copy {errs['copy']:.4f}), "
            f"detail {errs['detail']:.3f} (blur {errs['blur_detail']:.3f})")


def parse_overrides(items: list[str] | None) -> dict:
    """['d_model=256', 'loss=x0'] -> {'d_model': 256, 'loss': 'x0'} (values read as YAML scalars)."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in items or [])}


def recipe_parts(name: str) -> tuple[dict, dict]:
    """A recipe name, optionally with overrides: 'toy-x0+d_model=256+clean_context_prob=1.0'."""
    base, *items = name.split("+")
    cfg_over, tc_over = RECIPES[base]
    fields = WaypointConfig.__dataclass_fields__
    over = parse_overrides(items)
    return ({**cfg_over, **{k: v for k, v in over.items() if k in fields}},
            {**tc_over, **{k: v for k, v in over.items() if k not in fields}})


def run_rung(rung: str, recipe: str, steps: int, eval_every: int, out_dir: Path, args) -> dict:
    cfg_over, tc_over = recipe_parts(recipe)
    cfg = WaypointConfig(**cfg_over)
    if rung == "arena":
        if cfg.latent_shape != ARENA_LATENT:
            print(f"  {recipe}: no arena rung, its latents are {cfg.latent_shape}, the arena's {ARENA_LATENT}")
            return None
        train, held_out = arena_rung(args.arena_data, args.arena_latents, args.segments, args.seed + 1, 128,
                                    args.arena_autoencoder, args.arena_actions)
        keys = ARENA_KEYS
    else:
        train = synthetic_rung(rung, cfg, args.segments, args.seed)
        held_out = synthetic_rung(rung, cfg, 128, args.seed + 1)
        keys = KEYS
    tc = WorldModelTraining(**{"clean_context_prob": 0.5, **tc_over, "steps": steps, "ckpt_every": eval_every,
                               "log_every": eval_every, "seed": args.seed})
    curve, reached = [], None
    t0 = time.time()

    def evaluate(step, ema, encoder):
        nonlocal reached
        errs = one_step_scores(one_step_predictions(ema, encoder, held_out, keys), held_out)
        curve.append({"step": step, "error": errs["model"], "detail": round(errs["detail"], 4),
                      "s": round(time.time() - t0, 1)})
        if reached is None and errs["model"] < 0.1 * errs["blur"]:
            reached = step
        print(f"  {recipe} {rung} step {step}: {score_line(errs)}", flush=True)
        baselines.update(blur=errs["blur"], copy=errs["copy"], blur_detail=errs["blur_detail"])
        return reached is not None and args.stop_early

    baselines: dict = {}
    run = out_dir / f"{recipe}_{rung}"
    if run.exists():
        for p in run.iterdir():
            p.unlink()
    train_world_model(train, keys, [CAPTION], run, cfg, tc, on_checkpoint=evaluate)
    return {"rung": rung, "recipe": recipe, **({"arena_actions": args.arena_actions} if rung == "arena" else {}),
            **baselines, "final_error": curve[-1]["error"],
            "steps_to_10pct_of_blur": reached, "curve": curve, "seconds": round(time.time() - t0, 1)}


ALL_RUNGS = ["copy", "shift_in_token", "shift_token", "keys_in_token", "keys_token", "mouse", "mouse_arena",
             "mouse_2d", "zoom",
             "arena"]


def markdown_table(results: list[dict]) -> str:
    """One row per rung: its blur and copy baselines, then each recipe's final error and steps to 10% of blur."""
    results = [r for r in results if "recipe" in r]  # scored checkpoints have no curve
    recipes = list(dict.fromkeys(r["recipe"] for r in results))
    rungs = [r for r in ALL_RUNGS if any(x["rung"] == r for x in results)]

    def cell(r: dict) -> str:
        reached = r["steps_to_10pct_of_blur"] or f"not in {r['curve'][-1]['step']}"
        return f"{r['final_error']:.3f} / {reached}"

    lines = ["| rung | blur | copy | " + " | ".join(f"{n}: error / steps to 10%" for n in recipes) + " |",
             "|" + "---|" * (3 + len(recipes))]
    for rung in rungs:
        got = {r["recipe"]: r for r in results if r["rung"] == rung}
        first = next(iter(got.values()))
        cells = " | ".join(cell(got[n]) if n in got else "-" for n in recipes)
        lines.append(f"| {rung} | {first['blur']:.3f} | {first['copy']:.3f} | {cells} |")
    return "\n".join(lines)


def score_checkpoints(folders: list[str], args) -> list[dict]:
    """Trained arena worlds (checkpoint folders) on the arena rung: the long runs on the ladder's scale."""
    from waypoint_gym.training.export import load_teacher

    _, held_out = arena_rung(args.arena_data, args.arena_latents, args.segments, args.seed + 1, 128,
                             args.arena_autoencoder, args.arena_actions)
    centre_only = without_border(held_out, CENTRE_BORDER)
    out = []
    for folder in folders:
        model, encoder = load_teacher(folder)
        if model.cfg.latent_shape != ARENA_LATENT:
            raise ValueError(f"{folder}: latents {model.cfg.latent_shape}, the arena's are {ARENA_LATENT}")
        preds = one_step_predictions(model.eval(), encoder.eval(), held_out, ARENA_KEYS, caption=ARENA_CAPTION)
        errs, centre = one_step_scores(preds, held_out), one_step_scores(preds, centre_only)
        print(f"  {folder} arena: {score_line(errs)}; centre {centre['model']:.4f} (blur {centre['blur']:.4f})")
        by_motion = {}
        for name, pick in motion_bins(held_out).items():
            if not pick[:, 1:CLIP_FRAMES].any():  # e.g. no step tilts in play like the recording's
                continue
            e, c = one_step_scores(preds, held_out, pick), one_step_scores(preds, centre_only, pick)
            by_motion[name] = {"frames": int(pick[:, 1:CLIP_FRAMES].sum()), "error": e["model"], "blur": e["blur"],
                               "copy": e["copy"], "detail": e["detail"], "blur_detail": e["blur_detail"],
                               "centre_error": c["model"], "centre_blur": c["blur"], "centre_copy": c["copy"]}
            print(f"    {name}: {score_line(e)}; centre {c['model']:.4f} (blur {c['blur']:.4f})")
        out.append({"rung": "arena", "arena_actions": args.arena_actions, "checkpoint": folder,
                    "blur": errs["blur"], "copy": errs["copy"], "error": errs["model"],
                    "detail": errs["detail"], "blur_detail": errs["blur_detail"],
                    "centre_error": centre["model"], "centre_blur": centre["blur"], "centre_copy": centre["copy"],
                    "by_motion": by_motion})
    return out


def without_border(held_out: dict, border: int) -> dict:
    """The held-out clips with `border` latent pixels on every side masked out: the part of each frame that a step
    of the arena's motion keeps in view, so its error leaves out content a turn or a walk brings in at the edges
    (which the blur, rendered by the game itself, knows and no world can)."""
    mask = held_out["mask"].copy()
    mask[..., :border, :] = mask[..., -border:, :] = False
    mask[..., :border] = mask[..., -border:] = False
    return {**held_out, "mask": mask}


def motion_bins(held_out: dict) -> dict[str, np.ndarray]:
    """The arena rung's frames split by how far their step turns (|mouse x|, in thirds), whether it walks (W), and
    whether its action is like the recording's: the held-out actions are uniform (the mouse's y as wide as its x,
    each key held 30% of the time) where the recorded play tilts little (mouse y std 0.10) and seldom holds A, S,
    D or SPACE (6-7%), so most held-out steps ask for motion the training data hardly shows."""
    turn = np.abs(held_out["mouse"][..., 0])
    walk = held_out["keys"][..., ARENA_KEYS.index("W")] == 1
    tilt = np.abs(held_out["mouse"][..., 1])
    rare_keys = held_out["keys"][..., [ARENA_KEYS.index(k) for k in ("A", "S", "D", "SPACE")]].any(-1)
    return {"turn < 1/3": turn < 1 / 3, "turn 1/3-2/3": (turn >= 1 / 3) & (turn < 2 / 3), "turn > 2/3": turn >= 2 / 3,
            "walking (W)": walk, "not walking": ~walk, "like the recording (|y| < 0.25, no A/S/D/SPACE)":
            (tilt < 0.25) & ~rare_keys, "tilting (|y| >= 0.5)": tilt >= 0.5}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", action="append",
                   help=f"recipe(s) to run (repeat): {', '.join(RECIPES)}, each optionally with +field=value "
                        "overrides of its config or training options, e.g. toy-x0+d_model=256")
    p.add_argument("--rungs", default="all", help=f"comma-separated, or 'all': {','.join(ALL_RUNGS)}")
    p.add_argument("--steps", type=int, default=1600, help="training steps per rung at most")
    p.add_argument("--eval-every", type=int, default=200, help="steps between evaluations")
    p.add_argument("--segments", type=int, default=1024, help="training segments per rung")
    p.add_argument("--stop-early", action="store_true", help="stop a rung once under 10%% of its blur")
    p.add_argument("--arena-data", default="runs/data/arena", help="recorded play (for the arena rung)")
    p.add_argument("--arena-latents", default="runs/latents.npy", help="its cached latents")
    p.add_argument("--arena-autoencoder", default=BUNDLED_AUTOENCODER,
                   help="the autoencoder that encoded them (default: the bundled world's)")
    p.add_argument("--arena-actions", choices=("uniform", "recording"), default="uniform",
                   help="the arena rung's held-out play: uniform actions, or the recording's exploration policy")
    p.add_argument("--score", action="append",
                   help="instead of training: a trained arena world's checkpoint folder to score on the arena rung "
                        "(repeat); results go to --out")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default studies/results/ladder.json)")
    p.add_argument("--table", action="store_true", help="print the JSON's results as a markdown table and stop")
    args = p.parse_args()
    if args.table:
        print(markdown_table(json.loads(Path(args.out or "studies/results/ladder.json").read_text())))
        return
    torch.set_num_threads(args.threads)
    recipes = args.recipe or ["toy"]
    for name in recipes:
        recipe_parts(name)  # unknown recipes fail before any training
    rungs = ALL_RUNGS if args.rungs == "all" else args.rungs.split(",")
    out = Path(args.out or "studies/results/ladder.json")
    results = json.loads(out.read_text()) if out.exists() else []
    if args.score:
        results = [r for r in results if r.get("checkpoint") not in args.score] + score_checkpoints(args.score, args)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
        return
    for recipe in recipes:
        for rung in rungs:
            res = run_rung(rung, recipe, args.steps, args.eval_every, Path("runs/ladder"), args)
            if res is None:
                continue
            res["config"], res["training"] = recipe_parts(recipe)
            results = [r for r in results if (r["rung"], r.get("recipe")) != (rung, recipe)] + [res]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1))
    print(f"\n{'recipe':<16}{'rung':<16}{'blur':>8}{'copy':>8}{'final':>8}{'steps to 10%':>14}")
    for r in (r for r in results if "recipe" in r):
        print(f"{r['recipe']:<16}{r['rung']:<16}{r['blur']:8.4f}{r['copy']:8.4f}{r['final_error']:8.4f}"
              f"{str(r['steps_to_10pct_of_blur']):>14}")


if __name__ == "__main__":
    main()
