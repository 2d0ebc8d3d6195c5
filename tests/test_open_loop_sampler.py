"""studies/open_loop_sampler.py: schedules parse as documented, a checkpoint changes only its schedule, and an
open loop runs under each policy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from envs_support import tiny_checkpoint

from waypoint_gym.engine import WorldEngine
from waypoint_gym.evaluation.harness import HeldAction

SPEC = importlib.util.spec_from_file_location("open_loop_sampler",
                                              Path(__file__).parents[1] / "studies" / "open_loop_sampler.py")
study = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(study)

def test_schedules_are_the_checkpoints_uniform_steps_or_a_falling_list():
    assert study.schedule("own", [1.0, 0.5, 0.0]) == [1.0, 0.5, 0.0]
    assert study.schedule("4", [1.0, 0.5, 0.0]) == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert study.schedule("1,0.3,0.1,0", []) == [1.0, 0.3, 0.1, 0.0]
    for bad in ("0.9,0.3,0", "1,0.3,0.1", "1,0.1,0.3,0"):
        with pytest.raises(ValueError, match="a schedule falls from 1 to 0"):
            study.schedule(bad, [])


def test_a_checkpoint_with_another_schedule_differs_only_in_it(tmp_path):
    folder = tiny_checkpoint(tmp_path / "ckpt", image_size=(64, 64))
    changed = study.with_schedule(folder, [1.0, 0.3, 0.0], tmp_path / "changed")
    before, after = (yaml.safe_load((f / "config.yaml").read_text()) for f in (folder, changed))
    assert after.pop("scheduler_sigmas") == [1.0, 0.3, 0.0]
    before.pop("scheduler_sigmas")
    assert before == after
    assert sorted(p.name for p in changed.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert WorldEngine(changed, batch_size=1).sigmas == [1.0, 0.3, 0.0]


@pytest.mark.usefixtures("one_torch_thread")
def test_an_open_loop_runs_under_each_policy(tmp_path):
    folder = tiny_checkpoint(tmp_path / "ckpt", image_size=(64, 64))
    engine = WorldEngine(folder, batch_size=2, seed=0)
    for policy in ("explore", "idle", "left"):
        row, clips = study.play(engine, policy, 2)
        assert clips["dreamed"].shape == (2, 1 + study.HORIZON, 64, 64, 3)
        assert set(row["detail_ratio"]) == set(study.REPORTED_STEPS)
        assert all(np.isfinite(v) for v in row["pixel_std_ratio"].values())
    held = HeldAction(3, 6, -0.5)
    pressed, mouse = held.act()
    assert not pressed.any() and np.array_equal(mouse, [[-0.5, 0.0]] * 3)
