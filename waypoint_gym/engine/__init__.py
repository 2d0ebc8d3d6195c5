"""The inference core: Waypoint-format world models, their KV cache, sampler, autoencoder and prompt encoders."""

from .autoencoder import Autoencoder
from .config import PRESETS, WaypointConfig, preset_config
from .keycodes import DEFAULT_KEYS, KEYCODES, keycode
from .speedups import Speedups
from .world_engine import CtrlInput, WorldEngine, load_model, random_checkpoint, random_model, save_checkpoint

__all__ = [
    "PRESETS", "Autoencoder", "WaypointConfig", "preset_config", "DEFAULT_KEYS", "KEYCODES", "keycode", "Speedups",
    "CtrlInput", "WorldEngine", "load_model", "random_checkpoint", "random_model", "save_checkpoint",
]
