"""Key names, the Dict action space, action checks and the action -> control vector mapping."""

from __future__ import annotations

import numpy as np
import pytest

from waypoint_gym.engine import DEFAULT_KEYS, KEYCODES, WaypointConfig
from waypoint_gym.engine.controls import (
    KeyMap,
    check_actions,
    check_mouse_scale,
    default_keys,
    default_mouse_scale,
    resolve_keys,
)
from waypoint_gym.envs.spaces import action_space


def test_key_names_map_through_the_one_table():
    names, codes = resolve_keys(["w", "Space", "LMB"], 256)
    assert names == ("W", "SPACE", "LMB")
    assert codes.tolist() == [KEYCODES["W"], KEYCODES["SPACE"], KEYCODES["LMB"]] == [87, 32, 1]


@pytest.mark.parametrize(
    "keys,n_buttons,error,match",
    [
        (["W", "FLY"], 256, KeyError, "unknown key name 'FLY'"),
        (["W", "W"], 256, ValueError, "more than once"),
        (["W", "F12"], 64, ValueError, "outside this model's 64 buttons"),
        ([], 256, TypeError, "non-empty"),
        ("WASD", 256, TypeError, "sequence of key names"),
        ([87], 256, TypeError, "must be str"),
    ],
)
def test_bad_key_names(keys, n_buttons, error, match):
    with pytest.raises(error, match=match):
        resolve_keys(keys, n_buttons)


def test_model_defaults_come_from_the_config():
    plain = WaypointConfig(d_model=64, n_heads=2, n_kv_heads=1, tokens_per_frame=256)
    assert default_keys(plain) == DEFAULT_KEYS and default_mouse_scale(plain) == 1.0
    shipped = WaypointConfig.from_dict({**plain.to_dict(), "default_keys": ["W", "LMB"], "mouse_scale": 20})
    assert default_keys(shipped) == ("W", "LMB") and default_mouse_scale(shipped) == 20.0


def test_action_space_and_control_vectors():
    space = action_space(3)
    assert space["keys"].n == 3 and space["mouse"].shape == (2,)
    keymap = KeyMap(["W", "A", "SPACE"], 256, mouse_scale=10.0)
    pressed, mouse = keymap.check({"keys": np.array([1, 0, 1]), "mouse": np.array([0.5, -1.0])})
    vec = keymap.vectors(pressed[None], mouse[None])[0]  # mouse dx dy, 256 buttons, scroll
    assert vec.shape == (259,) and vec.dtype == np.float32
    assert np.flatnonzero(vec[2:-1]).tolist() == [32, 87] and vec[:2].tolist() == [5.0, -10.0] and vec[-1] == 0


def test_batched_checks():
    keys, mouse = check_actions({"keys": np.zeros((4, 3), bool), "mouse": np.zeros((4, 2))}, 3, batch=4)
    assert keys.shape == (4, 3) and keys.dtype == bool and mouse.shape == (4, 2)
    with pytest.raises(ValueError, match=r"must have shape \(4, 3\)"):
        check_actions({"keys": np.zeros((3, 3)), "mouse": np.zeros((4, 2))}, 3, batch=4)


def test_mouse_scale_checks():
    assert check_mouse_scale(2) == 2.0
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="positive finite"):
            check_mouse_scale(bad)
    with pytest.raises(TypeError, match="a number"):
        check_mouse_scale("fast")
