"""The agent's side of the controller: key names, the Dict action space, validating actions, and CtrlInput.

An action is `{"keys": MultiBinary(n_keys), "mouse": Box(-1, 1, (2,))}`. Key names map to the model's
keycodes through the one table in `waypoint_gym.engine.keycodes`; the mouse is scaled by `mouse_scale` into
the model's velocity units. Every check here runs before the engine is touched, so a rejected action leaves
the episode as it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from waypoint_gym.engine import DEFAULT_KEYS, CtrlInput, WaypointConfig, keycode

# The mouse scale (model velocity units per unit of the action's Box) when a model names none.
DEFAULT_MOUSE_SCALE = 1.0
ACTION_KEYS = ("keys", "mouse")


def default_keys(config: WaypointConfig) -> tuple[str, ...]:
    """The keys an agent gets for this model: its config's `default_keys` if it names some, else WASD, jump, sprint."""
    keys = config.extra.get("default_keys")
    return tuple(keys) if keys else DEFAULT_KEYS


def default_mouse_scale(config: WaypointConfig) -> float:
    """The model's mouse velocity per unit of the action Box: its config's `mouse_scale`, else 1.0."""
    return float(config.extra.get("mouse_scale", DEFAULT_MOUSE_SCALE))


def resolve_keys(keys: Sequence[str], n_buttons: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Key names -> (upper-case names, keycodes [n_keys]); unknown, repeated or out-of-range keys raise."""
    if isinstance(keys, str) or not isinstance(keys, Sequence) or len(keys) == 0:
        raise TypeError(f"keys must be a non-empty sequence of key names such as ('W', 'A'), got {keys!r}")
    if not all(isinstance(k, str) for k in keys):
        raise TypeError(f"key names must be str, got {keys!r}")
    names = tuple(k.upper() for k in keys)
    codes = np.array([keycode(k) for k in names], dtype=np.int64)  # KeyError names the unknown key
    repeated = sorted({k for k in names if names.count(k) > 1})
    if repeated:
        raise ValueError(f"key names appear more than once: {repeated}")
    outside = [k for k, c in zip(names, codes) if c >= n_buttons]
    if outside:
        raise ValueError(f"keys {outside} have keycodes outside this model's {n_buttons} buttons")
    return names, codes


def action_space(n_keys: int) -> spaces.Dict:
    """Dict({"keys": MultiBinary(n_keys), "mouse": Box(-1, 1, (2,), float32)})."""
    return spaces.Dict(
        {"keys": spaces.MultiBinary(n_keys), "mouse": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)}
    )


def check_actions(action: Any, n_keys: int, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate one action (batch None) or a batch of `batch` actions -> (pressed bool [.., n_keys], mouse [.., 2]).

    Raises TypeError / ValueError that name the problem: not a dict, missing or extra entries, wrong shapes,
    keys other than 0/1, a mouse that is NaN, infinite or outside [-1, 1].
    """
    lead = () if batch is None else (batch,)
    if not isinstance(action, Mapping):
        raise TypeError(f"action must be a dict with entries {ACTION_KEYS}, got {type(action).__name__}")
    if set(action) != set(ACTION_KEYS):
        raise ValueError(f"action must have exactly the entries {ACTION_KEYS}, got {tuple(action)}")
    keys = np.asarray(action["keys"])
    if keys.shape != (*lead, n_keys):
        raise ValueError(f"action['keys'] must have shape {(*lead, n_keys)}, got {keys.shape}")
    if keys.dtype == object or not (np.issubdtype(keys.dtype, np.number) or keys.dtype == np.bool_):
        raise TypeError(f"action['keys'] must be 0/1 numbers, got dtype {keys.dtype}")
    if not np.isin(keys, (0, 1)).all():
        raise ValueError(f"action['keys'] must hold only 0 and 1 (MultiBinary), got {keys.tolist()}")
    mouse = np.asarray(action["mouse"])
    if mouse.shape != (*lead, 2):
        raise ValueError(f"action['mouse'] must have shape {(*lead, 2)}, got {mouse.shape}")
    if mouse.dtype == object or not np.issubdtype(mouse.dtype, np.number):
        raise TypeError(f"action['mouse'] must be numbers, got dtype {mouse.dtype}")
    mouse = mouse.astype(np.float64)
    if not np.isfinite(mouse).all():
        raise ValueError(f"action['mouse'] must be finite, got {mouse.tolist()} (NaN or inf)")
    if np.abs(mouse).max(initial=0.0) > 1.0 + 1e-6:
        raise ValueError(f"action['mouse'] must lie in [-1, 1] (the action space), got {mouse.tolist()}")
    return keys.astype(bool), mouse


def to_ctrl(pressed: np.ndarray, mouse: np.ndarray, keycodes: np.ndarray, mouse_scale: float) -> CtrlInput:
    """One checked action -> the engine's CtrlInput (keycodes of the pressed keys, scaled mouse velocity)."""
    dx, dy = (float(v) * mouse_scale for v in mouse)
    return CtrlInput(button={int(c) for c in keycodes[pressed]}, mouse=(dx, dy))


def check_mouse_scale(mouse_scale: Any) -> float:
    if isinstance(mouse_scale, bool) or not isinstance(mouse_scale, (int, float, np.number)):
        raise TypeError(f"mouse_scale must be a number, got {mouse_scale!r}")
    if not math.isfinite(mouse_scale) or mouse_scale <= 0:
        raise ValueError(f"mouse_scale must be a positive finite number, got {mouse_scale!r}")
    return float(mouse_scale)
