"""Action wrappers for learners without Dict action spaces (stable-baselines3): a macro table, or a flat Box.

Each comes in a single-env form (`gymnasium.ActionWrapper`) and a vector form (`VectorActionWrapper`,
for WaypointVectorEnv), both around one mapping that works on one action or a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorActionWrapper, VectorEnv
from gymnasium.vector.utils import batch_space

# Mouse velocity of the turning macros, in action units ([-1, 1]); screen y grows downwards.
TURN = 0.5


@dataclass(frozen=True)
class MacroAction:
    """One entry of a discrete action table: keys held and mouse motion for the frame."""

    name: str
    keys: tuple[str, ...] = ()
    mouse: tuple[float, float] = (0.0, 0.0)


DEFAULT_MACROS: tuple[MacroAction, ...] = (
    MacroAction("noop"),
    MacroAction("forward", ("W",)),
    MacroAction("back", ("S",)),
    MacroAction("strafe_left", ("A",)),
    MacroAction("strafe_right", ("D",)),
    MacroAction("turn_left", (), (-TURN, 0.0)),
    MacroAction("turn_right", (), (TURN, 0.0)),
    MacroAction("look_up", (), (0.0, -TURN)),
    MacroAction("look_down", (), (0.0, TURN)),
    MacroAction("jump", ("SPACE",)),
    MacroAction("forward_jump", ("W", "SPACE")),
    MacroAction("sprint_forward", ("W", "SHIFT")),
    MacroAction("forward_left", ("W",), (-TURN, 0.0)),
    MacroAction("forward_right", ("W",), (TURN, 0.0)),
)


def env_attr(env: gym.Env | VectorEnv, name: str, default: Any = None) -> Any:
    """An attribute of the env beneath the wrappers; for Gymnasium's own vector envs (sync, async), of their
    first env."""
    base = env.unwrapped
    if hasattr(base, name):
        return getattr(base, name)
    if isinstance(base, VectorEnv) and hasattr(base, "get_attr"):
        try:
            return base.get_attr(name)[0]
        except AttributeError:
            return default
    return default


def env_keys(env: gym.Env | VectorEnv) -> tuple[str, ...]:
    keys = env_attr(env, "keys")
    if keys is None:
        raise TypeError(f"{env} has no key names (`keys`): wrap a Waypoint env or WaypointArena-v0")
    return tuple(keys)


def default_macros(env: gym.Env | VectorEnv) -> tuple[MacroAction, ...]:
    """The model config's `macro_actions` ([{name, keys, mouse}]) if it has them, else DEFAULT_MACROS
    restricted to the macros whose keys the env offers."""
    shipped = env_attr(env, "macro_actions")
    if shipped:
        return tuple(MacroAction(m["name"], tuple(m.get("keys", ())), tuple(m.get("mouse", (0, 0)))) for m in shipped)
    return tuple(m for m in DEFAULT_MACROS if set(m.keys) <= set(env_keys(env)))


class MacroTable:
    """Macro actions as arrays: index (or batch of indices) -> Dict action (or batch)."""

    def __init__(self, keys: Sequence[str], macros: Sequence[MacroAction]):
        if not macros:
            raise ValueError("the macro action table is empty")
        index = {k: i for i, k in enumerate(keys)}
        self.macros = tuple(macros)
        self.keys = np.zeros((len(macros), len(keys)), np.int8)
        self.mouse = np.zeros((len(macros), 2), np.float32)
        for j, m in enumerate(macros):
            if not isinstance(m, MacroAction):
                raise TypeError(f"macros must be MacroAction items, got {m!r}")
            missing = [k for k in m.keys if k.upper() not in index]
            if missing:
                raise ValueError(f"macro {m.name!r} holds keys {missing} that the env does not offer ({list(keys)})")
            mouse = np.asarray(m.mouse)
            real = np.issubdtype(mouse.dtype, np.number) and not np.iscomplexobj(mouse)
            if mouse.shape != (2,) or not real or not (np.abs(mouse) <= 1.0).all():
                raise ValueError(f"macro {m.name!r} mouse must be two numbers in [-1, 1], got {m.mouse!r}")
            self.keys[j, [index[k.upper()] for k in m.keys]] = 1
            self.mouse[j] = m.mouse

    def __len__(self) -> int:
        return len(self.macros)

    def lookup(self, action: Any) -> dict[str, np.ndarray]:
        a = np.asarray(action)
        if not np.issubdtype(a.dtype, np.integer) or (a.size and (a.min() < 0 or a.max() >= len(self))):
            raise ValueError(f"discrete action must be an int in [0, {len(self)}), got {action!r}")
        return {"keys": self.keys[a], "mouse": self.mouse[a]}


def flat_to_dict(action: Any, n_keys: int) -> dict[str, np.ndarray]:
    """A flat Box action [.., n_keys + 2] -> Dict action: keys pressed where their logit > 0, then the mouse."""
    a = np.asarray(action, dtype=np.float32)
    if a.shape[-1:] != (n_keys + 2,):
        raise ValueError(f"flat action must end in {n_keys + 2} values (key logits, then mouse dx, dy), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"flat action must be finite, got {a.tolist()}")
    return {"keys": (a[..., :n_keys] > 0).astype(np.int8), "mouse": a[..., n_keys:]}


def _flat_space(n_keys: int) -> spaces.Box:
    return spaces.Box(-1.0, 1.0, shape=(n_keys + 2,), dtype=np.float32)


class DiscreteActions(gym.ActionWrapper):
    """`Discrete(len(macros))`: each action is a macro such as forward, turn left, jump or sprint-forward.

    `macros`: a sequence of MacroAction; default: the model's table, else DEFAULT_MACROS the env's keys allow.
    `self.macros` lists them in action order.
    """

    def __init__(self, env: gym.Env, macros: Sequence[MacroAction] | None = None):
        super().__init__(env)
        self.table = MacroTable(env_keys(env), macros if macros is not None else default_macros(env))
        self.macros = self.table.macros
        self.action_space = spaces.Discrete(len(self.table))

    def action(self, action: int | np.integer) -> dict[str, np.ndarray]:
        if np.ndim(action) != 0:
            raise ValueError(f"discrete action must be a single int, got {action!r}")
        return self.table.lookup(action)


class FlatBoxActions(gym.ActionWrapper):
    """`Box(-1, 1, (n_keys + 2,))`: a logit per key (held when > 0), then the mouse (dx, dy)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.n_keys = len(env_keys(env))
        self.action_space = _flat_space(self.n_keys)

    def action(self, action: np.ndarray) -> dict[str, np.ndarray]:
        return flat_to_dict(action, self.n_keys)


