"""Export a trained world as an ordinary Waypoint-format checkpoint folder that `WorldEngine` loads as it is."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from waypoint_gym.engine.config import WaypointConfig
from waypoint_gym.engine.model import WaypointModel
from waypoint_gym.engine.world_engine import save_checkpoint

from .prompt_encoder import CaptionEncoder

log = logging.getLogger(__name__)


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
