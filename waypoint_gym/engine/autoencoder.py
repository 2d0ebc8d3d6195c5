"""The Waypoint image autoencoder: uint8 RGB frames <-> latents of the world model.

A folder holds encoder_conf.yml, decoder_conf.yml, encoder.safetensors and decoder.safetensors. Every
convolution is weight-normalised (weight = g * v / ||v||), stored as
`<conv>.parametrizations.weight.original0` (g) and `.original1` (v). See the "Autoencoder" section of the
Waypoint format document for the exact architecture.

Extension of the format: the conf's `model` mapping may hold `input_size` and `output_size` ([H, W], defaults
[512, 512] and [360, 640]), so that smaller members of the family (e.g. 64x64) can be trained and saved.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from waypoint_gym.engine.loading import load_strict, require_files, resolve_uri

if TYPE_CHECKING:
    from .taehv import TAEHV

log = logging.getLogger(__name__)

ENCODER_CONF = "encoder_conf.yml"
DECODER_CONF = "decoder_conf.yml"
ENCODER_WEIGHTS = "encoder.safetensors"
DECODER_WEIGHTS = "decoder.safetensors"
AE_FILES = [ENCODER_CONF, DECODER_CONF, ENCODER_WEIGHTS, DECODER_WEIGHTS]


# -----------------------------------------------------------------------------
# config


@dataclass
class AutoencoderConfig:
    """The `model` mapping of encoder_conf.yml / decoder_conf.yml."""

    channels: int  # image channels the encoder takes and the decoder makes (RGB is zero-padded up to it)
    ch_0: int  # channels of the first (full resolution) stage
    ch_max: int  # channels double per stage up to this
    encoder_blocks_per_stage: list[int]
    decoder_blocks_per_stage: list[int]
    latent_channels: int
    skip_logvar: bool = False
    input_size: tuple[int, int] = (512, 512)  # the encoder resizes every image to this [H, W]
    output_size: tuple[int, int] = (360, 640)  # the decoder resizes its output to this [H, W]
    # Fields of the conf that do not change the forward pass, kept so a round trip is lossless.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.encoder_blocks_per_stage = [int(n) for n in self.encoder_blocks_per_stage]
        self.decoder_blocks_per_stage = [int(n) for n in self.decoder_blocks_per_stage]
        self.input_size = _pair(self.input_size, "input_size")
        self.output_size = _pair(self.output_size, "output_size")
        problems = []
        if self.channels < 3:
            problems.append(f"channels {self.channels} < 3: the images are RGB")
        stages = {"encoder": self.encoder_blocks_per_stage, "decoder": self.decoder_blocks_per_stage}
        for name, blocks in stages.items():
            if not blocks or min(blocks) < 0:
                problems.append(f"{name}_blocks_per_stage must be a non-empty list of counts, got {blocks}")
            elif self.stage_channels(len(blocks))[-1] != self.ch_max:
                n = len(blocks)
                problems.append(f"ch_0 {self.ch_0} does not reach ch_max {self.ch_max} in {n} {name} stages")
        if self.ch_max % self.latent_channels:
            problems.append(f"ch_max {self.ch_max} is no multiple of latent_channels {self.latent_channels}")
        f = self.downsample
        if self.input_size[0] % f or self.input_size[1] % f:
            problems.append(f"input_size {list(self.input_size)} is not divisible by the downsampling {f}")
        if problems:
            raise ValueError("invalid autoencoder config: " + "; ".join(problems))

    def stage_channels(self, n_stages: int) -> list[int]:
        """[ch_0, ch_1, ..., ch_S] with ch_(k+1) = min(2 ch_k, ch_max)."""
        chs = [self.ch_0]
        for _ in range(n_stages):
            chs.append(min(2 * chs[-1], self.ch_max))
        return chs

    @property
    def downsample(self) -> int:
        return 2 ** len(self.encoder_blocks_per_stage)

    @property
    def latent_size(self) -> tuple[int, int]:
        return (self.input_size[0] // self.downsample, self.input_size[1] // self.downsample)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AutoencoderConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - {"extra"}
        missing = sorted(required - set(d))
        if missing:
            raise ValueError(f"autoencoder config lacks {', '.join(missing)}")
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AutoencoderConfig:
        with open(path) as f:
            conf = yaml.safe_load(f)
        model = conf.get("model") if isinstance(conf, dict) else None
        if not isinstance(model, dict):
            raise ValueError(f"{path} has no `model` mapping")  # noqa: TRY004 (a bad file, not argument)
        try:
            return cls.from_dict(model)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d["input_size"] = list(self.input_size)
        d["output_size"] = list(self.output_size)
        return {**extra, **d}

    def save_yaml(self, path: str | Path) -> None:
        with open(path, "w") as f:
            yaml.safe_dump({"model": self.to_dict()}, f, sort_keys=False)


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    if len(v) != 2 or min(v) < 1:
        raise ValueError(f"{name} must be [H, W] with positive sizes, got {v}")
    return (int(v[0]), int(v[1]))


# -----------------------------------------------------------------------------
# building blocks


def wn_conv(c_in: int, c_out: int, k: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A kxk 'same' convolution with weight normalisation over all dims but the first."""
    return weight_norm(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias, groups=groups), dim=0)


