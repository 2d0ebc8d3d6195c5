"""Finding checkpoint folders (the bundled world, short names, hub repo ids or local paths) and loading state dicts
strictly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from torch import nn

# The world opened when no model is named, shipped in waypoint_gym/assets/.
BUNDLED_WORLD = Path(__file__).resolve().parents[1] / "assets" / "default_world"
# Short names for published worlds.
MODEL_ALIASES = {
    "waypoint-1-small": "Overworld/Waypoint-1-Small",
    "waypoint-1.5-1b": "Overworld/Waypoint-1.5-1B",
    "waypoint-1.5-360p": "Overworld/Waypoint-1.5-1B-360P",
}


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


# What a checkpoint download fetches. Waypoint-1.5 hub repos also ship redundant diffusers copies (transformer/,
# vae/, modular_blocks.py): only the root config and weights are fetched (format addendum, "Files").
WAYPOINT_1_PATTERNS = ["*.yaml", "*.yml", "*.safetensors", "*.json"]
WAYPOINT_15_PATTERNS = ["config.yaml", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
SHARD_INDEX = "model.safetensors.index.json"


def resolve_checkpoint(uri: str | os.PathLike) -> Path:
    """A world-model checkpoint folder: local as it is, a hub repo id fetched (its config first, to choose files)."""
    if Path(uri).expanduser().is_dir():
        return Path(uri).expanduser()
    config = resolve_uri(uri, allow_patterns=["config.yaml"]) / "config.yaml"
    model_type = None
    if config.is_file():
        with open(config) as f:
            model_type = (yaml.safe_load(f) or {}).get("model_type")
    patterns = WAYPOINT_15_PATTERNS if model_type == "waypoint-1.5" else WAYPOINT_1_PATTERNS
    return resolve_uri(uri, allow_patterns=patterns)


def load_model_weights(folder: Path, device="cpu") -> dict[str, torch.Tensor]:
    """model.safetensors, or the shards a model.safetensors.index.json lists (never executes code)."""
    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors", device=str(device))
    if not (folder / SHARD_INDEX).is_file():
        raise FileNotFoundError(f"{folder} lacks model.safetensors (or {SHARD_INDEX} with its shards)")
    with open(folder / SHARD_INDEX) as f:
        weight_map = json.load(f).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{folder / SHARD_INDEX} has no weight_map (tensor name -> shard file)")
    shards = sorted(set(weight_map.values()))
    require_files(folder, shards)
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        part = load_file(folder / shard, device=str(device))
        twice = sorted(set(part) & set(state))
        if twice:
            raise ValueError(f"{folder}: tensors {twice[:5]} are in more than one shard ({shard} among them)")
        state.update(part)
    unlisted = sorted(set(weight_map) - set(state))
    if unlisted:
        raise ValueError(f"{SHARD_INDEX} lists tensors no shard holds: {unlisted[:5]}")
    return state


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
    tied: dict[int, list[str]] = {}  # one module shared by several blocks has a key per block
    for k, v in own.items():
        tied.setdefault(v.data_ptr(), []).append(k)
    disagree = sorted(keys[0] + " / " + k for keys in tied.values() if len(keys) > 1 for k in keys[1:]
                      if k in state_dict and keys[0] in state_dict and own[k].shape == state_dict[k].shape
                      and not torch.equal(state_dict[k], state_dict[keys[0]]))
    if missing or unexpected or misshaped or disagree:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped),
                            ("copies of one shared tensor that differ", disagree)):
            if keys:
                parts.append(f"{label} ({len(keys)}): " + ", ".join(keys))
        raise ValueError(f"{what} does not match the model: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=True)


def remap_waypoint15(state: dict[str, torch.Tensor], cfg) -> dict[str, torch.Tensor]:
    """Waypoint-1.5 key spellings -> this model's names (format addendum, "Key remap"; applied before the strict load).

    Each rule fires only where its source key is present and never overwrites a key that already exists, so
    files already in the canonical spelling pass through unchanged. A fused `attn.qkv_proj.weight` is split too.
    """
    state = {k: v for k, v in state.items() if ".cond_heads." not in k}  # rule 5: a stale plural copy
    C, (ph, pw), D = cfg.channels, cfg.patch, cfg.d_model

    def move(src: str, dst: str) -> None:
        if src in state and dst not in state:
            state[dst] = state.pop(src)

    # 1-2. the transposed-conv output layer [D, C, ph, pw] (+ per-channel bias [C]) -> Linear [C*ph*pw, D]
    w = state.get("unpatchify.weight")
    if w is not None and w.ndim == 4:
        state["unpatchify.weight"] = w.permute(1, 2, 3, 0).reshape(C * ph * pw, D)  # row = c*ph*pw + i*pw + j
    b = state.get("unpatchify.bias")
    if b is not None and b.numel() == C and ph * pw > 1:
        state["unpatchify.bias"] = b.repeat_interleave(ph * pw)
    # 3. per block
    for i in range(cfg.n_layers):
        p = f"transformer.blocks.{i}."
        for fc in ("fc1", "fc2"):
            move(f"{p}dit_mlp.{fc}.weight", f"{p}mlp.{fc}.weight")
        bias = state.pop(f"{p}mlp_cond_head.bias_in", None)
        attn_bias = state.pop(f"{p}attn_cond_head.bias_in", None)
        bias = bias if bias is not None else attn_bias
        if bias is not None and f"{p}cond_head.bias_in" not in state:
            state[f"{p}cond_head.bias_in"] = bias
        for j in range(3):
            move(f"{p}attn_cond_head.cond_proj.{j}.weight", f"{p}cond_head.cond_proj.{j}.weight")
            move(f"{p}mlp_cond_head.cond_proj.{j}.weight", f"{p}cond_head.cond_proj.{j + 3}.weight")
        fx, fc_ = f"{p}ctrl_mlpfusion.fc1_x.weight", f"{p}ctrl_mlpfusion.fc1_c.weight"
        if fx in state and fc_ in state and f"{p}ctrl_mlpfusion.mlp.fc1.weight" not in state:
            state[f"{p}ctrl_mlpfusion.mlp.fc1.weight"] = torch.cat([state.pop(fx), state.pop(fc_)], dim=1)  # [D, 2D]
        move(f"{p}ctrl_mlpfusion.fc2.weight", f"{p}ctrl_mlpfusion.mlp.fc2.weight")
        qkv = state.get(f"{p}attn.qkv_proj.weight")
        if qkv is not None and f"{p}attn.q_proj.weight" not in state:
            kv = cfg.n_kv_heads * cfg.head_dim
            q, k, v = state.pop(f"{p}attn.qkv_proj.weight").split([D, kv, kv], dim=0)  # q, k, v order
            state[f"{p}attn.q_proj.weight"], state[f"{p}attn.k_proj.weight"], state[f"{p}attn.v_proj.weight"] = q, k, v
    # 4. the shared cond projections, stored under block 0 only
    for i in range(1, cfg.n_layers):
        for j in range(6):
            src = f"transformer.blocks.0.cond_head.cond_proj.{j}.weight"
            if src in state:
                state.setdefault(f"transformer.blocks.{i}.cond_head.cond_proj.{j}.weight", state[src])
    return state