class VectorDiscreteActions(VectorActionWrapper):
    """DiscreteActions for a vector env: actions are ints [num_envs]."""

    def __init__(self, env: VectorEnv, macros: Sequence[MacroAction] | None = None):
        super().__init__(env)
        self.table = MacroTable(env_keys(env), macros if macros is not None else default_macros(env))
        self.macros = self.table.macros
        self.single_action_space = spaces.Discrete(len(self.table))
        self.action_space = batch_space(self.single_action_space, env.num_envs)

    def actions(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        if np.shape(actions) != (self.num_envs,):
            raise ValueError(f"discrete actions must have shape ({self.num_envs},), got {np.shape(actions)}")
        return self.table.lookup(actions)


class VectorFlatBoxActions(VectorActionWrapper):
    """FlatBoxActions for a vector env: actions are [num_envs, n_keys + 2]."""

    def __init__(self, env: VectorEnv):
        super().__init__(env)
        self.n_keys = len(env_keys(env))
        self.single_action_space = _flat_space(self.n_keys)
        self.action_space = batch_space(self.single_action_space, env.num_envs)

    def actions(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        if np.shape(actions) != (self.num_envs, self.n_keys + 2):
            want = (self.num_envs, self.n_keys + 2)
            raise ValueError(f"flat actions must have shape {want}, got {np.shape(actions)}")
        return flat_to_dict(actions, self.n_keys)
