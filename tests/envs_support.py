"""Small checkpoints of RANDOM weights for the environment tests, and a toy prompt encoder.

The worlds these make generate noise, not a game: they check wiring, shapes and determinism only.
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine import WaypointConfig, random_checkpoint

TINY = dict(
    d_model=64, n_heads=2, n_kv_heads=1, n_layers=2, mlp_ratio=2, channels=4, height=4, width=4, patch=(2, 2),
    tokens_per_frame=16, n_frames=64, local_window=4, global_window=8, global_pinned_dilation=2,
    global_attn_period=2, n_buttons=256, prompt_conditioning=None,
)
PROMPT_DIM = 32


def tiny_checkpoint(folder: Path, image_size: tuple[int, int] | None = (32, 32), **overrides) -> Path:
    """A 2-layer, 64-wide world with latents 4x8x8 and (unless image_size is None) a random autoencoder."""
    return random_checkpoint(folder, WaypointConfig(**{**TINY, **overrides}), seed=0, image_size=image_size)


def prompt_checkpoint(folder: Path) -> Path:
    """A tiny world with prompt cross-attention in every layer; its encoder is missing (use ToyPromptEncoder)."""
    return tiny_checkpoint(
        folder, prompt_conditioning="cross_attention", prompt_conditioning_period=1,
        prompt_embedding_dim=PROMPT_DIM, prompt_encoder_uri="./no-such-encoder",
    )


class ToyPromptEncoder:
    """texts -> (embedding [N, 3, PROMPT_DIM], pad [N, 3]): a fixed random embedding per text (crc32 seed)."""

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        embs = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal((3, PROMPT_DIM)) for t in texts]
        return torch.tensor(np.stack(embs), dtype=torch.float32), torch.zeros(len(texts), 3, dtype=torch.bool)


@contextmanager
def torch_threads(n: int):
    """Run with n torch threads: the tiny models are all overhead, and 2 threads fight on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_action(actions: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Env i's action out of a batched Dict action."""
    return {k: v[i] for k, v in actions.items()}
