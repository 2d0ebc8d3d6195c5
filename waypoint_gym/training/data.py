"""Reading collected segments back: whole arrays, clips for the world model, and latents cached once.

The chunk format is described in `waypoint_gym.training.collect`. Latents are cached as one array
[S, L, C, h, w] (float16 by default) in a `.npy` file, which `load_latents` memory-maps, or in a
`.safetensors` file under the name "latents".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from waypoint_gym.engine.config import WaypointConfig
from waypoint_gym.engine.controls import control_vectors, resolve_keys
from waypoint_gym.worlds.arena import JUMP_FRAMES, JUMP_KEY

log = logging.getLogger(__name__)

FIELDS = ("frames", "keys", "mouse", "reward", "terminated", "length", "prompt", "seed")
LATENTS_KEY = "latents"


def chunk_paths(data_dir: str | os.PathLike) -> list[Path]:
    """The chunk files of a collection, in order; raises if there are none."""
    paths = sorted(Path(data_dir).glob("chunk_*[0-9].npz"))
    if not paths:
        raise FileNotFoundError(f"no chunk_*.npz files in {data_dir}")
    return paths


def read_meta(data_dir: str | os.PathLike) -> dict[str, Any]:
    """meta.json of a collection (key names, frame size, segment length, counts)."""
    return json.loads((Path(data_dir) / "meta.json").read_text())


def load_chunks(data_dir: str | os.PathLike, fields: Sequence[str] | None = None,
                max_segments: int | None = None) -> dict[str, np.ndarray]:
    """Every chunk's arrays concatenated over segments: {name: [S, ...]}; `fields` picks some (all by default),
    `max_segments` keeps the first segments only (reading only the chunks that hold them).

    Leaving out "frames" reads only the small arrays, which is fast. Arrays are filled in place, so peak memory
    is the result plus one chunk.
    """
    paths = chunk_paths(data_dir)
    fields = list(FIELDS if fields is None else fields)
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; the chunks hold {list(FIELDS)}")
    if max_segments is not None and max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    counts, left = [], max_segments
    for path in paths:
        with np.load(path) as chunk:
            counts.append(len(chunk["length"]) if left is None else min(len(chunk["length"]), left))
        if left is not None:
            left -= counts[-1]
            if left == 0:
                break
    paths = paths[:len(counts)]
    total, offset = sum(counts), 0
    out: dict[str, Any] = {}
    for path, count in zip(paths, counts):
        with np.load(path) as chunk:
            for name in fields:
                array = chunk[name][:count]
                if array.dtype.kind == "U":  # string widths differ between chunks: join at the end
                    out.setdefault(name, []).append(array)
                    continue
                if name not in out:
                    out[name] = np.empty((total, *array.shape[1:]), array.dtype)
                out[name][offset:offset + count] = array
        offset += count
    return {name: np.concatenate(v) if isinstance(v, list) else v for name, v in out.items()}


def load_latents(path: str | os.PathLike) -> np.ndarray:
    """Cached latents [S, L, C, h, w]: a .npy file memory-mapped, or a .safetensors file read whole."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(path)[LATENTS_KEY]
    return np.load(path, mmap_mode="r")


