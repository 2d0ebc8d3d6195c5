"""Controls: an agent's keys and mouse -> the model's control vectors, and the checks an action must pass.

An action is `{"keys": [..., n_keys] 0/1, "mouse": [..., 2] in [-1, 1]}`. `KeyMap` maps the key columns onto the
model's keycodes (through the one table in `keycodes.py`) and the mouse into the model's velocity units, and
builds the control vectors the model reads: concat(mouse dx dy, multi-hot buttons, scroll sign), [..., n_buttons + 3].
The envs, the ground-truth game, the evaluation, the reward head and training all go through this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from waypoint_gym.checks import is_int

from .config import WaypointConfig
from .keycodes import DEFAULT_KEYS, keycode

# The mouse scale (model velocity units per unit of the action's Box) when a model names none.
DEFAULT_MOUSE_SCALE = 1.0
ACTION_KEYS = ("keys", "mouse")


@dataclass
class CtrlInput:
    """One frame of controller input: pressed keycodes, mouse velocity and scroll wheel."""

    button: set[int] = field(default_factory=set)
    mouse: tuple[float, float] = (0.0, 0.0)
    scroll_wheel: int = 0


def default_keys(config: WaypointConfig) -> tuple[str, ...]:
    """The keys an agent gets for this model: its config's `default_keys` if it names some, else WASD, jump, sprint."""
    keys = config.extra.get("default_keys")
    return tuple(keys) if keys else DEFAULT_KEYS


def default_mouse_scale(config: WaypointConfig) -> float:
    """The model's mouse velocity per unit of the action Box: its config's `mouse_scale`, else 1.0."""
    return float(config.extra.get("mouse_scale", DEFAULT_MOUSE_SCALE))


def check_mouse_scale(mouse_scale: Any) -> float:
    if isinstance(mouse_scale, bool) or not isinstance(mouse_scale, (int, float, np.number)):
        raise TypeError(f"mouse_scale must be a number, got {mouse_scale!r}")
    if not math.isfinite(mouse_scale) or mouse_scale <= 0:
        raise ValueError(f"mouse_scale must be a positive finite number, got {mouse_scale!r}")
    return float(mouse_scale)


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


