"""DiscreteActions / FlatBoxActions and their vector forms."""

from __future__ import annotations

import numpy as np
import pytest
from envs_support import tiny_checkpoint

from waypoint_gym.envs import (
    DEFAULT_MACROS,
    DiscreteActions,
    FlatBoxActions,
    MacroAction,
    VectorDiscreteActions,
    WaypointVectorEnv,
    WaypointWorldEnv,
)
from waypoint_gym.envs.wrappers import MacroTable, VectorFlatBoxActions, flat_to_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_macro_table_lookup():
    table = MacroTable(("W", "SPACE"), [MacroAction("noop"), MacroAction("jump_left", ("space",), (-0.5, 0.0))])
    one = table.lookup(1)
    assert one["keys"].tolist() == [0, 1] and one["mouse"].tolist() == [-0.5, 0.0]
    batch = table.lookup(np.array([0, 1, 1]))
    assert batch["keys"].shape == (3, 2) and batch["mouse"].shape == (3, 2)
    with pytest.raises(ValueError, match=r"int in \[0, 2\)"):
        table.lookup(2)
    with pytest.raises(ValueError, match="does not offer"):
        MacroTable(("W",), [MacroAction("jump", ("SPACE",))])
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        MacroTable(("W",), [MacroAction("spin", (), (3.0, 0.0))])
    with pytest.raises(ValueError, match=r"two numbers in \[-1, 1\], got 0.5"):
        MacroTable(("W",), [MacroAction("spin", (), 0.5)])
    with pytest.raises(TypeError, match="macros must be MacroAction items, got 'forward'"):
        MacroTable(("W",), ["forward"])


def test_flat_to_dict_thresholds_key_logits():
    d = flat_to_dict(np.array([0.3, -0.2, 0.0, 0.5, -0.5], np.float32), 3)
    assert d["keys"].tolist() == [1, 0, 0] and d["mouse"].tolist() == [0.5, -0.5]
    with pytest.raises(ValueError, match="end in 5 values"):
        flat_to_dict(np.zeros(4), 3)
    with pytest.raises(ValueError, match="finite"):
        flat_to_dict(np.array([np.nan, 0, 0, 0, 0]), 3)


def test_discrete_actions_default_table_follows_the_keys(ckpt):
    env = DiscreteActions(WaypointWorldEnv(ckpt))
    assert env.action_space.n == len(DEFAULT_MACROS) == len(env.macros)
    small = DiscreteActions(WaypointWorldEnv(ckpt, keys=("W", "A", "D")))
    names = [m.name for m in small.macros]
    assert "forward" in names and "turn_left" in names and "jump" not in names and "back" not in names
    small.reset(seed=0)
    _, _, _, _, info = small.step(names.index("forward_left"))
    assert info["frame_index"] == 2
    with pytest.raises(ValueError, match="single int"):
        small.step(np.array([0, 1]))


def test_flat_box_actions(ckpt):
    env = FlatBoxActions(WaypointWorldEnv(ckpt))
    assert env.action_space.shape == (8,)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):  # the mouse part is checked by the env
        env.step(np.array([0, 0, 0, 0, 0, 0, 2.0, 0], np.float32))


def test_vector_wrappers(ckpt):
    core = WaypointVectorEnv(2, ckpt)
    disc = VectorDiscreteActions(core)
    assert disc.single_action_space.n == len(DEFAULT_MACROS) and disc.action_space.shape == (2,)
    disc.reset(seed=0)
    assert disc.step(np.array([1, 5]))[4]["frame_index"].tolist() == [2, 2]
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        disc.step(np.array([1]))
    box = VectorFlatBoxActions(core)
    assert box.action_space.shape == (2, 8)
    box.step(box.action_space.sample())


def test_a_model_can_ship_its_keys_and_macro_table(tmp_path):
    macros = [{"name": "walk", "keys": ["W"]}, {"name": "hit", "keys": ["LMB"]}]
    extra = {"default_keys": ["W", "LMB"], "macro_actions": macros}
    env = DiscreteActions(WaypointWorldEnv(tiny_checkpoint(tmp_path / "w", extra=extra)))
    assert env.unwrapped.keys == ("W", "LMB")
    assert [m.name for m in env.macros] == ["walk", "hit"] and env.table.keys.tolist() == [[1, 0], [0, 1]]
