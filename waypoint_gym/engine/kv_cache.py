"""The static rolling KV cache: one ring of frame slots per layer and per environment, allocated once.

A local layer's ring holds `local_window` frames; a global layer's ring holds every `global_pinned_dilation`-th
frame of the last `global_window`. Each ring has one extra tail slot that always holds the current frame.
Every environment keeps its own frame index, so batched environments may be at different points of
their episodes (format document, "The rolling KV cache").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import WaypointConfig


@dataclass
class RingGeometry:
    n_slots: int  # ring buckets, not counting the tail
    dilation: int


@dataclass
class FramePlan:
    """Where the current frame of each selected environment reads and writes, per ring kind."""

    env_ids: torch.Tensor | None  # [n] selected environments, None for all
    slot: dict[str, torch.Tensor]  # kind -> [n] ring slot of this frame's bucket
    write_step: dict[str, torch.Tensor]  # kind -> [n] bool: this frame is stored in that ring
    visible: dict[str, torch.Tensor]  # kind -> [n, n_slots + 1] bool, tail last and always True
    commit: bool  # store the frame (cache pass) or leave the ring frozen (denoising step)
    masks: dict = field(default_factory=dict)  # kind -> attention mask, built once per pass by the attention


def ring_geometry(cfg: WaypointConfig) -> dict[str, RingGeometry]:
    return {
        "local": RingGeometry(cfg.local_window, 1),
        "global": RingGeometry(cfg.global_window // cfg.global_pinned_dilation, cfg.global_pinned_dilation),
    }


def ring_position(t, g: RingGeometry):
    """The ring slot of frame t's bucket, and whether frame t is stored (a write step)."""
    bucket = (t + g.dilation - 1) // g.dilation
    return bucket % g.n_slots, t % g.dilation == 0


