"""Checkpoint folders of trained worlds: export one in the Waypoint format that `WorldEngine` loads as it is, and load
one (or a training run's state) back as a model and caption encoder to train on."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine.config import WaypointConfig
from waypoint_gym.engine.model import WaypointModel
from waypoint_gym.engine.prompt import CaptionEncoder
from waypoint_gym.engine.world_engine import load_model, save_checkpoint

log = logging.getLogger(__name__)

START_FRAME_SEED = 10_000_000  # the arena seed of an exported world's start frame, far from training worlds


def export_checkpoint(
    out_dir: str | Path,
    model: WaypointModel,
    autoencoder_dir: str | Path,
    prompt_encoder: CaptionEncoder | None = None,
    reward_head_dir: str | Path | None = None,
    dtype: torch.dtype = torch.float16,
    extra_files: dict[str, Path] | None = None,
    config_extra: dict | None = None,
    start_frames: np.ndarray | None = None,
) -> Path:
    """Write `out_dir/{config.yaml, model.safetensors, autoencoder/, prompt_encoder/, reward_head/}`.

    The config names its autoencoder and prompt encoder by folders beside it (`ae_uri: autoencoder`,
    `prompt_encoder_uri: prompt_encoder`); weights are stored in `dtype` (float16 keeps bundles small).
    `config_extra` adds fields the env reads (`default_prompt`, `default_keys`, `mouse_scale`);
    `start_frames` (uint8 [n, H, W, 3]) become `start_frames.npy`, the env's start without seed frames.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fields = model.cfg.to_dict()
    fields["ae_uri"] = "autoencoder"
    if prompt_encoder is not None:
        fields["prompt_encoder_uri"] = "prompt_encoder"
        prompt_encoder.save_pretrained(out / "prompt_encoder")
    cfg = WaypointConfig.from_dict({**fields, **(config_extra or {})})
    if start_frames is not None:
        np.save(out / "start_frames.npy", np.asarray(start_frames, dtype=np.uint8))
    save_checkpoint(out, cfg, model, dtype=dtype)
    for name, src in {"autoencoder": autoencoder_dir, "reward_head": reward_head_dir, **(extra_files or {})}.items():
        if src is None:
            continue
        dst = out / name
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        (shutil.copytree if Path(src).is_dir() else shutil.copy)(src, dst)
    log.info("exported checkpoint to %s", out)
    return out


def export_world(
    out_dir: str | Path,
    model: WaypointModel,
    encoder: CaptionEncoder,
    keys: list[str],
    autoencoder_dir: str | Path,
    reward_head_dir: str | Path | None = None,
    default_prompt: str | None = None,
) -> Path:
    """Export a world trained on WaypointArena-v0 data: its keys become the checkpoint's `default_keys`; with a
    `default_prompt`, a start frame of the ground-truth game under that prompt (a held-out seed) ships too."""
    extra, start = {"default_keys": list(keys)}, None
    if default_prompt:
        from waypoint_gym.engine import Autoencoder
        from waypoint_gym.worlds import ArenaBatch

        extra["default_prompt"] = default_prompt
        size = Autoencoder.from_pretrained(autoencoder_dir).encoder.config.input_size[0]
        start = ArenaBatch(1, size=size, keys=keys).reset(seed=START_FRAME_SEED, prompt=default_prompt)[0]
    return export_checkpoint(out_dir, model, autoencoder_dir, encoder, reward_head_dir, config_extra=extra,
                             start_frames=start)


def load_teacher(path: str | Path, captions: list[str] | None = None, device="cpu"):
    """A diffusion-forcing teacher -> (model, caption encoder), in float32.

    `path` is a checkpoint folder (config.yaml, model.safetensors, prompt_encoder/), or a `.pt` of a world-model
    run (`final.pt` {"model", "encoder"} or `train_state.pt`, whose EMA is used) with the run's `config.json`
    beside it; the caption encoder of a `.pt` is rebuilt from the training `captions`.
    """
    path = Path(path)
    if path.is_dir():
        cfg, model = load_model(path, device)
        enc_dir = path / (cfg.prompt_encoder_uri or "prompt_encoder")
        if not (enc_dir / "prompt_encoder.yaml").is_file():
            raise FileNotFoundError(f"{path} has no caption encoder folder ({enc_dir.name}/prompt_encoder.yaml)")
        return model.float(), CaptionEncoder.from_pretrained(enc_dir, device=device)
    if not path.is_file():
        raise FileNotFoundError(f"teacher not found: {path}")
    config = path.parent / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"a teacher .pt needs its run's config.json beside it: {config} is missing")
    if not captions:
        raise ValueError("a teacher .pt needs the training captions to rebuild its caption encoder")
    cfg = WaypointConfig.from_dict(json.loads(config.read_text())["model"])
    state = torch.load(path, map_location=device, weights_only=True)
    model = WaypointModel(cfg).to(device)
    model.load_state_dict(state["ema"] if "ema" in state else state["model"])
    encoder = CaptionEncoder.for_captions(captions, cfg.prompt_embedding_dim).to(device)
    encoder.load_state_dict(state["encoder"])
    return model.eval().requires_grad_(False), encoder.eval().requires_grad_(False)
