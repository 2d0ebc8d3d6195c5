"""The inference core: Waypoint-format world models, their KV cache, sampler, autoencoder, prompt encoders,
controls and reward head.

Names are imported on first use, so modules that need only the key table or the controls (the ground-truth
game, `import waypoint_gym`) do not load torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .autoencoder import Autoencoder
    from .config import PRESETS, WaypointConfig, preset_config
    from .controls import CtrlInput, KeyMap, check_actions, control_vectors
    from .keycodes import DEFAULT_KEYS, KEYCODES, keycode
    from .prompt import CaptionEncoder
    from .reward_head import RewardHead, RewardHeadConfig
    from .speedups import Speedups
    from .world_engine import WorldEngine, load_model, random_checkpoint, random_model, save_checkpoint

_WHERE = {
    "Autoencoder": "autoencoder", "PRESETS": "config", "WaypointConfig": "config", "preset_config": "config",
    "CtrlInput": "controls", "KeyMap": "controls", "check_actions": "controls", "control_vectors": "controls",
    "DEFAULT_KEYS": "keycodes", "KEYCODES": "keycodes", "keycode": "keycodes", "CaptionEncoder": "prompt",
    "RewardHead": "reward_head", "RewardHeadConfig": "reward_head", "Speedups": "speedups",
    "WorldEngine": "world_engine", "load_model": "world_engine", "random_checkpoint": "world_engine",
    "random_model": "world_engine", "save_checkpoint": "world_engine",
}

__all__ = [
    "PRESETS", "Autoencoder", "WaypointConfig", "preset_config", "DEFAULT_KEYS", "KEYCODES", "keycode", "Speedups",
    "CaptionEncoder", "CtrlInput", "KeyMap", "RewardHead", "RewardHeadConfig", "WorldEngine", "check_actions",
    "control_vectors", "load_model", "random_checkpoint", "random_model", "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