class KVCache(nn.Module):
    """Keys and values of past frames, [B, Hkv, (n_slots + 1) * T, Dh] per layer, plus per-env bookkeeping."""

    def __init__(self, cfg: WaypointConfig, batch_size: int, device=None, dtype=torch.float32):
        super().__init__()
        self.T = cfg.tokens_per_frame
        self.geometry = ring_geometry(cfg)
        self.kinds = ["global" if cfg.is_global(i) else "local" for i in range(cfg.n_layers)]
        for i, kind in enumerate(self.kinds):
            L = (self.geometry[kind].n_slots + 1) * self.T
            shape = (batch_size, cfg.n_kv_heads, L, cfg.head_dim)
            self.register_buffer(f"k{i}", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
            self.register_buffer(f"v{i}", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        for kind, g in self.geometry.items():
            written = torch.zeros(batch_size, g.n_slots, dtype=torch.bool, device=device)
            self.register_buffer(f"written_{kind}", written, persistent=False)
        self.register_buffer("frame", torch.zeros(batch_size, dtype=torch.long, device=device), persistent=False)
        self.attention = attention_sdpa

    @property
    def batch_size(self) -> int:
        return self.frame.shape[0]

    def reset(self, env_ids: torch.Tensor | None = None) -> None:
        """Forget the history of the given environments (all when None) and restart their frame index at 0.

        Their keys and values are zeroed too: a masked slot still enters attention with weight 0, and 0 * NaN
        would carry a non-finite past into the next episode."""
        sel = slice(None) if env_ids is None else env_ids
        self.frame[sel] = 0
        for kind in self.geometry:
            getattr(self, f"written_{kind}")[sel] = False
        for i in range(len(self.kinds)):
            getattr(self, f"k{i}")[sel] = 0
            getattr(self, f"v{i}")[sel] = 0

    def plan(self, env_ids: torch.Tensor | None, commit: bool) -> FramePlan:
        t = self.frame if env_ids is None else self.frame[env_ids]
        slot, write_step, visible = {}, {}, {}
        for kind, g in self.geometry.items():
            written = getattr(self, f"written_{kind}")
            written = written if env_ids is None else written[env_ids]
            slot[kind], write_step[kind] = ring_position(t, g)
            evicted = F.one_hot(slot[kind], g.n_slots).bool() & write_step[kind][:, None]
            tail = torch.ones_like(written[:, :1])
            visible[kind] = torch.cat([written & ~evicted, tail], dim=1)
        return FramePlan(env_ids, slot, write_step, visible, commit)

    def attend(self, layer: int, q, k, v, plan: FramePlan) -> torch.Tensor:
        """Attention of the current frame's queries over its own keys and the visible ring; stores k, v on commit.

        q [n, H, T, Dh]; k, v [n, Hkv, T, Dh] -> [n, H, T, Dh].
        """
        kind, T = self.kinds[layer], self.T
        n_slots = self.geometry[kind].n_slots
        k_buf, v_buf = getattr(self, f"k{layer}"), getattr(self, f"v{layer}")
        ids = plan.env_ids
        k_all = k_buf if ids is None else k_buf[ids]  # a gathered copy when only some envs step
        v_all = v_buf if ids is None else v_buf[ids]
        tail = slice(n_slots * T, (n_slots + 1) * T)
        k_all[:, :, tail] = k
        v_all[:, :, tail] = v
        out = self.attention(q, k_all, v_all, plan, kind, T)
        if plan.commit:
            self._store(k_buf, v_buf, k, v, plan, kind)
        return out

    def _store(self, k_buf, v_buf, k, v, plan: FramePlan, kind: str) -> None:
        """Write k, v into the frame's ring slot for the envs whose frame is a write step (static shapes)."""
        T, n = self.T, k.shape[0]
        rows = torch.arange(k_buf.shape[0], device=k.device) if plan.env_ids is None else plan.env_ids
        pos = plan.slot[kind][:, None] * T + torch.arange(T, device=k.device)  # [n, T]
        keep = plan.write_step[kind].view(n, 1, 1, 1)
        for buf, new in ((k_buf, k), (v_buf, v)):
            old = buf[rows[:, None], :, pos]  # [n, T, Hkv, Dh]
            buf[rows[:, None], :, pos] = torch.where(keep, new.transpose(1, 2), old)

    def advance(self, plan: FramePlan) -> None:
        """After a cache pass: mark the slots written and move the selected envs to their next frame."""
        sel = slice(None) if plan.env_ids is None else plan.env_ids
        for kind, g in self.geometry.items():
            written = getattr(self, f"written_{kind}")
            mark = F.one_hot(plan.slot[kind], g.n_slots).bool() & plan.write_step[kind][:, None]
            written[sel] = written[sel] | mark
        self.frame[sel] += 1


def attention_sdpa(q, k, v, plan: FramePlan, kind: str, T: int) -> torch.Tensor:
    """Masked SDPA over the ring: the visible slots [n, n_slots + 1] expand to a key mask [n, 1, 1, L]."""
    mask = plan.masks.get(kind)
    if mask is None:
        mask = plan.masks[kind] = plan.visible[kind].repeat_interleave(T, dim=1)[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


def frame_visibility(g: RingGeometry, n_frames: int) -> torch.Tensor:
    """[F, F] bool: which earlier frames the ring lets frame i see (and i itself), by replaying the ring."""
    held = [None] * g.n_slots  # the frame each slot holds
    visible = torch.zeros(n_frames, n_frames, dtype=torch.bool)
    for i in range(n_frames):
        slot, write = ring_position(i, g)
        for s, j in enumerate(held):
            if j is not None and not (write and s == slot):
                visible[i, j] = True
        visible[i, i] = True
        if write:
            held[slot] = i
    return visible


class FrameCausalMask:
    """Training's stand-in for the KV cache: a whole clip attends in one pass with the ring's visibility.

    Frame i's tokens see all tokens of frame i and those of the earlier frames its layer's ring would hold
    at inference (frames indexed from 0, as after a reset), so teacher-forced training and cached
    autoregressive inference compute the same function.
    """

    def __init__(self, cfg: WaypointConfig, n_frames: int, device=None):
        T = cfg.tokens_per_frame
        self.kinds = ["global" if cfg.is_global(i) else "local" for i in range(cfg.n_layers)]
        self.masks = {
            kind: frame_visibility(g, n_frames).repeat_interleave(T, 0).repeat_interleave(T, 1).to(device)
            for kind, g in ring_geometry(cfg).items()
        }  # kind -> [F*T, F*T]

    def attend(self, layer: int, q, k, v, plan=None) -> torch.Tensor:
        mask = self.masks[self.kinds[layer]]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


class CleanContextMask(FrameCausalMask):
    """Scoring every frame of a clip from clean context in one pass: clean frames 0..F-1, then noisy copies of 1..F-1.

    Clean frame i sees what the ring lets it see (as in `FrameCausalMask`); the noisy copy of frame i sees the
    clean frames the ring would hold when frame i is generated, and itself. So the noisy copy of frame i gets
    exactly what cached inference computes for frame i with the clean frames in the cache.
    """

    def __init__(self, cfg: WaypointConfig, n_frames: int, device=None):
        T, n = cfg.tokens_per_frame, n_frames
        self.kinds = ["global" if cfg.is_global(i) else "local" for i in range(cfg.n_layers)]
        self.masks = {}
        for kind, g in ring_geometry(cfg).items():
            vis = frame_visibility(g, n)  # [F, F]
            full = torch.zeros(2 * n - 1, 2 * n - 1, dtype=torch.bool)
            full[:n, :n] = vis
            full[n:, :n] = (vis & ~torch.eye(n, dtype=torch.bool))[1:]  # noisy i -> earlier clean frames
            full[n:, n:] = torch.eye(n - 1, dtype=torch.bool)
            self.masks[kind] = full.repeat_interleave(T, 0).repeat_interleave(T, 1).to(device)
