"""The Waypoint world-model config (`config.yaml` of a checkpoint) and the published presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PREDICTIONS = ("velocity", "x0")
WAYPOINT_1_SMALL_SIGMAS = [1.0, 0.8609585762023926, 0.729332447052002, 0.3205108940601349, 0.0]
WAYPOINT_15_SIGMAS = [1.0, 0.9, 0.75, 0.3, 0.0]
# What the Waypoint-1.5 loader merges under a `model_type: waypoint-1.5` config.yaml (format addendum, "Config
# fields"); `${name}` means the value of that field. Waypoint-1 files are read over this class's defaults.
WAYPOINT_15_FILE_DEFAULTS: dict[str, Any] = {
    "auto_aspect_ratio": True, "gated_attn": False, "inference_fps": "${base_fps}", "n_kv_heads": "${n_heads}",
    "patch": [1, 1], "prompt_conditioning": None, "rope_nyquist_frac": 0.8, "rope_theta": 10000.0,
    "taehv_ae": False, "temporal_compression": 1, "value_residual": False,
}


@dataclass
class WaypointConfig:
    d_model: int = 2560
    n_heads: int = 40
    n_kv_heads: int = 20
    n_layers: int = 22
    mlp_ratio: int = 5
    channels: int = 16
    height: int = 16
    width: int = 16
    patch: tuple[int, int] = (2, 2)
    tokens_per_frame: int = 256
    n_frames: int = 512
    local_window: int = 16
    global_window: int = 128
    global_attn_period: int = 4
    global_attn_offset: int = 0
    global_pinned_dilation: int = 8
    value_residual: bool = False
    gated_attn: bool = True
    n_buttons: int = 256
    ctrl_conditioning: str | None = "mlp_fusion"
    ctrl_conditioning_period: int = 3
    prompt_conditioning: str | None = "cross_attention"
    prompt_conditioning_period: int = 3
    prompt_embedding_dim: int = 2048
    noise_conditioning: str = "wan"
    scheduler_sigmas: list[float] = field(default_factory=lambda: list(WAYPOINT_1_SMALL_SIGMAS))
    ctrl_cond_dropout: float = 0.0
    prompt_cond_dropout: float = 0.0
    ae_uri: str | None = None
    prompt_encoder_uri: str | None = None
    # This project's extensions for worlds it trains (docs/engine.md); Waypoint checkpoints lack them and
    # load with the defaults, which are the published format.
    prediction: str = "velocity"  # what the output head predicts: "velocity" (noise - x0) or "x0"
    attn_logit_scale: bool = False  # a learned scale per self-attention head on its (capped) logits
    ctrl_fusion: str = "concat"  # "concat": fc1 of concat(x, c); "gated": silu(fc1_x x) * (1 + fc1_c c)
    last_frame_warp: bool = False  # x0 head only: x0 = the last frame warped by a predicted flow + the head's output
    # Waypoint-1.5 (format addendum); the defaults are Waypoint-1's behaviour.
    model_type: str = "waypoint-1"  # "waypoint-1.5": the state dict is remapped on loading (loading.py)
    temporal_compression: int = 1  # video frames per latent frame: 4 for TAEHV, 1 for the image autoencoder
    base_fps: float | None = None  # latent rate the RoPE time axis was trained at; None: one time step per frame
    inference_fps: float | None = None  # video frame rate; None: base_fps
    taehv_ae: bool = False  # ae_uri names a TAEHV video autoencoder (taehv1_5.pth), not the image autoencoder
    auto_aspect_ratio: bool = True  # TAEHV resizes 720x1280 / 360x640 video to its 2:1 working size and back
    rope_nyquist_frac: float = 0.8  # spatial RoPE: max_f = rope_nyquist_frac * min(height, width)
    rope_theta: float = 10000.0  # temporal RoPE base
    moe: bool = False  # mixture-of-experts MLP: not supported (no published checkpoint uses it)
    # Fields of the public config that do not change the forward pass, kept so a round trip is lossless.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.patch = tuple(self.patch)
        self.scheduler_sigmas = [float(s) for s in self.scheduler_sigmas]
        problems = []
        if self.d_model % self.n_heads:
            problems.append(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        elif self.head_dim % 16:
            problems.append(f"head_dim {self.head_dim} must be a multiple of 16 for the ortho RoPE")
        if self.n_heads % self.n_kv_heads:
            problems.append(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")
        if self.tokens_per_frame != self.height * self.width:
            problems.append(f"tokens_per_frame {self.tokens_per_frame} != height*width {self.height * self.width}")
        if self.global_window % self.global_pinned_dilation:
            problems.append("global_window must be a multiple of global_pinned_dilation")
        if self.prompt_conditioning and self.prompt_embedding_dim % self.head_dim:
            problems.append("prompt_embedding_dim must be a multiple of head_dim")
        if self.ctrl_fusion not in ("concat", "gated"):
            problems.append(f"ctrl_fusion must be 'concat' or 'gated', got {self.ctrl_fusion!r}")
        if self.prediction not in PREDICTIONS:
            problems.append(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.last_frame_warp and self.prediction != "x0":
            problems.append("last_frame_warp needs prediction: x0 (the warped last frame is a clean-frame estimate)")
        sig = self.scheduler_sigmas
        if len(sig) < 2 or sig[0] != 1.0 or sig[-1] != 0.0 or any(a <= b for a, b in zip(sig, sig[1:])):
            problems.append(f"scheduler_sigmas must descend strictly from 1.0 to 0.0, got {sig}")
        if self.extra.get("rope_impl", "ortho") != "ortho":  # the file's RoPE kind, kept in extra
            problems.append(f"rope_impl {self.extra['rope_impl']!r} is not supported (only 'ortho')")
        if self.moe:
            problems.append("moe: true (a mixture-of-experts MLP) is not supported")
        if not isinstance(self.temporal_compression, int) or self.temporal_compression < 1:
            problems.append(f"temporal_compression must be a positive integer, got {self.temporal_compression!r}")
        elif self.base_fps is not None and self.rope_time_step < 1:
            problems.append(
                f"base_fps {self.base_fps} is below the latent frame rate {self.latent_fps} "
                "(inference_fps / temporal_compression): the RoPE time step would be 0"
            )
        if problems:
            raise ValueError("invalid Waypoint config: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def latent_fps(self) -> float | None:
        """Latent frames per second of video: inference_fps / temporal_compression (None without base_fps)."""
        fps = self.inference_fps if self.inference_fps is not None else self.base_fps
        return None if fps is None else fps / self.temporal_compression

    @property
    def rope_time_step(self) -> int:
        """RoPE time units per latent frame (t = f * this): int(int(base_fps) // latent_fps), as the reference."""
        if self.base_fps is None:
            return 1
        return int(int(self.base_fps) // self.latent_fps)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """[C, H, W] of one frame's latent."""
        return (self.channels, self.height * self.patch[0], self.width * self.patch[1])

    def is_global(self, layer: int) -> bool:
        p = self.global_attn_period
        return (layer - (self.global_attn_offset % p)) % p == 0

    def has_ctrl(self, layer: int) -> bool:
        return bool(self.ctrl_conditioning) and layer % self.ctrl_conditioning_period == 0

    def has_prompt(self, layer: int) -> bool:
        return bool(self.prompt_conditioning) and layer % self.prompt_conditioning_period == 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WaypointConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        if d.get("model_type") == "waypoint-1.5":
            d = {**WAYPOINT_15_FILE_DEFAULTS, **d}
        d = {k: _interpolate(v, d) for k, v in d.items()}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)

    @classmethod
    def from_yaml(cls, path: str | Path) -> WaypointConfig:
        with open(path) as f:
            return cls.from_dict(yaml.safe_load(f))

    def to_dict(self) -> dict[str, Any]:
        """The config as `config.yaml` holds it: this project's extensions only where they are switched on, and
        Waypoint-1.5's fields in a Waypoint-1 config only where they differ from Waypoint-1's behaviour."""
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d["patch"] = list(self.patch)
        optional = dict(EXTENSIONS)
        if self.model_type != "waypoint-1.5":
            optional.update({f.name: f.default for f in dataclasses.fields(self) if f.name in WAYPOINT_15_FIELDS})
        for name, default in optional.items():
            if d[name] == default:
                del d[name]
        return {**extra, **d}

    def save_yaml(self, path: str | Path) -> None:
        with open(path, "w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)


# This project's extensions of the format for worlds it trains (docs/engine.md), at their defaults, under
# which a model is exactly the published architecture.
EXTENSIONS: dict[str, Any] = {"prediction": "velocity", "attn_logit_scale": False, "ctrl_fusion": "concat",
                              "last_frame_warp": False}
# The fields Waypoint-1.5 added (format addendum), whose class defaults are Waypoint-1's behaviour.
WAYPOINT_15_FIELDS = ("model_type", "temporal_compression", "base_fps", "inference_fps", "taehv_ae",
                      "auto_aspect_ratio", "rope_nyquist_frac", "rope_theta", "moe")


def _interpolate(value: Any, d: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """An OmegaConf-style "${name}" string -> the value of field `name` in `d`; anything else as it is."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        name = value[2:-1]
        if name not in d or name in seen:
            raise ValueError(f"config value {value!r} names a field the config does not set (or a cycle of them)")
        return _interpolate(d[name], d, (*seen, name))
    return value


_WAYPOINT_15 = dict(
    model_type="waypoint-1.5", d_model=2048, n_heads=32, n_kv_heads=16, n_layers=24, mlp_ratio=4, channels=32,
    patch=(2, 2), n_frames=512, local_window=16, global_window=128, global_attn_period=4, global_attn_offset=-1,
    global_pinned_dilation=8, value_residual=True, gated_attn=False, n_buttons=256, ctrl_conditioning=True,
    ctrl_conditioning_period=3, prompt_conditioning=None, noise_conditioning="wan",
    scheduler_sigmas=list(WAYPOINT_15_SIGMAS), temporal_compression=4, base_fps=15, inference_fps=60,
    taehv_ae=True, auto_aspect_ratio=True, prompt_encoder_uri=None,
)


# Published configs, so a random-weight model of the real size can be built without downloading.
PRESETS: dict[str, dict[str, Any]] = {
    "waypoint-1-small": dict(
        d_model=2560, n_heads=40, n_kv_heads=20, n_layers=22, mlp_ratio=5, channels=16, height=16, width=16,
        patch=(2, 2), tokens_per_frame=256, n_frames=512, local_window=16, global_window=128,
        global_attn_period=4, global_attn_offset=0, global_pinned_dilation=8, value_residual=False,
        gated_attn=True, n_buttons=256, ctrl_conditioning="mlp_fusion", ctrl_conditioning_period=3,
        prompt_conditioning="cross_attention", prompt_conditioning_period=3, prompt_embedding_dim=2048,
        noise_conditioning="wan", scheduler_sigmas=list(WAYPOINT_1_SMALL_SIGMAS),
        prompt_encoder_uri="google/umt5-xl",  # ae_uri: set by the downloaded checkpoint itself
    ),
    # A CPU-sized member of the family, for benchmarks and tests of the engine on a laptop.
    "waypoint-cpu-small": dict(
        d_model=256, n_heads=4, n_kv_heads=2, n_layers=6, mlp_ratio=4, channels=8, height=8, width=8,
        patch=(2, 2), tokens_per_frame=64, n_frames=256, local_window=8, global_window=32,
        global_attn_period=3, global_attn_offset=0, global_pinned_dilation=4, value_residual=True,
        gated_attn=True, n_buttons=256, ctrl_conditioning="mlp_fusion", ctrl_conditioning_period=2,
        prompt_conditioning="cross_attention", prompt_conditioning_period=2, prompt_embedding_dim=128,
        noise_conditioning="wan", scheduler_sigmas=list(WAYPOINT_1_SMALL_SIGMAS),
    ),
    # Waypoint-1.5 (format addendum): one latent frame per 4 video frames, the TAEHV autoencoder; 720p and 360p
    # differ only in the token grid. Presets build a RANDOM TAEHV beside the random world (no ae_uri).
    "waypoint-1.5-1b": dict(_WAYPOINT_15, height=16, width=32, tokens_per_frame=512),
    "waypoint-1.5-360p": dict(_WAYPOINT_15, height=8, width=16, tokens_per_frame=128),
    # CPU-sized 1.5: 64x128 video (TAEHV at the frames' own size), so tests run the whole 1.5 path in seconds.
    "waypoint-1.5-cpu": dict(
        _WAYPOINT_15, d_model=128, n_heads=4, n_kv_heads=2, n_layers=4, height=2, width=4, tokens_per_frame=8,
        n_frames=64, local_window=4, global_window=8, global_attn_period=2, global_pinned_dilation=2,
        auto_aspect_ratio=False,
    ),
}


def preset_config(name: str, **overrides: Any) -> WaypointConfig:
    key = name.lower()
    if key not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
    return WaypointConfig(**{**PRESETS[key], **overrides})