def check_actions(action: Any, n_keys: int, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate one action (batch None) or a batch of `batch` actions -> (pressed bool [.., n_keys], mouse [.., 2]).

    Raises TypeError / ValueError that name the problem: not a dict, missing or extra entries, wrong shapes,
    keys other than 0/1, a mouse that is NaN, infinite or outside [-1, 1].
    """
    lead = () if batch is None else (batch,)
    if not isinstance(action, Mapping):
        raise TypeError(f"action must be a dict with entries {ACTION_KEYS}, got {type(action).__name__}")
    if set(action) != set(ACTION_KEYS):
        missing = sorted(set(ACTION_KEYS) - set(action))
        extra = sorted(set(action) - set(ACTION_KEYS), key=str)
        raise ValueError(f"action must have exactly the entries {ACTION_KEYS}; missing {missing}, unexpected {extra}")
    keys = np.asarray(action["keys"])
    if keys.shape != (*lead, n_keys):
        raise ValueError(f"action['keys'] must have shape {(*lead, n_keys)}, one entry per key, got {keys.shape}")
    if keys.dtype == object or not (np.issubdtype(keys.dtype, np.number) or keys.dtype == np.bool_):
        raise TypeError(f"action['keys'] must be 0/1 numbers, got dtype {keys.dtype}")
    if not np.isin(keys, (0, 1)).all():
        raise ValueError(f"action['keys'] must hold only 0 and 1 (MultiBinary), got {keys.tolist()}")
    mouse = np.asarray(action["mouse"])
    if mouse.dtype == object or not np.issubdtype(mouse.dtype, np.number) or np.iscomplexobj(mouse):
        raise TypeError(f"action['mouse'] must be two numbers (dx, dy) a row, got {action['mouse']!r:.100}")
    if mouse.shape != (*lead, 2):
        raise ValueError(f"action['mouse'] must have shape {(*lead, 2)}, got {mouse.shape}")
    mouse = mouse.astype(np.float64)
    if not np.isfinite(mouse).all():
        raise ValueError(f"action['mouse'] must be finite, got {mouse.tolist()} (NaN or inf)")
    if np.abs(mouse).max(initial=0.0) > 1.0 + 1e-6:
        raise ValueError(f"action['mouse'] must lie within [-1, 1] (the action space), got {mouse.tolist()}")
    return keys.astype(bool), mouse


def control_vectors(pressed: np.ndarray, mouse: np.ndarray, keycodes: np.ndarray, n_buttons: int,
                    mouse_scale: float = 1.0) -> np.ndarray:
    """Key columns [..., K] (0/1) and mouse [..., 2] -> control vectors float32 [..., n_buttons + 3].

    Column k of `pressed` is the button `keycodes[k]`; the mouse is multiplied by `mouse_scale`; no scrolling.
    """
    pressed, mouse = np.asarray(pressed), np.asarray(mouse)
    out = np.zeros((*pressed.shape[:-1], n_buttons + 3), np.float32)
    out[..., :2] = mouse if mouse_scale == 1.0 else np.asarray(mouse, np.float64) * mouse_scale
    out[..., 2 + np.asarray(keycodes, np.int64)] = pressed != 0
    return out


def ctrl_input_vectors(ctrls: Sequence[CtrlInput | None], n_buttons: int) -> np.ndarray:
    """CtrlInputs (None: nothing pressed) -> control vectors float32 [n, n_buttons + 3]; bad inputs raise."""
    vec = np.zeros((len(ctrls), n_buttons + 3), dtype=np.float32)
    for i, c in enumerate(ctrls):
        c = CtrlInput() if c is None else c
        if not isinstance(c, CtrlInput):
            raise TypeError(f"controls must be CtrlInput, got {type(c).__name__}")
        buttons = list(c.button)
        bad = [b for b in buttons
               if not is_int(b) or not 0 <= b < n_buttons]
        if bad:
            raise ValueError(f"keycodes {bad} outside [0, {n_buttons}) (n_buttons of this model)")
        mouse = np.asarray(c.mouse, dtype=np.float64)
        if mouse.shape != (2,):
            raise ValueError(f"mouse must be two numbers (dx, dy), got {c.mouse!r}")
        if not np.isfinite(mouse).all():
            raise ValueError(f"mouse must be finite, got {c.mouse!r}")
        scroll = c.scroll_wheel
        number = isinstance(scroll, (int, float, np.number)) and not isinstance(scroll, (bool, np.bool_))
        if not (number and math.isfinite(scroll)):
            raise ValueError(f"scroll_wheel must be a finite number, got {scroll!r}")
        vec[i, :2] = mouse
        vec[i, 2 + np.asarray(buttons, dtype=np.int64)] = 1.0
        vec[i, -1] = np.sign(scroll)
    return vec


class KeyMap:
    """An agent's key columns and mouse Box on one model: names, keycodes, mouse scale, and control vectors."""

    def __init__(self, keys: Sequence[str], n_buttons: int, mouse_scale: float = DEFAULT_MOUSE_SCALE):
        self.keys, self.keycodes = resolve_keys(keys, n_buttons)
        self.n_buttons = n_buttons
        self.mouse_scale = check_mouse_scale(mouse_scale)

    @classmethod
    def for_model(cls, config: WaypointConfig, keys: Sequence[str] | None = None,
                  mouse_scale: float | None = None) -> KeyMap:
        """The model's own keys and mouse scale (its config's `default_keys` and `mouse_scale`), unless given."""
        return cls(default_keys(config) if keys is None else keys, config.n_buttons,
                   default_mouse_scale(config) if mouse_scale is None else mouse_scale)

    def vectors(self, pressed: np.ndarray, mouse: np.ndarray) -> np.ndarray:
        """Key columns [..., K] and mouse [..., 2] (in the action's Box) -> control vectors [..., n_buttons + 3]."""
        return control_vectors(pressed, mouse, self.keycodes, self.n_buttons, self.mouse_scale)

    def check(self, action: Any, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`check_actions` for this key map's keys."""
        return check_actions(action, len(self.keys), batch)