def bicubic(x: torch.Tensor, size: tuple[int, int] | None = None, scale: float | None = None) -> torch.Tensor:
    if size is not None and tuple(size) == tuple(x.shape[-2:]):
        return x  # a same-size bicubic resize weights each pixel by exactly 1 and its neighbours by 0
    return F.interpolate(x, size=size, scale_factor=scale, mode="bicubic", align_corners=False)


class ResBlock(nn.Module):
    """x + conv3(act(conv2(act(conv1(x))))) with a 2x wider, grouped middle."""

    def __init__(self, ch: int):
        super().__init__()
        h = 2 * ch
        self.conv1 = wn_conv(ch, h, 1)
        self.conv2 = wn_conv(h, h, 3, groups=max(1, h // 16))
        self.conv3 = wn_conv(h, ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), 0.01)  # [N, 2ch, H, W]
        y = F.leaky_relu(self.conv2(y), 0.01)
        return x + self.conv3(y)  # [N, ch, H, W]


# -----------------------------------------------------------------------------
# encoder


class ResizeConv(nn.Module):
    """The encoder's conv_in: bicubic resize to the input size, then a 3x3 conv."""

    def __init__(self, c_in: int, c_out: int, size: tuple[int, int]):
        super().__init__()
        self.size = size
        self.proj = wn_conv(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(bicubic(x, size=self.size))  # [N, c_out, *size]


class Downsample(nn.Module):
    """Bicubic x0.5, then a 1x1 conv without bias."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = wn_conv(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(bicubic(x, scale=0.5))  # [N, c_out, H/2, W/2]


class DownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, n_blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c_in) for _ in range(n_blocks))
        self.down = Downsample(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)  # [N, c_in, H, W]
        return self.down(x)  # [N, c_out, H/2, W/2]


class SpaceToChannel(nn.Module):
    """The skip path of a down stage: 3x3 conv to c_out/4 channels, then pixel_unshuffle(2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = wn_conv(c_in, c_out // 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.proj(x), 2)  # [N, c_out, H/2, W/2]


class ChannelAverage(nn.Module):
    """conv_out: 3x3 conv to the latent, plus the input averaged over channel groups times sqrt(groups)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = wn_conv(c_in, c_out, 3)
        self.groups = c_in // c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        skip = x.view(n, self.groups, c // self.groups, h, w).mean(1)  # channel g*c_out + j -> j
        return self.proj(x) + skip * math.sqrt(self.groups)  # [N, c_out, H, W]


class Encoder(nn.Module):
    """[N, channels, H, W] in [-1, 1], any H, W -> latent [N, latent_channels, h, w]."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        blocks = config.encoder_blocks_per_stage
        chs = config.stage_channels(len(blocks))
        self.conv_in = ResizeConv(config.channels, chs[0], config.input_size)
        self.blocks = nn.ModuleList(DownBlock(chs[i], chs[i + 1], n) for i, n in enumerate(blocks))
        self.residuals = nn.ModuleList(SpaceToChannel(chs[i], chs[i + 1]) for i in range(len(blocks)))
        self.conv_out = ChannelAverage(chs[-1], config.latent_channels)
        self.conv_out_logvar = None if config.skip_logvar else wn_conv(chs[-1], 1, 3)  # unused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)  # [N, ch_0, *input_size]
        for block, residual in zip(self.blocks, self.residuals):
            x = block(x) + residual(x)  # [N, ch_(i+1), H/2, W/2]
        return self.conv_out(x)  # [N, latent_channels, h, w]


# -----------------------------------------------------------------------------
# decoder


class ChannelDuplication(nn.Module):
    """conv_in: 3x3 conv from the latent, plus each latent channel repeated r times, times r^-0.5."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = wn_conv(c_in, c_out, 3)
        self.repeats = c_out // c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x.repeat_interleave(self.repeats, dim=1)  # [N, c_out, h, w]
        return self.proj(x) + skip * self.repeats**-0.5


class Upsample(nn.Module):
    """A 1x1 conv without bias (absent when the channel counts match), then bicubic x2."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = wn_conv(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic(self.proj(x), scale=2.0)  # [N, c_out, 2H, 2W]


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, n_blocks: int):
        super().__init__()
        self.up = Upsample(c_in, c_out)
        self.blocks = nn.ModuleList(ResBlock(c_out) for _ in range(n_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # [N, c_out, 2H, 2W]
        for block in self.blocks:
            x = block(x)
        return x


class ChannelToSpace(nn.Module):
    """The skip path of an up stage: 3x3 conv to 4*c_out channels, then pixel_shuffle(2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = wn_conv(c_in, 4 * c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.proj(x), 2)  # [N, c_out, 2H, 2W]


class ConvResize(nn.Module):
    """The decoder's conv_out: a 3x3 conv, then bicubic resize to the output size."""

    def __init__(self, c_in: int, c_out: int, size: tuple[int, int]):
        super().__init__()
        self.proj = wn_conv(c_in, c_out, 3)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic(self.proj(x), size=self.size)  # [N, c_out, *size]


class Decoder(nn.Module):
    """Latent [N, latent_channels, h, w] -> [N, channels, *output_size], roughly in [-1, 1]."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        blocks = config.decoder_blocks_per_stage
        s = len(blocks)
        chs = config.stage_channels(s)  # stage j runs ch_(S-j) -> ch_(S-1-j)
        self.conv_in = ChannelDuplication(config.latent_channels, config.ch_max)
        self.blocks = nn.ModuleList(UpBlock(chs[s - j], chs[s - 1 - j], n) for j, n in enumerate(blocks))
        self.residuals = nn.ModuleList(ChannelToSpace(chs[s - j], chs[s - 1 - j]) for j in range(s))
        self.conv_out = ConvResize(chs[0], config.channels, config.output_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(z)  # [N, ch_max, h, w]
        for block, residual in zip(self.blocks, self.residuals):
            x = block(x) + residual(x)  # [N, ch_(S-1-j), 2H, 2W]
        return self.conv_out(F.silu(x))  # [N, channels, *output_size]


# -----------------------------------------------------------------------------
# images in and out


def images_to_tensor(img: Any) -> tuple[torch.Tensor, bool]:
    """uint8 HxWx3 or NxHxWx3 (numpy or torch) -> (uint8 tensor [N, H, W, 3], whether it was batched)."""
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got numpy {img.dtype}")
        img = torch.from_numpy(img if img.flags.writeable else img.copy())
    elif isinstance(img, torch.Tensor):
        if img.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {img.dtype}")
    else:
        raise TypeError(f"images must be a uint8 numpy array or torch tensor, got {type(img).__name__}")
    if img.ndim not in (3, 4):
        raise ValueError(f"images must be HxWx3 or NxHxWx3, got shape {tuple(img.shape)} ({img.ndim} dims)")
    if img.shape[-1] != 3:
        raise ValueError(f"images must have 3 (RGB) channels last, got shape {tuple(img.shape)}")
    batched = img.ndim == 4
    return (img if batched else img[None]), batched


# -----------------------------------------------------------------------------
# the autoencoder


class Autoencoder(nn.Module):
    """Encoder and decoder of a Waypoint autoencoder folder, with uint8 image conversions."""

    def __init__(self, encoder_config: AutoencoderConfig, decoder_config: AutoencoderConfig | None = None):
        super().__init__()
        decoder_config = decoder_config or encoder_config
        if encoder_config.latent_channels != decoder_config.latent_channels:
            raise ValueError(
                f"encoder makes {encoder_config.latent_channels} latent channels "
                f"but decoder takes {decoder_config.latent_channels}"
            )
        self.encoder = Encoder(encoder_config)
        self.decoder = Decoder(decoder_config)

    @property
    def latent_channels(self) -> int:
        return self.encoder.config.latent_channels

    @property
    def latent_size(self) -> tuple[int, int]:
        """(h, w) of the latent: the encoder's input size over its downsampling factor."""
        return self.encoder.config.latent_size

    @property
    def output_size(self) -> tuple[int, int]:
        return self.decoder.config.output_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @torch.no_grad()
    def encode(self, img: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 HxWx3 or NxHxWx3 (any H, W) -> latent [C, h, w] or [N, C, h, w], model dtype and device."""
        img, batched = images_to_tensor(img)  # [N, H, W, 3] uint8
        x = img.to(self.device).permute(0, 3, 1, 2).float() / 255 * 2 - 1  # [N, 3, H, W] in [-1, 1]
        x = F.pad(x, (0, 0, 0, 0, 0, self.encoder.config.channels - 3))  # zero-pad to the encoder's channels
        z = self.encoder(x.to(self.dtype))  # [N, C, h, w]
        return z if batched else z[0]

    @torch.no_grad()
    def decode_float(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Latent [C, h, w] or [N, C, h, w] -> float32 images [(N,) H, W, 3], 0..255 scale, not rounded."""
        z = torch.as_tensor(z)
        if not z.is_floating_point():
            raise TypeError(f"latents must be floating point, got {z.dtype}")
        c, (h, w) = self.latent_channels, self.latent_size
        if z.ndim not in (3, 4):
            raise ValueError(f"latents must be [C, h, w] or [N, C, h, w], got shape {tuple(z.shape)}")
        if z.shape[-3] != c:
            raise ValueError(f"latents must have {c} channels, got shape {tuple(z.shape)}")
        if tuple(z.shape[-2:]) != (h, w):
            raise ValueError(f"latents must be {h}x{w}, got shape {tuple(z.shape)}")
        batched = z.ndim == 4
        z = (z if batched else z[None]).to(self.device, self.dtype)  # [N, C, h, w]
        y = self.decoder(z)  # [N, channels, H, W]
        y = (y[:, :3].float() / 2 + 0.5).clamp(0, 1) * 255  # [N, 3, H, W]
        y = y.permute(0, 2, 3, 1)  # [N, H, W, 3]
        return y if batched else y[0]

    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Latent [C, h, w] or [N, C, h, w] -> uint8 images HxWx3 or NxHxWx3 (numpy) of the output size."""
        return self.decode_float(z).round().to(torch.uint8).cpu().numpy()

    @classmethod
    def from_pretrained(
        cls,
        folder_or_repo: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        auto_aspect_ratio: bool = True,
    ) -> Autoencoder | TAEHV:
        """Load an autoencoder folder (or hub repo id) strictly: every key must match in name and shape.

        A folder holding `taehv1_5.pth` (or that file's path) is Waypoint-1.5's video autoencoder: a `TAEHV` is
        returned, built with `auto_aspect_ratio` (which the image autoencoder does not use).
        """
        from .taehv import TAEHV, TAEHV_FILE

        path = Path(folder_or_repo).expanduser()
        if path.is_file() or (path / TAEHV_FILE).is_file():
            return TAEHV.from_pretrained(path, device=device, dtype=dtype, auto_aspect_ratio=auto_aspect_ratio)
        folder = resolve_uri(folder_or_repo, allow_patterns=[*AE_FILES, TAEHV_FILE])
        if (folder / TAEHV_FILE).is_file():
            return TAEHV.from_pretrained(folder, device=device, dtype=dtype, auto_aspect_ratio=auto_aspect_ratio)
        require_files(folder, AE_FILES)
        enc_config = AutoencoderConfig.from_yaml(folder / ENCODER_CONF)
        dec_config = AutoencoderConfig.from_yaml(folder / DECODER_CONF)
        model = cls(enc_config, dec_config)
        load_strict(model.encoder, load_file(folder / ENCODER_WEIGHTS), str(folder / ENCODER_WEIGHTS))
        load_strict(model.decoder, load_file(folder / DECODER_WEIGHTS), str(folder / DECODER_WEIGHTS))
        log.info("loaded autoencoder %s: latent %d x %s", folder, model.latent_channels, model.latent_size)
        return model.to(device=device, dtype=dtype).eval()

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write the four files of an autoencoder folder, loadable with `from_pretrained`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        parts = ((self.encoder, ENCODER_CONF, ENCODER_WEIGHTS), (self.decoder, DECODER_CONF, DECODER_WEIGHTS))
        for module, conf, weights in parts:
            module.config.save_yaml(folder / conf)
            state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            save_file(state, folder / weights)
        log.info("saved autoencoder to %s", folder)