def encode_dataset(
    autoencoder: torch.nn.Module,
    data_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    batch: int = 256,
    dtype: np.dtype | str = np.float16,
    progress: bool = True,
) -> Path:
    """Encode every frame of a collection once -> latents [S, L, C, h, w] in `out_path` (.npy or .safetensors).

    `autoencoder` is a `waypoint_gym.engine.autoencoder.Autoencoder`, used on its own device and dtype.
    Padding frames are encoded too, so the array lines up with the chunks' other arrays.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    paths = chunk_paths(data_dir)
    counts = []
    for path in paths:
        with np.load(path) as chunk:
            counts.append(chunk["keys"].shape[:2])
    n_segments, segment_len = sum(c[0] for c in counts), counts[0][1]
    shape = (n_segments, segment_len, autoencoder.latent_channels, *autoencoder.latent_size)
    if out_path.suffix == ".safetensors":
        latents = np.empty(shape, dtype)
    else:
        tmp = out_path.with_name(out_path.name + ".tmp")
        latents = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)

    offset = 0
    bar = tqdm(total=n_segments * segment_len, unit="frame", desc="encode", disable=not progress)
    for path, (count, _) in zip(paths, counts):
        with np.load(path) as chunk:
            frames = chunk["frames"].reshape(-1, *chunk["frames"].shape[2:])  # [S*L, H, W, 3]
        flat = latents[offset:offset + count].reshape(-1, *shape[2:])  # a view: [S*L, C, h, w]
        for b in range(0, len(frames), batch):
            z = autoencoder.encode(frames[b:b + batch])  # [B, C, h, w]
            flat[b:b + batch] = z.float().cpu().numpy().astype(dtype)
            bar.update(len(z))
        offset += count
    bar.close()

    if out_path.suffix == ".safetensors":
        save_file({LATENTS_KEY: latents}, out_path)
    else:
        latents.flush()
        del latents
        os.replace(tmp, out_path)
    log.info("encoded %d segments x %d frames to %s", n_segments, segment_len, out_path)
    return out_path


class ClipSampler:
    """Random training clips of F frames as tensors on the training device.

    A clip may start anywhere in a segment: its first frame plays the seed frame, as after `WorldEngine.reset`
    followed by `append_frame`, so every clip is indexed from frame 0.

    A share `still` of each batch (its first clips) stands still: one recorded frame held for all F frames with
    nothing pressed, which is what WaypointArena shows a player who stands still (its view changes only under a
    key or the mouse, or while a jump comes down), and which its recorded idle spells (3 frames on average)
    rarely show. The frames held are those with no JUMP_KEY press in the JUMP_FRAMES frames up to them (a segment starts
    at its episode's reset, on the ground).
    """

    def __init__(self, data: dict, key_names: list[str], cfg: WaypointConfig, clip_frames: int, seed: int, device,
                 still: float = 0.0):
        if not 0.0 <= still <= 1.0:
            raise ValueError(f"still must be a share in [0, 1], got {still}")
        self.lengths = lengths = np.asarray(data["length"])
        self.segments = np.flatnonzero(lengths >= clip_frames)
        if len(self.segments) == 0:
            raise ValueError(f"no recorded segment has {clip_frames} frames")
        self.latents = data["latents"]  # [S, L, C, h, w]
        _, keycodes = resolve_keys(key_names, cfg.n_buttons)
        self.ctrl = control_vectors(data["keys"], data["mouse"], keycodes, cfg.n_buttons)  # [S, L, nb + 3]
        self.prompts = [str(p) for p in data["prompt"]]
        self.F, self.device, self.still = clip_frames, device, still
        self.rng = np.random.default_rng(seed)
        if still:  # (segment, frame) of every frame on the ground: no jump pressed in the JUMP_FRAMES up to it
            jumps = np.asarray(data["keys"])[..., key_names.index(JUMP_KEY)] if JUMP_KEY in key_names else \
                np.zeros(np.shape(data["keys"])[:2])  # [S, L]
            jumps = np.pad(jumps, ((0, 0), (JUMP_FRAMES - 1, 0)))  # [S, J - 1 + L]
            airborne = np.lib.stride_tricks.sliding_window_view(jumps, JUMP_FRAMES, axis=1).any(-1)  # [S, L]
            self.grounded = np.argwhere(~airborne & (np.arange(airborne.shape[1]) < lengths[:, None]))  # [N, 2]
            if len(self.grounded) == 0:
                raise ValueError(f"no recorded frame to stand still on: each has a jump pressed in the {JUMP_FRAMES} "
                                 f"frames up to it")

    def sample(self, batch: int):
        n_still = round(batch * self.still)
        idx = np.sort(self.rng.choice(self.segments, size=batch - n_still))
        start = (self.rng.random(len(idx)) * (self.lengths[idx] - self.F + 1)).astype(int)  # [batch - n_still]
        frames = start[:, None] + np.arange(self.F)  # [batch - n_still, F]
        if n_still:  # standing still on a frame: it repeats, with nothing pressed
            held = self.grounded[self.rng.choice(len(self.grounded), size=n_still)]  # [n_still, 2]
            idx = np.concatenate([held[:, 0], idx])
            frames = np.concatenate([np.repeat(held[:, 1:], self.F, 1), frames])
        x0 = np.stack([np.asarray(self.latents[i, f[0]: f[-1] + 1])[f - f[0]] for i, f in zip(idx, frames)])
        x0 = torch.as_tensor(x0, dtype=torch.float32, device=self.device)
        ctrl = torch.as_tensor(self.ctrl[idx[:, None], frames], device=self.device)
        ctrl[:, 0] = 0  # the seed frame is appended with no keys held, as the env does
        ctrl[:n_still] = 0
        return x0, ctrl, [self.prompts[i] for i in idx]


def world_model_data(data_dir: str | os.PathLike, latents: str | os.PathLike,
                     max_segments: int | None = None) -> tuple[dict, list[str], list[str]]:
    """What world-model training reads: a collection's recorded actions and prompts with its cached latents
    (`data["latents"]`), its key names and its captions; `max_segments` keeps the first segments only."""
    data = load_chunks(data_dir, fields=["keys", "mouse", "prompt", "length", "reward"], max_segments=max_segments)
    data["latents"] = load_latents(latents)[:max_segments]
    return data, list(read_meta(data_dir)["keys"]), sorted(set(map(str, data["prompt"])))


class RecordedStarts:
    """Episode starts from recorded play, for the Waypoint envs' `start_fn`: each call picks a segment of a
    collection and a random point in it, and returns the `context_frames` real frames up to that point as the
    seed frames, with the segment's prompt, so a dreamed episode goes on from the middle of real play.

    The frames of at most `max_segments` segments (the first ones; all by default) are read into memory, with
    the keys and mouse that made them (`keys` [S, L, K], `mouse` [S, L, 2]); with `prompts`, starts are drawn
    only from segments recorded under one of those captions. The seed frames are appended to
    the world with nothing pressed, as every seed frame is. `last_segment` and `last_frame` say where the latest
    start was taken (its seed frames are frames `last_frame - context_frames + 1 .. last_frame`).
    """

    def __init__(self, data_dir: str | os.PathLike, context_frames: int = 6, max_segments: int | None = None,
                 prompts: Sequence[str] | None = None):
        if context_frames < 1:
            raise ValueError(f"context_frames must be at least 1, got {context_frames}")
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of captions, not one str; wrap it in a list")
        data = load_chunks(data_dir, ["frames", "keys", "mouse", "length", "prompt"], max_segments)
        usable = data["length"] >= context_frames
        if prompts is not None:
            usable &= np.isin(data["prompt"].astype(str), list(prompts))
        self.segments = np.flatnonzero(usable)
        if len(self.segments) == 0:
            wanted = "" if prompts is None else f" under the prompts {list(prompts)}"
            raise ValueError(f"no segment in {data_dir} has {context_frames} frames{wanted}")
        self.frames, self.keys, self.mouse = data["frames"], data["keys"], data["mouse"]  # [S, L, H, W, 3], ...
        self.lengths, self.prompts = data["length"], [str(p) for p in data["prompt"]]
        self.key_names = list(read_meta(data_dir)["keys"])
        self.context_frames = context_frames
        self.last_segment: int | None = None
        self.last_frame: int | None = None

    def __len__(self) -> int:
        return len(self.segments)

    def __call__(self, rng: np.random.Generator) -> dict[str, Any]:
        s = int(self.segments[rng.integers(len(self.segments))])
        end = int(rng.integers(self.context_frames - 1, self.lengths[s]))  # the last seed frame
        self.last_segment, self.last_frame = s, end
        return {"prompt": self.prompts[s], "seed_frames": self.frames[s, end - self.context_frames + 1: end + 1]}
