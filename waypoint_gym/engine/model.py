"""The Waypoint world model: a frame-causal diffusion transformer that predicts one frame's flow velocity.

Read top to bottom in the order data meets the modules (format document, "Forward pass" steps 1-5):
tokens -> noise embedding -> control embedding -> blocks (self-attention over the KV cache, prompt
cross-attention, controller fusion, MLP, all modulated by the noise level) -> output head.
This is the plain path; `speedups.py` patches it for speed and is checked against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import WaypointConfig
from .kv_cache import FrameCausalMask, FramePlan, KVCache

# An x0-predicting head's velocity (x - x0) / sigma is read only at sigma > 0; the cache pass at sigma 0
# divides by this instead, and its output is discarded.
X0_MIN_SIGMA = 1e-3


def rms(x: torch.Tensor) -> torch.Tensor:
    """RMS norm over the last dim, no weight, eps = the dtype's machine epsilon."""
    return F.rms_norm(x, (x.shape[-1],))


class MLP(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden, bias=False)
        self.fc2 = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(x)))


class Embedder(nn.Module):
    """An MLP under the name `mlp`, the layout of `denoise_step_emb` and `ctrl_emb` in the file."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.mlp = MLP(d_in, d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class NullEmbedding(nn.Module):
    """The classifier-free-guidance null embedding of a conditioning (trained, unused at inference)."""

    def __init__(self, dim: int):
        super().__init__()
        self.null_emb = nn.Parameter(torch.zeros(1, 1, dim))


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """frames [B, F, C, H, W] sampled (bilinear, edges repeated) at each pixel plus flow [B, F, 2, H, W] (x, y in
    pixels): out[..., i, j] = frames[..., i + flow_y, j + flow_x]."""
    B, n, C, H, W = frames.shape
    ys = (torch.arange(H, device=flow.device, dtype=flow.dtype) + 0.5) * (2 / H) - 1  # pixel centres in [-1, 1]
    xs = (torch.arange(W, device=flow.device, dtype=flow.dtype) + 0.5) * (2 / W) - 1
    grid = torch.stack([xs[None, :] + flow[:, :, 0] * (2 / W), ys[:, None] + flow[:, :, 1] * (2 / H)], -1)
    out = F.grid_sample(frames.flatten(0, 1), grid.flatten(0, 1), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.view(B, n, C, H, W)


def previous_frames(frames: torch.Tensor) -> torch.Tensor:
    """[B, F, C, H, W] -> the frame before each one, zeros before the first: a sequence's `last_frame`."""
    return torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], 1)


def sigma_features(sigma: torch.Tensor) -> torch.Tensor:
    """[B] noise levels -> [B, 512] sinusoidal features, in float32."""
    s = sigma.float()[:, None] * 1000
    freqs = torch.logspace(0, -1, 256, base=10000.0, device=sigma.device, dtype=torch.float32)
    return math.sqrt(2) * torch.cat([torch.sin(s * freqs), torch.cos(s * freqs)], dim=-1)


# ---------------------------------------------------------------------------------------------- RoPE


def spatial_angles(cfg: WaypointConfig, device=None) -> torch.Tensor:
    """[T, Dh/4] float64 angles of the x then y halves of the ortho RoPE, token order y*width + x."""
    n = cfg.head_dim // 16
    max_f = cfg.rope_nyquist_frac * min(cfg.height, cfg.width)
    w = math.pi * torch.linspace(1, max_f / 2, n, dtype=torch.float64, device=device)
    px = torch.linspace(-1 + 1 / cfg.width, 1 - 1 / cfg.width, cfg.width, dtype=torch.float64, device=device)
    py = torch.linspace(-1 + 1 / cfg.height, 1 - 1 / cfg.height, cfg.height, dtype=torch.float64, device=device)
    ax = (px[:, None] * w).repeat_interleave(2, dim=-1)  # [W, Dh/8]
    ay = (py[:, None] * w).repeat_interleave(2, dim=-1)  # [H, Dh/8]
    ax = ax[None, :, :].expand(cfg.height, -1, -1)
    ay = ay[:, None, :].expand(-1, cfg.width, -1)
    return torch.cat([ax, ay], dim=-1).reshape(cfg.tokens_per_frame, -1)


