"""Inference speed-ups, each a patch over the plain model that tests check against the plain path.

- fused QKV: one matmul for q, k and v (the three weights become views of one tensor);
- cached conditioning: the AdaLN modulations of every block for each sigma of the schedule, computed once;
- split controller fusion: the control half of the fusion MLP's first layer computed once per frame;
- flex attention: block masks over the ring instead of a dense key mask (CUDA);
- torch.compile of the denoising and cache passes (CUDA by default): inductor, in mode "max-autotune" on CUDA and
  "default" elsewhere unless `compile_mode` names one; `compile_backend` picks another backend (e.g. "aot_eager",
  which traces the same full graphs without generating code: a fast check on a CPU that they compile).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MethodType

import torch
import torch.nn.functional as F

from .kv_cache import FramePlan
from .model import Conditioning, SelfAttention, WaypointModel


@dataclass
class Speedups:
    fused_qkv: bool = True
    cached_conditioning: bool = True
    split_ctrl_fusion: bool = True
    attention: str = "auto"  # "sdpa", "flex", or "auto": flex on CUDA, masked SDPA elsewhere
    compile: bool | None = None  # None: on for CUDA, off for CPU
    compile_mode: str | None = None  # inductor's mode; None: "max-autotune" on CUDA, "default" elsewhere
    compile_backend: str = "inductor"

    @classmethod
    def plain(cls) -> Speedups:
        """Every optimisation off: the readable reference path."""
        return cls(False, False, False, "sdpa", False)

    def resolved(self, device: torch.device) -> Speedups:
        cuda = device.type == "cuda"
        attention = ("flex" if cuda else "sdpa") if self.attention == "auto" else self.attention
        if attention not in ("sdpa", "flex"):
            raise ValueError(f"attention must be 'sdpa', 'flex' or 'auto', got {self.attention!r}")
        compile = cuda if self.compile is None else bool(self.compile)
        mode = self.compile_mode
        if self.compile_backend != "inductor" and mode is not None:
            raise ValueError(f"compile_mode {mode!r} is inductor's; backend {self.compile_backend!r} takes none")
        if self.compile_backend == "inductor" and mode is None:
            mode = "max-autotune" if cuda else "default"
        return Speedups(self.fused_qkv, self.cached_conditioning, self.split_ctrl_fusion, attention, compile, mode,
                        self.compile_backend)

    def compiled(self, fn):
        """`fn` compiled as these settings say (one full graph, static shapes), or `fn` itself without compile."""
        if not self.compile:
            return fn
        if self.compile_backend == "inductor":
            return torch.compile(fn, fullgraph=True, mode=self.compile_mode, dynamic=False)
        return torch.compile(fn, fullgraph=True, backend=self.compile_backend, dynamic=False)


def _fused_qkv(self: SelfAttention, h: torch.Tensor):
    return F.linear(h, self.qkv_weight).split(self.qkv_sizes, dim=-1)


def fuse_qkv(model: WaypointModel) -> None:
    """Concatenate q/k/v weights into one [Dq + 2 Dkv, D] matrix; the three Linear weights become views of it."""
    for blk in model.transformer.blocks:
        attn = blk.attn
        ws = [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]
        fused = torch.cat([w.detach() for w in ws], dim=0)
        attn.register_buffer("qkv_weight", fused, persistent=False)
        attn.qkv_sizes = [w.shape[0] for w in ws]
        for lin, part in zip((attn.q_proj, attn.k_proj, attn.v_proj), fused.split(attn.qkv_sizes, dim=0)):
            lin.weight = torch.nn.Parameter(part, requires_grad=False)
        attn.qkv = MethodType(_fused_qkv, attn)


def split_ctrl_fusion(model: WaypointModel) -> None:
    for blk in model.transformer.blocks:
        if hasattr(blk, "ctrl_mlpfusion"):
            blk.ctrl_mlpfusion.split = True


@torch.no_grad()
def conditioning_table(model: WaypointModel, sigmas: list[float]) -> dict[float, Conditioning]:
    """sigma -> the modulations for one environment ([1, 1, 6, D] per block); expand over the batch at use."""
    device = model.out_norm.fc.weight.device
    return {s: model.conditioning(torch.tensor([[s]], device=device)) for s in sorted(set(sigmas))}


def attention_flex(q, k, v, plan: FramePlan, kind: str, T: int) -> torch.Tensor:
    """Flex attention with a block mask built once per pass from each env's visible ring slots."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    block_mask = plan.masks.get(kind)
    if block_mask is None:
        visible = plan.visible[kind]  # [n, n_slots + 1]

        def mask_mod(b, h, q_idx, kv_idx):
            return visible[b, kv_idx // T]

        block_mask = create_block_mask(
            mask_mod, B=visible.shape[0], H=None, Q_LEN=q.shape[2], KV_LEN=k.shape[2], device=q.device
        )
        plan.masks[kind] = block_mask
    return flex_attention(q, k, v, block_mask=block_mask, enable_gqa=q.shape[1] != k.shape[1])
