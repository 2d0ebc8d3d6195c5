"""Reading collected segments back: whole arrays, clips for the world model, and latents cached once.

The chunk format is described in `waypoint_gym.training.collect`. Latents are cached as one array
[S, L, C, h, w] (float16 by default) in a `.npy` file, which `ClipDataset` memory-maps, or in a
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
from torch.utils.data import Dataset
from tqdm import tqdm

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


def load_chunks(data_dir: str | os.PathLike, fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Every chunk's arrays concatenated over segments: {name: [S, ...]}; `fields` picks some (all by default).

    Leaving out "frames" reads only the small arrays, which is fast. Arrays are filled in place, so peak memory
    is the result plus one chunk.
    """
    paths = chunk_paths(data_dir)
    fields = list(FIELDS if fields is None else fields)
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; the chunks hold {list(FIELDS)}")
    counts = []
    for path in paths:
        with np.load(path) as chunk:
            counts.append(len(chunk["length"]))
    total, offset = sum(counts), 0
    out: dict[str, Any] = {}
    for path, count in zip(paths, counts):
        with np.load(path) as chunk:
            for name in fields:
                array = chunk[name]
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


class ClipDataset(Dataset):
    """Clips of `clip_len` frames of the collected segments, from frame 0 (or a random start).

    Item i is segment `segments[i]` (all by default): a dict with `frames` uint8 [F, H, W, 3] (or `latents`
    float32 [F, C, h, w] when `latents` is given: an array or a file from `encode_dataset`), `keys` float32
    [F, K], `mouse` float32 [F, 2], `reward` float32 [F], `terminated` bool [F], `valid` bool [F] (False on the
    padding after an episode ended), `prompt` str and `index` (the segment). With `random_start` a clip starts
    anywhere in its segment's valid frames that leaves room for it; frame 0 of the clip keeps its action.
    """

    def __init__(
        self,
        data: str | os.PathLike | dict[str, np.ndarray],
        clip_len: int,
        latents: str | os.PathLike | np.ndarray | None = None,
        segments: Sequence[int] | np.ndarray | None = None,
        random_start: bool = False,
    ):
        if latents is not None and not isinstance(latents, np.ndarray):
            latents = load_latents(latents)
        if not isinstance(data, dict):
            fields = [f for f in FIELDS if f != "frames" or latents is None]
            data = load_chunks(data, fields)
        self.data, self.latents = data, latents
        n_segments, segment_len = data["keys"].shape[:2]
        if latents is not None and tuple(latents.shape[:2]) != (n_segments, segment_len):
            raise ValueError(f"latents of shape {tuple(latents.shape)} do not match {n_segments} segments of "
                             f"{segment_len} frames")
        if latents is None and "frames" not in data:
            raise ValueError("data holds no frames: load them or pass latents")
        if not 1 <= clip_len <= segment_len:
            raise ValueError(f"clip_len must be between 1 and the segment length {segment_len}, got {clip_len}")
        self.clip_len, self.random_start = clip_len, random_start
        self.segments = np.arange(n_segments) if segments is None else np.asarray(segments, np.int64)

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s, f, d = int(self.segments[i]), self.clip_len, self.data
        start = 0
        if self.random_start:
            start = int(torch.randint(0, max(0, int(d["length"][s]) - f) + 1, ()))
        clip = slice(start, start + f)
        item: dict[str, Any] = {
            "keys": torch.from_numpy(d["keys"][s, clip].astype(np.float32)),  # [F, K]
            "mouse": torch.from_numpy(d["mouse"][s, clip].astype(np.float32)),  # [F, 2]
            "reward": torch.from_numpy(d["reward"][s, clip].astype(np.float32)),  # [F]
            "terminated": torch.from_numpy(d["terminated"][s, clip].copy()),  # [F]
            "valid": torch.arange(start, start + f) < int(d["length"][s]),  # [F]
            "prompt": str(d["prompt"][s]),
            "index": s,
        }
        if self.latents is not None:
            item["latents"] = torch.from_numpy(np.asarray(self.latents[s, clip], np.float32))  # [F, C, h, w]
        else:
            item["frames"] = torch.from_numpy(d["frames"][s, clip].copy())  # [F, H, W, 3]
        return item


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