def temporal_angles(cfg: WaypointConfig, t: torch.Tensor) -> torch.Tensor:
    """[B] frame indices -> [B, Dh/4] float64 angles; exact for any index, not only t < n_frames.

    The RoPE time is t * cfg.rope_time_step (Waypoint-1.5's second clock; 1 for every published config)."""
    n = cfg.head_dim // 8
    u = cfg.rope_theta ** (-2 * torch.arange(n, dtype=torch.float64, device=t.device) / (cfg.head_dim // 4))
    return (t.to(torch.float64)[:, None] * cfg.rope_time_step * u).repeat_interleave(2, dim=-1)


def rope_tables(cfg: WaypointConfig, spatial: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [B, 1, F*T, Dh/2] in float32 for frame indices t [B, F]."""
    B, n_frames = t.shape
    T = cfg.tokens_per_frame
    spatial = spatial.to(t.device)[None, None].expand(B, n_frames, -1, -1)  # [B, F, T, Dh/4]
    temporal = temporal_angles(cfg, t.flatten()).view(B, n_frames, 1, -1).expand(-1, -1, T, -1)
    ang = torch.cat([spatial, temporal], dim=-1).flatten(1, 2)  # [B, F*T, Dh/2]
    return ang.cos().float()[:, None], ang.sin().float()[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2j], x[2j+1]) by angle j; lay out as concat(all firsts, all seconds). x: [B, H, T, Dh]."""
    xf = x.float()
    a, b = xf[..., 0::2], xf[..., 1::2]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1).to(x.dtype)


# ---------------------------------------------------------------------------------------------- blocks


@dataclass
class FrameInputs:
    """Everything a block needs besides x, computed once per forward pass."""

    rope: tuple[torch.Tensor, torch.Tensor]  # cos, sin [B, 1, N, Dh/2]
    ctrl: torch.Tensor | None  # [B, 1|N, D] control embedding (per frame, repeated per token for sequences)
    prompt: torch.Tensor | None  # [B, P, Dp] rms-normed prompt embedding
    prompt_mask: torch.Tensor | None  # [B, 1, 1, P] rows that exist for each env, None when all do
    plan: FramePlan | None  # which ring slots each env sees and writes
    cache: KVCache | FrameCausalMask | None  # the KV cache at inference, the frame-causal mask in training
    last_frame: torch.Tensor | None = None  # [B, 1|F, C, H, W] each frame's previous clean latent (last_frame_warp)


def attention(q, k, v, mask) -> torch.Tensor:
    """Softmax attention with GQA. q [B, H, Tq, Dh]; k, v [B, Hkv, L, Dh]; mask bool [B, 1, Tq|1, L] or None."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


class SelfAttention(nn.Module):
    def __init__(self, cfg: WaypointConfig, layer: int):
        super().__init__()
        D, Dh = cfg.d_model, cfg.head_dim
        self.layer, self.n_heads, self.n_kv_heads, self.head_dim = layer, cfg.n_heads, cfg.n_kv_heads, Dh
        self.q_proj = nn.Linear(D, D, bias=False)
        self.k_proj = nn.Linear(D, cfg.n_kv_heads * Dh, bias=False)
        self.v_proj = nn.Linear(D, cfg.n_kv_heads * Dh, bias=False)
        self.out_proj = nn.Linear(D, D, bias=False)
        self.value_residual = cfg.value_residual
        if cfg.value_residual:
            self.v_lamb = nn.Parameter(torch.tensor(0.5))
        self.gated = cfg.gated_attn
        if cfg.gated_attn:
            self.gate_proj = nn.Linear(cfg.n_heads, cfg.n_heads, bias=False)
        if cfg.attn_logit_scale:  # rms-normed q and k cap a logit at sqrt(head_dim); this lifts the cap
            self.log_logit_scale = nn.Parameter(torch.zeros(cfg.n_heads))

    def qkv(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.q_proj(h), self.k_proj(h), self.v_proj(h)

    def forward(self, h: torch.Tensor, v1: torch.Tensor | None, inp: FrameInputs):
        B, T, _ = h.shape
        q, k, v = self.qkv(h)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, Dh]
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if self.value_residual:
            v1 = v if v1 is None else v1  # block 0 carries its own v to every later block
            v = v + self.v_lamb * (v1 - v)
        q, k = rms(q), rms(k)
        if hasattr(self, "log_logit_scale"):
            q = q * self.log_logit_scale.exp().to(q.dtype)[:, None, None]  # [H, 1, 1]
        q, k = apply_rope(q, *inp.rope), apply_rope(k, *inp.rope)
        if inp.cache is None:  # no history: the frame attends to itself only
            out = attention(q, k, v, None)
        else:
            out = inp.cache.attend(self.layer, q, k, v, inp.plan)
        if self.gated:
            gates = torch.sigmoid(self.gate_proj(h[..., : self.n_heads]))  # [B, T, H]
            out = out * gates.transpose(1, 2)[..., None]
        out = out.transpose(1, 2).reshape(B, T, -1)
        return self.out_proj(out), v1


class CrossAttention(nn.Module):
    """Attention from the frame's tokens to the prompt embedding; pad rows are zero and still count."""

    def __init__(self, cfg: WaypointConfig):
        super().__init__()
        D, P = cfg.d_model, cfg.prompt_embedding_dim
        self.head_dim, self.n_heads = cfg.head_dim, P // cfg.head_dim
        self.q_proj = nn.Linear(D, P, bias=False)
        self.k_proj = nn.Linear(P, P, bias=False)
        self.v_proj = nn.Linear(P, P, bias=False)
        self.out_proj = nn.Linear(P, D, bias=False)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        heads = lambda t: t.view(B, t.shape[1], self.n_heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q = rms(heads(self.q_proj(x)))  # [B, Hp, T, Dh]
        k = rms(heads(self.k_proj(ctx)))  # [B, Hp, P, Dh]
        v = heads(self.v_proj(ctx))
        out = attention(q, k, v, ctx_mask)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, -1))


class CtrlFusion(nn.Module):
    """x += fc2(silu(fc1(concat(rms(x), rms(c))))); `split` computes the control half once per frame.

    Gated (an extension): x += fc2(silu(fc1_x rms(x)) * (1 + fc1_c rms(c))), the two halves of the same fc1,
    so a control scales the content's features instead of shifting them.
    """

    def __init__(self, cfg: WaypointConfig):
        super().__init__()
        D = cfg.d_model
        self.mlp = MLP(2 * D, D, D)
        self.split = False
        self.gated = cfg.ctrl_fusion == "gated"

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        D = x.shape[-1]
        if self.gated:
            w = self.mlp.fc1.weight
            return self.mlp.fc2(F.silu(F.linear(rms(x), w[:, :D])) * (1 + F.linear(rms(c), w[:, D:])))
        if self.split:
            w = self.mlp.fc1.weight
            hidden = F.linear(rms(x), w[:, :D]) + F.linear(rms(c), w[:, D:])
        else:
            cc = rms(c).expand(-1, x.shape[1], -1)
            hidden = self.mlp.fc1(torch.cat([rms(x), cc], dim=-1))
        return self.mlp.fc2(F.silu(hidden))


class CondHead(nn.Module):
    """Six AdaLN modulations (shift/scale/gate for attention and MLP) from the noise-level conditioning."""

    def __init__(self, cfg: WaypointConfig, shared: nn.ModuleList | None):
        super().__init__()
        D = cfg.d_model
        self.cond_proj = shared if shared is not None else nn.ModuleList(nn.Linear(D, D, bias=False) for _ in range(6))
        self.has_bias_in = cfg.noise_conditioning == "wan"
        if self.has_bias_in:
            self.bias_in = nn.Parameter(torch.zeros(D))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., 6, D] = (s0, b0, g0, s1, b1, g1)."""
        h = F.silu(cond + self.bias_in if self.has_bias_in else cond)
        return torch.stack([proj(h) for proj in self.cond_proj], dim=-2)


class Block(nn.Module):
    def __init__(self, cfg: WaypointConfig, layer: int, shared_cond: nn.ModuleList | None):
        super().__init__()
        D = cfg.d_model
        self.attn = SelfAttention(cfg, layer)
        self.mlp = MLP(D, D * cfg.mlp_ratio, D)
        self.cond_head = CondHead(cfg, shared_cond)
        if cfg.has_prompt(layer):
            self.prompt_cross_attn = CrossAttention(cfg)
        if cfg.has_ctrl(layer):
            self.ctrl_mlpfusion = CtrlFusion(cfg)

    def forward(self, x, mods, v1, inp: FrameInputs):
        s0, b0, g0, s1, b1, g1 = mods.unbind(2)  # each [B, 1|N, D]
        a, v1 = self.attn(rms(x) * (1 + s0) + b0, v1, inp)
        x = x + g0 * a
        if hasattr(self, "prompt_cross_attn") and inp.prompt is not None:
            x = x + self.prompt_cross_attn(rms(x), inp.prompt, inp.prompt_mask)
        if hasattr(self, "ctrl_mlpfusion") and inp.ctrl is not None:
            x = x + self.ctrl_mlpfusion(x, inp.ctrl)
        x = x + g1 * self.mlp(rms(x) * (1 + s1) + b1)
        return x, v1


class Transformer(nn.Module):
    def __init__(self, cfg: WaypointConfig):
        super().__init__()
        shared = None
        if cfg.noise_conditioning in ("wan", "dit_air"):
            shared = nn.ModuleList(nn.Linear(cfg.d_model, cfg.d_model, bias=False) for _ in range(6))
        self.blocks = nn.ModuleList(Block(cfg, i, shared) for i in range(cfg.n_layers))


class OutNorm(nn.Module):
    def __init__(self, D: int):
        super().__init__()
        self.fc = nn.Linear(D, 2 * D, bias=False)


@dataclass
class Conditioning:
    """Per-environment noise-level conditioning: the block modulations and the output head's (a, b)."""

    blocks: list[torch.Tensor]  # n_layers x [B, F, 6, D]
    out: torch.Tensor  # [B, F, 2, D]

    def per_token(self, T: int) -> Conditioning:
        """Repeat each frame's modulations over its T tokens: [B, F, ...] -> [B, F*T, ...] (F = 1 broadcasts)."""
        if self.out.shape[1] == 1:
            return self
        return Conditioning([m.repeat_interleave(T, dim=1) for m in self.blocks], self.out.repeat_interleave(T, 1))


