"""TAEHV 1.5, the Waypoint-1.5 autoencoder: a tiny causal video autoencoder, 4 RGB frames <-> 1 latent frame.

A folder holds `taehv1_5.pth`, a `torch.save` of {name: tensor} with `nn.Sequential` names, read with
`torch.load(weights_only=True)`. The layers, their time behaviour and the streaming I/O are in the format addendum's
section "Autoencoder: TAEHV (Waypoint-1.5)"; the module tree below follows its tables index by index.

Time runs through the stacks as a sequence axis: every tensor inside is [N, T, C, H, W], N environments by T steps.
The streaming state of an episode is each MemBlock's previous input (TPools are empty after every 4-frame call),
kept per environment, so a batch of environments encodes and decodes in one pass while each keeps its own memory.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from waypoint_gym.checks import is_int

from .loading import load_strict, resolve_uri

log = logging.getLogger(__name__)

TAEHV_FILE = "taehv1_5.pth"
FRAMES_PER_LATENT = 4
LATENT_CHANNELS = 32
# auto_aspect_ratio: the two published 16:9 video sizes and the 2:1 working size the networks run at.
WORKING_SIZE = {(720, 1280): (512, 1024), (360, 640): (256, 512)}
VIDEO_SIZE = {work: video for video, work in WORKING_SIZE.items()}
WARMUP_PASSES = 3  # extra decoder passes on the first latent after a reset, their frames dropped


# -----------------------------------------------------------------------------
# layers


def conv3(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """3 tanh(x / 3): a soft clamp of the latent to (-3, 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    """y_t = relu(conv(cat(x_t, x_{t-1})) + x_t), where x_{t-1} is this block's previous input (zeros after a reset)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Sequential(conv3(2 * c, c), nn.ReLU(), conv3(c, c), nn.ReLU(), conv3(c, c))

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [N, T, C, H, W], past [N, C, H, W] -> (y [N, T, C, H, W], the new past x[:, -1])."""
        prev = torch.cat([past[:, None], x[:, :-1]], dim=1)  # [N, T, C, H, W]: each step's previous input
        h = self.conv(torch.cat([x, prev], dim=2).flatten(0, 1)).unflatten(0, x.shape[:2])
        return F.relu(h + x), x[:, -1]


class TPool(nn.Module):
    """s consecutive steps -> one: a 1x1 conv (no bias) over their channels, earliest step first."""

    def __init__(self, c: int, s: int):
        super().__init__()
        self.s = s
        self.conv = nn.Conv2d(c * s, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, T, C, H, W = x.shape  # T is a multiple of s: 4 frames per call keep every pool aligned
        x = x.reshape(N, T // self.s, self.s * C, H, W)
        return self.conv(x.flatten(0, 1)).unflatten(0, (N, T // self.s))


class TGrow(nn.Module):
    """One step -> s steps: a 1x1 conv (no bias) to s*C channels, the first C channels being the earliest step."""

    def __init__(self, c: int, s: int):
        super().__init__()
        self.s = s
        self.conv = nn.Conv2d(c, c * s, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, T, C, H, W = x.shape
        g = self.conv(x.flatten(0, 1)).unflatten(0, (N, T))  # [N, T, s*C, H, W]
        return g.reshape(N, T * self.s, C, H, W)


def encoder_layers() -> nn.Sequential:
    """[N, 4k, 12, H/2, W/2] (pixel-unshuffled frames) -> [N, k, 32, H/16, W/16]."""
    return nn.Sequential(
        conv3(12, 64), nn.ReLU(),  # 0, 1
        TPool(64, 2), conv3(64, 64, stride=2, bias=False), MemBlock(64), MemBlock(64), MemBlock(64),  # 2-6: H/4
        TPool(64, 2), conv3(64, 64, stride=2, bias=False), MemBlock(64), MemBlock(64), MemBlock(64),  # 7-11: H/8
        TPool(64, 1), conv3(64, 64, stride=2, bias=False), MemBlock(64), MemBlock(64), MemBlock(64),  # 12-16: H/16
        conv3(64, LATENT_CHANNELS),  # 17: the latent
    )


def decoder_layers() -> nn.Sequential:
    """[N, k, 32, h, w] -> [N, 4k, 12, 8h, 8w] (pixel-shuffled afterwards to 3 x 16h x 16w)."""
    up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
    return nn.Sequential(
        Clamp(), conv3(LATENT_CHANNELS, 256), nn.ReLU(),  # 0-2
        MemBlock(256), MemBlock(256), MemBlock(256),  # 3-5
        up(), TGrow(256, 1), conv3(256, 128, bias=False),  # 6-8: 2h
        MemBlock(128), MemBlock(128), MemBlock(128),  # 9-11
        up(), TGrow(128, 2), conv3(128, 64, bias=False),  # 12-14: 4h, 2 steps
        MemBlock(64), MemBlock(64), MemBlock(64),  # 15-17
        up(), TGrow(64, 2), conv3(64, 64, bias=False),  # 18-20: 8h, 4 steps
        nn.ReLU(), conv3(64, 12),  # 21, 22
    )


def run_layers(layers: nn.Sequential, x: torch.Tensor, memory: list[torch.Tensor]) -> tuple[torch.Tensor, list]:
    """Walk the stack layer by layer over all T steps at once; memory holds each MemBlock's previous input."""
    new_memory = []
    for layer in layers:
        if isinstance(layer, MemBlock):
            x, past = layer(x, memory[len(new_memory)])
            new_memory.append(past)
        elif isinstance(layer, (TPool, TGrow)):
            x = layer(x)
        else:  # per-step layers: conv, ReLU, clamp, upsample
            x = layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    return x, new_memory


def memory_shapes(layers: nn.Sequential, frame: tuple[int, int], decoder: bool) -> list[tuple[int, int, int]]:
    """[C, H, W] of each MemBlock's input, for input frames (encoder) or latents (decoder) of size `frame`."""
    h, w = (frame[0] // 2, frame[1] // 2) if not decoder else frame
    shapes = []
    for layer in layers:
        if isinstance(layer, MemBlock):
            shapes.append((layer.conv[0].out_channels, h, w))
        elif isinstance(layer, nn.Conv2d) and layer.stride[0] == 2:
            h, w = (h + 1) // 2, (w + 1) // 2
        elif isinstance(layer, nn.Upsample):
            h, w = 2 * h, 2 * w
    return shapes


# -----------------------------------------------------------------------------
# the autoencoder with its per-environment streams


class TAEHV(nn.Module):
    """TAEHV 1.5 with a streaming state per environment.

    `encode` takes 4 uint8 frames per environment and gives one latent; `decode` takes one latent and gives its 4
    frames. The first decode after a reset warms the decoder up (3 extra passes of the same latent, their frames
    dropped). `reset(env_ids)` starts new episodes. `batch_size` environments are kept (1 unless set).
    """

    frames_per_latent = FRAMES_PER_LATENT

    def __init__(self, auto_aspect_ratio: bool = True, batch_size: int = 1):
        super().__init__()
        self.encoder = encoder_layers()
        self.decoder = decoder_layers()
        self.auto_aspect_ratio = auto_aspect_ratio
        self.set_batch_size(batch_size)

    @property
    def latent_channels(self) -> int:
        return LATENT_CHANNELS

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # -- streams

    def set_batch_size(self, batch_size: int) -> None:
        """Keep `batch_size` independent streams (all reset)."""
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self._enc_memory: list[torch.Tensor] | None = None  # per MemBlock [B, C, H, W], allocated on first use
        self._dec_memory: list[torch.Tensor] | None = None
        self._enc_size: tuple[int, int] | None = None  # the working size the memories are for
        self._dec_size: tuple[int, int] | None = None
        self._warm = torch.zeros(self.batch_size, dtype=torch.bool)  # decoded since the reset

    def reset(self, env_ids=None) -> None:
        """Forget the selected environments' encoder and decoder memories (all when None)."""
        ids = self._ids(env_ids)
        if ids is None:  # a full reset frees the memories, so the next episodes may use another frame size
            self._enc_memory = self._dec_memory = self._enc_size = self._dec_size = None
            self._warm[:] = False
            return
        for memory in (self._enc_memory, self._dec_memory):  # out of place: they may be inference tensors
            for i, m in enumerate(memory or []):
                memory[i] = m.index_fill(0, ids.to(m.device), 0)
        self._warm[ids] = False

    def _ids(self, env_ids) -> torch.Tensor | None:
        if env_ids is None:
            return None
        ids = torch.as_tensor(np.atleast_1d(np.asarray(env_ids.cpu() if torch.is_tensor(env_ids) else env_ids)))
        if ids.ndim != 1 or ids.numel() == 0 or ids.dtype in (torch.bool,) or ids.is_floating_point():
            raise ValueError(f"env_ids must be an int or a non-empty sequence of ints, got {env_ids!r}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.batch_size:
            raise IndexError(f"env_ids {ids.tolist()} out of range for the autoencoder's {self.batch_size} streams")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"env_ids has duplicates: {ids.tolist()}")
        return ids.long()

    def _memory(self, which: str, size: tuple[int, int], ids: torch.Tensor | None, n: int) -> list[torch.Tensor]:
        """The selected envs' memories for working size `size` (allocated zero on first use after a full reset)."""
        layers = self.encoder if which == "enc" else self.decoder
        memory, have = getattr(self, f"_{which}_memory"), getattr(self, f"_{which}_size")
        if memory is None:
            frame = size if which == "enc" else (size[0] // 16, size[1] // 16)
            shapes = memory_shapes(layers, frame, decoder=which == "dec")
            memory = [torch.zeros(self.batch_size, *s, device=self.device, dtype=self.dtype) for s in shapes]
            setattr(self, f"_{which}_memory", memory)
            setattr(self, f"_{which}_size", size)
        elif have != size:
            raise ValueError(
                f"this episode's frames are {have[0]}x{have[1]} at the autoencoder's working size, got "
                f"{size[0]}x{size[1]}; reset() all streams before changing the frame size"
            )
        if ids is None and n != self.batch_size:
            raise ValueError(f"expected frames of all {self.batch_size} environments, got {n}")
        if ids is not None and n != len(ids):
            raise ValueError(f"env_ids {ids.tolist()} select {len(ids)} environments, got {n}")
        return memory if ids is None else [m[ids.to(m.device)] for m in memory]

    def _store(self, which: str, ids: torch.Tensor | None, new: list[torch.Tensor]) -> None:
        memory = getattr(self, f"_{which}_memory")
        for i, v in enumerate(new):  # out of place, so calls in and out of inference mode may alternate
            memory[i] = v if ids is None else memory[i].index_copy(0, ids.to(v.device), v)

    # -- encode

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor, env_ids=None) -> torch.Tensor:
        """uint8 [4, H, W, 3] (one env) or [n, 4, H, W, 3] -> latent [32, h, w] or [n, 32, h, w], the AE's dtype.

        Continues each selected env's stream: latent k of an episode depends on its frames 0 .. 4k+3.
        """
        x, batched = self._frames_to_tensor(frames)  # [n, 4, H, W, 3] uint8
        ids = self._ids(env_ids)
        n, T, H, W = x.shape[:4]
        size = self.working_size((H, W))
        x = x.to(self.device).permute(0, 1, 4, 2, 3).to(self.dtype) / 255  # [n, 4, 3, H, W] in [0, 1]
        if size != (H, W):
            x = F.interpolate(x.flatten(0, 1), size=size, mode="bilinear", align_corners=False).unflatten(0, (n, T))
        x = F.pixel_unshuffle(x.flatten(0, 1), 2).unflatten(0, (n, T))  # [n, 4, 12, H'/2, W'/2]
        memory = self._memory("enc", size, ids, n)
        z, memory = run_layers(self.encoder, x, memory)  # [n, 1, 32, H'/16, W'/16]
        self._store("enc", ids, memory)
        z = z[:, 0]
        return z if batched else z[0]

    def working_size(self, video: tuple[int, int]) -> tuple[int, int]:
        """The size frames of size `video` are encoded at (an error for sizes the autoencoder cannot take)."""
        H, W = video
        if self.auto_aspect_ratio:
            if (H, W) not in WORKING_SIZE:
                raise ValueError(
                    f"frames are {H}x{W}; with auto_aspect_ratio the autoencoder takes 720x1280 or 360x640 frames"
                )
            return WORKING_SIZE[(H, W)]
        if H % 16 or W % 16 or H == 0 or W == 0:
            raise ValueError(f"frames are {H}x{W}; without auto_aspect_ratio height and width must be multiples of 16")
        return H, W

    def video_size(self, latent: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the frames decoded from a latent of size (h, w)."""
        work = (16 * latent[0], 16 * latent[1])
        if not self.auto_aspect_ratio:
            return work
        if work not in VIDEO_SIZE:
            raise ValueError(
                f"latents are {latent[0]}x{latent[1]}; with auto_aspect_ratio the autoencoder decodes 32x64 or 16x32 "
                "latents (720x1280 or 360x640 frames)"
            )
        return VIDEO_SIZE[work]

    @staticmethod
    def _frames_to_tensor(frames) -> tuple[torch.Tensor, bool]:
        if isinstance(frames, np.ndarray):
            if frames.dtype != np.uint8:
                raise TypeError(f"frames must be uint8, got numpy {frames.dtype}")
            frames = torch.from_numpy(frames if frames.flags.writeable else frames.copy())
        elif isinstance(frames, torch.Tensor):
            if frames.dtype != torch.uint8:
                raise TypeError(f"frames must be uint8, got {frames.dtype}")
        else:
            raise TypeError(f"frames must be a uint8 numpy array or torch tensor, got {type(frames).__name__}")
        batched = frames.ndim == 5
        if frames.ndim not in (4, 5) or frames.shape[-4] != FRAMES_PER_LATENT or frames.shape[-1] != 3:
            raise ValueError(
                f"TAEHV encodes 4 frames per latent: frames must be [4, H, W, 3] or [n, 4, H, W, 3] uint8, "
                f"got shape {tuple(frames.shape)}"
            )
        return (frames if batched else frames[None]), batched

    # -- decode

    @torch.no_grad()
    def decode_float(self, z: np.ndarray | torch.Tensor, env_ids=None) -> torch.Tensor:
        """Latent [32, h, w] or [n, 32, h, w] -> float32 frames [(n,) 4, H, W, 3] on the 0..255 scale, not rounded."""
        z = torch.as_tensor(z)
        if not z.is_floating_point():
            raise TypeError(f"latents must be floating point, got {z.dtype}")
        if z.ndim not in (3, 4) or z.shape[-3] != LATENT_CHANNELS:
            raise ValueError(f"latents must be [32, h, w] or [n, 32, h, w], got shape {tuple(z.shape)}")
        batched = z.ndim == 4
        z = (z if batched else z[None]).to(self.device, self.dtype)[:, None]  # [n, 1, 32, h, w]
        ids = self._ids(env_ids)
        n, h, w = z.shape[0], z.shape[-2], z.shape[-1]
        video = self.video_size((h, w))
        memory = self._memory("dec", (16 * h, 16 * w), ids, n)
        cold = ~(self._warm if ids is None else self._warm[ids])  # [n]: first decode since the reset
        if cold.any():  # warm-up: 3 passes of the same latent through the cold envs' memories, frames dropped
            idx = cold.nonzero()[:, 0].to(z.device)
            warm_memory = [m[idx] for m in memory]
            for _ in range(WARMUP_PASSES):
                _, warm_memory = run_layers(self.decoder, z[idx], warm_memory)
            memory = [m.index_copy(0, idx, wm) for m, wm in zip(memory, warm_memory)]
        y, memory = run_layers(self.decoder, z, memory)  # [n, 4, 12, 8h, 8w]
        self._store("dec", ids, memory)
        if ids is None:
            self._warm[:] = True
        else:
            self._warm[ids] = True
        y = F.pixel_shuffle(y.flatten(0, 1), 2).clamp(0, 1)  # [n*4, 3, 16h, 16w]
        if video != (16 * h, 16 * w):
            y = F.interpolate(y, size=video, mode="bilinear", align_corners=False).clamp(0, 1)
        y = (y.float() * 255).unflatten(0, (n, FRAMES_PER_LATENT)).permute(0, 1, 3, 4, 2)  # [n, 4, H, W, 3]
        return y if batched else y[0]

    def decode(self, z: np.ndarray | torch.Tensor, env_ids=None) -> np.ndarray:
        """Latent [32, h, w] or [n, 32, h, w] -> uint8 frames [4, H, W, 3] or [n, 4, H, W, 3] (numpy)."""
        return self.decode_float(z, env_ids).round().to(torch.uint8).cpu().numpy()

    # -- files

    @classmethod
    def from_pretrained(
        cls,
        folder_or_file: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        auto_aspect_ratio: bool = True,
        batch_size: int = 1,
    ) -> TAEHV:
        """Load `taehv1_5.pth` from a folder, a hub repo id or the file's own path (tensors only, no code run)."""
        path = Path(folder_or_file).expanduser()
        if not path.is_file():
            path = resolve_uri(folder_or_file, allow_patterns=[TAEHV_FILE]) / TAEHV_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{path.parent} lacks {TAEHV_FILE}")
        state = read_state_dict(path)
        model = cls(auto_aspect_ratio=auto_aspect_ratio, batch_size=batch_size)
        load_strict(model, trim_tgrow_rows(state, model), what=str(path))
        log.info("loaded TAEHV %s", path)
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write `folder/taehv1_5.pth` (a state dict of tensors), loadable with `from_pretrained`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, folder / TAEHV_FILE)
        return folder


def random_taehv(auto_aspect_ratio: bool = True, seed: int = 0) -> TAEHV:
    """A TAEHV of RANDOM weights (tests and benchmarks only), its convolutions scaled so activations stay O(1)."""
    gen = torch.Generator().manual_seed(seed)
    ae = TAEHV(auto_aspect_ratio=auto_aspect_ratio)
    with torch.no_grad():
        for m in ae.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return ae.eval().requires_grad_(False)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A `.pth` holding {name: tensor}, read with weights_only=True; anything else is a clear error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path} is not a state dict of tensors readable with weights_only=True: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ValueError(f"{path} is not a state dict of tensors (a mapping of names to tensors), "
                         f"got {type(state).__name__}")
    return {k: v.float() for k, v in state.items()}


def trim_tgrow_rows(state: dict[str, torch.Tensor], model: TAEHV) -> dict[str, torch.Tensor]:
    """Decoder TGrow kernels stored with more output rows than the model's keep their last rows (upstream's patch)."""
    state = dict(state)
    for i, layer in enumerate(model.decoder):
        key = f"decoder.{i}.conv.weight"
        if isinstance(layer, TGrow) and key in state and state[key].shape[0] > layer.conv.out_channels:
            state[key] = state[key][-layer.conv.out_channels:]
    return state
