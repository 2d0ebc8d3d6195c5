"""Finding checkpoint folders (the bundled world, short names, hub repo ids or local paths) and loading state dicts
strictly."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

# The world opened when no model is named, shipped in waypoint_gym/assets/.
BUNDLED_WORLD = Path(__file__).resolve().parents[1] / "assets" / "default_world"
# Short names for published worlds.
MODEL_ALIASES = {"waypoint-1-small": "Overworld/Waypoint-1-Small"}


def resolve_model(model: str | os.PathLike | None) -> str | os.PathLike:
    """A model argument -> what WorldEngine loads: the bundled world for None, hub ids for short names."""
    if model is None:
        if not (BUNDLED_WORLD / "config.yaml").is_file():
            raise FileNotFoundError(
                f"no model given and the bundled default world is missing ({BUNDLED_WORLD} has no config.yaml); "
                "pass model=<hub id, checkpoint folder or preset name>"
            )
        return BUNDLED_WORLD
    if isinstance(model, str) and model.lower() in MODEL_ALIASES:
        return MODEL_ALIASES[model.lower()]
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a hub id, a folder path or a preset name, got {type(model).__name__}")
    return model


def resolve_uri(uri: str | os.PathLike, allow_patterns: list[str] | None = None) -> Path:
    """A local folder as it is; anything else is a hub repo id fetched with `snapshot_download`."""
    path = Path(uri).expanduser()
    if path.is_dir():
        return path
    text = str(uri)
    looks_local = path.is_absolute() or text.startswith((".", "~")) or text.count("/") != 1
    if looks_local:
        raise FileNotFoundError(f"checkpoint folder not found: {text}")
    from huggingface_hub import snapshot_download

    token = os.environ.get("HF_TOKEN") or None
    try:
        return Path(snapshot_download(text, allow_patterns=allow_patterns, token=token))
    except Exception as e:  # network errors, missing repos, gated repos
        raise FileNotFoundError(f"{text!r} is not a local folder and could not be fetched from the hub: {e}") from e


def require_files(folder: Path, names: list[str]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}")


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str = "checkpoint") -> None:
    """Load `state_dict` into `module`, raising one error that lists every missing, unexpected or mis-shaped key."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshaped = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if own[k].shape != state_dict[k].shape
    )
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
            if keys:
                parts.append(f"{label} ({len(keys)}): " + ", ".join(keys))
        raise ValueError(f"{what} does not match the model: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=True)