class WaypointModel(nn.Module):
    def __init__(self, cfg: WaypointConfig):
        super().__init__()
        self.cfg = cfg
        D, (ph, pw) = cfg.d_model, cfg.patch
        self.patchify = nn.Conv2d(cfg.channels, D, kernel_size=(ph, pw), stride=(ph, pw), bias=False)
        self.denoise_step_emb = Embedder(512, 4 * D, D)
        if cfg.ctrl_conditioning:
            self.ctrl_emb = Embedder(cfg.n_buttons + 3, D * cfg.mlp_ratio, D)
            self.ctrl_cfg = NullEmbedding(D)
        if cfg.prompt_conditioning:
            self.prompt_cfg = NullEmbedding(cfg.prompt_embedding_dim)
        self.transformer = Transformer(cfg)
        self.out_norm = OutNorm(D)
        self.unpatchify = nn.Linear(D, cfg.channels * ph * pw)
        if cfg.last_frame_warp:  # a flow (x, y) in latent pixels per latent pixel; zero: the last frame as it is
            self.warp_flow = nn.Linear(D, 2 * ph * pw)
            nn.init.zeros_(self.warp_flow.weight)
            nn.init.zeros_(self.warp_flow.bias)
        self.init_buffers()

    def init_buffers(self) -> None:
        """Tables computed from the config, not stored in checkpoints (float64, so kept out of `.to(dtype)`)."""
        self.rope_spatial = spatial_angles(self.cfg, device=self.patchify.weight.device)

    # -- step 2: the noise level
    def conditioning(self, sigma: torch.Tensor) -> Conditioning:
        """[B, F] sigma -> the modulations every block and the output head use (cacheable per sigma)."""
        dtype = self.out_norm.fc.weight.dtype
        cond = self.denoise_step_emb(sigma_features(sigma.flatten()).to(dtype)).view(*sigma.shape, -1)  # [B, F, D]
        blocks = [blk.cond_head(cond) for blk in self.transformer.blocks]
        out = self.out_norm.fc(F.silu(cond)).unflatten(-1, (2, -1))  # [B, F, 2, D]
        return Conditioning(blocks, out)

    # -- step 3: controls
    def embed_controls(self, ctrl: torch.Tensor) -> torch.Tensor:
        """[B, F, 2 + n_buttons + 1] = concat(mouse, buttons, scroll) -> [B, F, D]."""
        return self.ctrl_emb(ctrl.to(self.out_norm.fc.weight.dtype))

    # -- the prompt classifier-free guidance drops to
    def null_prompt(self, like: torch.Tensor) -> torch.Tensor:
        """A prompt shaped like `like` [B, P, Dp]: the null embedding in row 0, zero rows after it (as in training)."""
        out = torch.zeros_like(like)
        out[:, 0] = self.prompt_cfg.null_emb[0, 0]
        return out

    def frame_inputs(
        self,
        t: torch.Tensor,  # [B] or [B, F] frame index (temporal position)
        ctrl: torch.Tensor | None,  # [B, n_buttons + 3] or [B, F, n_buttons + 3]
        prompt: torch.Tensor | None,  # [B, P, Dp] (pad rows zero)
        plan: FramePlan | None = None,
        cache: KVCache | FrameCausalMask | None = None,
        prompt_mask: torch.Tensor | None = None,  # [B, P] bool rows that exist, None when all do
        ctrl_null: torch.Tensor | None = None,  # [B] bool: use the null control embedding (CFG, training)
        last_frame: torch.Tensor | None = None,  # [B, C, H, W] or [B, F, C, H, W] (worlds with last_frame_warp)
    ) -> FrameInputs:
        """What every block needs besides x; the same for all denoising passes of a frame, so built once."""
        cfg = self.cfg
        if t.ndim == 1:  # one frame per env
            t, ctrl = t[:, None], None if ctrl is None else ctrl[:, None]
            last_frame = None if last_frame is None else last_frame[:, None]
        if cfg.last_frame_warp and last_frame is None:
            raise ValueError("this world warps each frame's last frame (last_frame_warp): pass last_frame")
        T, dtype = cfg.tokens_per_frame, self.patchify.weight.dtype
        c = self.embed_controls(ctrl) if ctrl is not None and cfg.ctrl_conditioning else None  # [B, F, D]
        if c is not None and ctrl_null is not None:
            c = torch.where(ctrl_null[:, None, None], self.ctrl_cfg.null_emb, c)
        return FrameInputs(
            rope=rope_tables(cfg, self.rope_spatial, t),
            ctrl=None if c is None else c if c.shape[1] == 1 else c.repeat_interleave(T, dim=1),
            prompt=None if prompt is None or not cfg.prompt_conditioning else rms(prompt.to(dtype)),
            prompt_mask=None if prompt_mask is None else prompt_mask[:, None, None, :],
            plan=plan,
            cache=cache,
            last_frame=last_frame if cfg.last_frame_warp else None,
        )

    def forward(
        self,
        x: torch.Tensor,  # [B, C, H, W] one noisy frame, or [B, F, C, H, W] a sequence (training)
        sigma: torch.Tensor,  # [B] or [B, F] noise level of each frame
        t: torch.Tensor | None = None,  # [B] or [B, F] frame index (temporal position)
        ctrl: torch.Tensor | None = None,  # [B, n_buttons + 3] or [B, F, n_buttons + 3]
        prompt: torch.Tensor | None = None,  # [B, P, Dp] (pad rows zero)
        plan: FramePlan | None = None,
        cache: KVCache | FrameCausalMask | None = None,
        prompt_mask: torch.Tensor | None = None,  # [B, P] bool rows that exist, None when all do
        cond: Conditioning | None = None,  # precomputed noise conditioning, else computed from sigma
        ctrl_null: torch.Tensor | None = None,  # [B] bool: use the null control embedding (CFG, training)
        inputs: FrameInputs | None = None,  # precomputed `frame_inputs(...)`, replacing t ... last_frame
        last_frame: torch.Tensor | None = None,  # [B, (F,) C, H, W] each frame's previous clean latent (zeros: none)
    ) -> torch.Tensor:
        cfg = self.cfg
        one_frame = x.ndim == 4
        if one_frame:  # the inference shape: one frame per env, its history in the KV cache
            x, sigma = x[:, None], sigma[:, None]
        B, n_frames, C, H, W = x.shape
        T, (ph, pw) = cfg.tokens_per_frame, cfg.patch
        dtype = self.patchify.weight.dtype
        # 1. tokens [B, F*T, D], frame-major, token index within a frame = y * width + x
        h = self.patchify(x.flatten(0, 1).to(dtype)).flatten(2).transpose(1, 2).reshape(B, n_frames * T, -1)
        # 2-3. conditioning: noise level and controls per frame, repeated over each frame's tokens
        cond = (self.conditioning(sigma) if cond is None else cond).per_token(T)
        inp = inputs or self.frame_inputs(t, ctrl, prompt, plan, cache, prompt_mask, ctrl_null, last_frame)
        # 4. blocks
        v1 = None
        for blk, mods in zip(self.transformer.blocks, cond.blocks):
            h, v1 = blk(h, mods, v1, inp)
        # 5. output head -> velocity [B, (F,) C, H, W]
        a, b = cond.out.unbind(2)  # each [B, 1|N, D]
        h = F.silu(rms(h) * (1 + a) + b)
        y = self.unpatchify(h)  # [B, F*T, C*ph*pw]
        y = y.view(B, n_frames, cfg.height, cfg.width, C, ph, pw).permute(0, 1, 4, 2, 5, 3, 6)
        y = y.reshape(B, n_frames, C, H, W)
        if cfg.last_frame_warp:  # x0 = the last frame moved by the predicted flow, plus the head's residual
            flow = self.warp_flow(h).view(B, n_frames, cfg.height, cfg.width, 2, ph, pw).permute(0, 1, 4, 2, 5, 3, 6)
            y = y + warp(inp.last_frame.to(y.dtype), flow.reshape(B, n_frames, 2, H, W))
        if cfg.prediction == "x0":  # the head predicts the clean frame; the sampler takes its velocity
            s = sigma.to(y.dtype)[..., None, None, None].clamp(min=X0_MIN_SIGMA)  # [B, F, 1, 1, 1]
            y = (x.to(y.dtype) - y) / s
        return y[:, 0] if one_frame else y
