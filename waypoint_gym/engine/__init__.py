"""The inference core: Waypoint-format world models, their KV cache, sampler, autoencoder, prompt encoders,
controls and reward head."""

from .autoencoder import Autoencoder
from .config import PRESETS, WaypointConfig, preset_config
from .controls import CtrlInput, KeyMap, check_actions, control_vectors
from .keycodes import DEFAULT_KEYS, KEYCODES, keycode
from .prompt import CaptionEncoder
from .reward_head import RewardHead, RewardHeadConfig
from .speedups import Speedups
from .world_engine import WorldEngine, load_model, random_checkpoint, random_model, save_checkpoint

__all__ = [
    "PRESETS", "Autoencoder", "WaypointConfig", "preset_config", "DEFAULT_KEYS", "KEYCODES", "keycode", "Speedups",
    "CaptionEncoder", "CtrlInput", "KeyMap", "RewardHead", "RewardHeadConfig", "WorldEngine", "check_actions",
    "control_vectors", "load_model", "random_checkpoint", "random_model", "save_checkpoint",
]
